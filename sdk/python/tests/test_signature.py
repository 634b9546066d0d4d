"""The signing test vectors shared by every CodeGate implementation."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from codegate_sdk import EMPTY_STRING_HASH, generate_signature
from codegate_sdk.signature import body_sha256, canonical_query, string_to_sign
from conftest import vectors_path


def _load() -> dict[str, Any]:
    path = vectors_path()
    if not path.is_file():
        pytest.fail(f"signature vectors not found at {path} (set CODEGATE_VECTORS)", pytrace=False)
    return json.loads(path.read_text(encoding="utf-8"))


VECTORS = _load()


def test_vector_file_is_sane() -> None:
    assert VECTORS["scheme"] == "codegate-hmac-v1"
    assert VECTORS["empty_body_sha256"] == EMPTY_STRING_HASH
    assert len(VECTORS["vectors"]) >= 10


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vector(vector: dict[str, Any]) -> None:
    nonce = vector.get("nonce")
    assert canonical_query(vector["query_params"]) == vector["canonical_query"]
    assert body_sha256(vector["body"]) == vector["body_sha256"]
    assert (
        string_to_sign(
            vector["method"], vector["path"], vector["query_params"], vector["body"],
            vector["timestamp"], nonce=nonce,
        )
        == vector["string_to_sign"]
    )
    # Positional call exactly as documented for 0.1.x, plus the nonce keyword.
    signature = generate_signature(
        vector["method"], vector["path"], vector["query_params"], vector["body"],
        vector["timestamp"], vector["secret"], nonce=nonce,
    )
    assert signature == vector["signature"]
    # The body as the bytes actually sent signs the same.
    if vector["body"] is not None:
        assert generate_signature(
            vector["method"], vector["path"], vector["query_params"],
            vector["body"].encode("utf-8"), vector["timestamp"], vector["secret"], nonce=nonce,
        ) == vector["signature"]


@pytest.mark.parametrize("vector", [v for v in VECTORS["vectors"] if v["query_params"]],
                         ids=lambda v: v["name"])
def test_query_as_pairs_in_any_order(vector: dict[str, Any]) -> None:
    pairs = list(vector["query_params"].items())
    assert canonical_query(list(reversed(pairs))) == vector["canonical_query"]


def test_keyword_call_like_0_1() -> None:
    v = VECTORS["vectors"][0]
    assert generate_signature(
        method=v["method"], path=v["path"], query_params=v["query_params"], body=v["body"],
        timestamp=v["timestamp"], secret=v["secret"],
    ) == v["signature"]


def test_repeated_keys_sorted_by_value() -> None:
    assert canonical_query([("b", "2"), ("a", "z"), ("a", "y")]) == "a=y&a=z&b=2"


def test_values_are_stringified() -> None:
    assert canonical_query({"page": 2, "page_size": 50}) == "page=2&page_size=50"


def test_empty_body_and_none_hash_alike() -> None:
    assert body_sha256(None) == body_sha256("") == body_sha256(b"") == EMPTY_STRING_HASH
    assert body_sha256("é") == hashlib.sha256("é".encode("utf-8")).hexdigest()


def test_missing_arguments() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        generate_signature("GET", "/", None, None, None, "s")
    with pytest.raises(ValueError, match="secret"):
        generate_signature("GET", "/", None, None, 1, None)
