"""Client behaviour without a server: headers, signing, encoding, paging, config."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from codegate_sdk import CodeGateClient, ConfigurationError, generate_signature
from conftest import scripted_client

PID = "p" * 32


def assert_validly_signed(request: requests.PreparedRequest, secret: str) -> None:
    """Check a sent request the way the server does."""
    parts = urlsplit(request.url or "")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    nonce = request.headers.get("X-Nonce")
    body = request.body
    if isinstance(body, str):
        pytest.fail("body must be sent as bytes")
    expected = generate_signature(
        request.method or "", parts.path, pairs, body,
        int(request.headers["X-Timestamp"]), secret, nonce=nonce,
    )
    assert request.headers["X-Signature"] == expected


def ok(body: dict | None = None) -> tuple:
    return (200, {}, body if body is not None else {"ok": True})


def test_signing_headers() -> None:
    client, adapter, fake = scripted_client([ok()])
    client.get_project()
    (request,) = adapter.requests
    assert request.method == "GET"
    assert request.url == f"http://codegate.test/api/v1/projects/{PID}"
    assert request.headers["X-API-Key"] == "k" * 32
    assert request.headers["X-Timestamp"] == str(int(fake.now))
    assert re.fullmatch(r"[0-9a-f]{32}", request.headers["X-Nonce"])
    assert re.fullmatch(r"[0-9a-f]{64}", request.headers["X-Signature"])
    assert request.headers["User-Agent"].startswith("codegate-sdk-python/0.2.0")
    assert request.body is None
    assert_validly_signed(request, "s" * 64)


def test_every_request_gets_a_new_nonce() -> None:
    client, adapter, _ = scripted_client([ok()])
    for _ in range(5):
        client.get_statistics()
    assert len({r.headers["X-Nonce"] for r in adapter.requests}) == 5


def test_custom_user_agent() -> None:
    client, adapter, _ = scripted_client([ok()], user_agent="shop-backend/1.0")
    client.get_project()
    assert adapter.requests[0].headers["User-Agent"] == "shop-backend/1.0"


def test_non_ascii_body_is_sent_as_utf8_bytes_and_signed_as_such() -> None:
    client, adapter, _ = scripted_client([ok({"success": True})])
    client.verify_code("ABC12345", verified_by="用户-42")
    (request,) = adapter.requests
    assert request.method == "POST"
    assert request.url.endswith(f"/api/v1/projects/{PID}/codes/verify")
    assert isinstance(request.body, bytes)
    assert request.body == '{"code": "ABC12345", "verified_by": "用户-42"}'.encode("utf-8")
    assert request.headers["Content-Type"].startswith("application/json")
    assert_validly_signed(request, "s" * 64)


def test_reactivate_body() -> None:
    client, adapter, _ = scripted_client([ok({"success": True})])
    client.reactivate_code("ABC", reactivated_by="admin", reason='refund "#1"\nline2')
    body = json.loads(adapter.requests[0].body.decode("utf-8"))
    assert body == {"code": "ABC", "reactivated_by": "admin", "reason": 'refund "#1"\nline2'}
    client.reactivate_code("ABC")
    assert json.loads(adapter.requests[1].body) == {"code": "ABC"}


def test_get_code_by_code_percent_encodes_and_signs_encoded_path() -> None:
    client, adapter, _ = scripted_client([ok()])
    client.get_code_by_code("A/B C#1")
    (request,) = adapter.requests
    assert request.path_url == f"/api/v1/projects/{PID}/codes/by-code/A%2FB%20C%231"
    assert_validly_signed(request, "s" * 64)


def test_get_code_by_code_unicode() -> None:
    client, adapter, _ = scripted_client([ok()])
    client.get_code_by_code("兑换码?")
    assert adapter.requests[0].path_url.endswith("/by-code/%E5%85%91%E6%8D%A2%E7%A0%81%3F")
    assert_validly_signed(adapter.requests[0], "s" * 64)


def test_list_codes_query_is_canonical_on_the_wire() -> None:
    client, adapter, _ = scripted_client([ok({"items": []})])
    client.list_codes(page=3, page_size=100, status="unused", search="a b+c&d")
    (request,) = adapter.requests
    assert urlsplit(request.url).query == "page=3&page_size=100&search=a+b%2Bc%26d&status=unused"
    assert_validly_signed(request, "s" * 64)


def test_list_codes_defaults_and_omitted_filters() -> None:
    client, adapter, _ = scripted_client([ok({"items": []})])
    client.list_codes()
    assert urlsplit(adapter.requests[0].url).query == "page=1&page_size=20"


def test_list_codes_with_cursor() -> None:
    client, adapter, _ = scripted_client([ok({"items": []})])
    client.list_codes(page_size=50, cursor="abc==")
    assert urlsplit(adapter.requests[0].url).query == "cursor=abc%3D%3D&page_size=50"


def page(items: list[str], page_no: int, total: int, page_size: int, **extra: object) -> tuple:
    total_pages = -(-total // page_size)
    return ok({"items": [{"code": c} for c in items], "total": total, "page": page_no,
               "page_size": page_size, "total_pages": total_pages, **extra})


def test_iter_codes_walks_pages() -> None:
    replies = [page(["A", "B"], 1, 5, 2), page(["C", "D"], 2, 5, 2), page(["E"], 3, 5, 2)]
    client, adapter, _ = scripted_client(replies)
    assert [c["code"] for c in client.iter_codes(status="unused", page_size=2)] == list("ABCDE")
    queries = [dict(parse_qsl(urlsplit(r.url).query)) for r in adapter.requests]
    assert [q["page"] for q in queries] == ["1", "2", "3"]
    assert all(q["status"] == "unused" and q["page_size"] == "2" for q in queries)


def test_iter_codes_empty() -> None:
    client, adapter, _ = scripted_client([page([], 1, 0, 100)])
    assert list(client.iter_codes()) == []
    assert len(adapter.requests) == 1


def test_iter_codes_follows_cursor() -> None:
    replies = [page(["A", "B"], 1, 3, 2, next_cursor="c1"),
               page(["C"], 1, 3, 2, next_cursor=None)]
    client, adapter, _ = scripted_client(replies)
    assert [c["code"] for c in client.iter_codes(search="X", page_size=2)] == ["A", "B", "C"]
    second = dict(parse_qsl(urlsplit(adapter.requests[1].url).query))
    assert second == {"cursor": "c1", "page_size": "2", "search": "X"}


def test_trailing_slash_in_base_url() -> None:
    client = CodeGateClient("k", "s", "p", "http://h:1/")
    assert client.base_url == "http://h:1"


def test_repr_hides_secret() -> None:
    client = CodeGateClient("key", "very-secret", "pid", "http://h")
    assert "very-secret" not in repr(client)


def test_from_env() -> None:
    env = {"CODEGATE_API_KEY": "k", "CODEGATE_SECRET": "s", "CODEGATE_PROJECT_ID": "p",
           "CODEGATE_BASE_URL": "http://h:9/"}
    client = CodeGateClient.from_env(environ=env, max_retries=1)
    assert (client.api_key, client.secret, client.project_id, client.base_url) == ("k", "s", "p", "http://h:9")
    assert client.max_retries == 1


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"CODEGATE_API_KEY": "k", "CODEGATE_SECRET": "s",
                        "CODEGATE_PROJECT_ID": "p", "CODEGATE_BASE_URL": "http://h"}.items():
        monkeypatch.setenv(name, value)
    assert CodeGateClient.from_env().base_url == "http://h"


def test_from_env_names_missing_variables() -> None:
    with pytest.raises(ConfigurationError, match="CODEGATE_SECRET") as info:
        CodeGateClient.from_env(environ={"CODEGATE_API_KEY": "k", "CODEGATE_PROJECT_ID": "p",
                                         "CODEGATE_BASE_URL": "http://h"})
    assert "CODEGATE_API_KEY" not in str(info.value)
    with pytest.raises(ValueError, match="CODEGATE_API_KEY, CODEGATE_SECRET, CODEGATE_PROJECT_ID, CODEGATE_BASE_URL"):
        CodeGateClient.from_env(environ={})


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        CodeGateClient("k", "s", "p", "http://h", max_retries=-1)


def test_context_manager_closes_own_session() -> None:
    with CodeGateClient("k", "s", "p", "http://h") as client:
        session = client.session
    assert isinstance(session, requests.Session)
    # A caller's session is left open.
    mine = requests.Session()
    with CodeGateClient("k", "s", "p", "http://h", session=mine) as client:
        assert client.session is mine


def test_timeout_is_passed_through() -> None:
    seen = {}

    class Recorder(requests.adapters.BaseAdapter):
        def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
            seen["timeout"] = kwargs.get("timeout")
            raise requests.ConnectTimeout("nope")

        def close(self) -> None:
            pass

    session = requests.Session()
    session.mount("http://", Recorder())
    client = CodeGateClient("k", "s", "p", "http://h", session=session, timeout=(1.0, 4.0),
                            max_retries=0)
    with pytest.raises(requests.ConnectTimeout):
        client.get_project()
    assert seen["timeout"] == (1.0, 4.0)
