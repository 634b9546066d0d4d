"""Request signing for the CodeGate API (scheme ``codegate-hmac-v1``).

A signed request carries the headers ``X-API-Key``, ``X-Timestamp`` (Unix
seconds), ``X-Signature`` and optionally ``X-Nonce``. The signature is the
lower-case hex HMAC-SHA256, keyed with the API secret's UTF-8 bytes, over::

    METHOD \\n PATH \\n CANONICAL_QUERY \\n SHA256_HEX(BODY) \\n TIMESTAMP [\\n NONCE]

* ``PATH`` is the path exactly as sent on the wire (still percent-encoded),
  without the query string.
* ``CANONICAL_QUERY`` is the query's pairs sorted by key (then value) and
  form-encoded the way :func:`urllib.parse.urlencode` does it (space becomes
  ``+``; ``A-Z a-z 0-9 _ . - ~`` are kept; everything else is ``%XX`` of UTF-8).
* ``BODY`` is the exact byte string sent; no body hashes as the empty string.
* ``NONCE`` is a sixth line, present only when the request sends ``X-Nonce``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union
from urllib.parse import urlencode

__all__ = [
    "EMPTY_STRING_HASH",
    "QueryParams",
    "Body",
    "canonical_query",
    "body_sha256",
    "string_to_sign",
    "generate_signature",
]

#: SHA-256 of the empty string: the body hash of a request without a body.
EMPTY_STRING_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#: Query parameters: a mapping or a sequence of ``(key, value)`` pairs. Values
#: are converted with ``str()``.
QueryParams = Union[Mapping[str, Any], Iterable[tuple[str, Any]]]

#: A request body: text (hashed as UTF-8) or the exact bytes sent.
Body = Union[str, bytes, bytearray, memoryview]


def _pairs(query_params: Optional[QueryParams]) -> list[tuple[str, str]]:
    if not query_params:
        return []
    items: Iterable[tuple[Any, Any]]
    if isinstance(query_params, Mapping):
        items = query_params.items()
    else:
        items = query_params
    return [(str(key), str(value)) for key, value in items]


def canonical_query(query_params: Optional[QueryParams]) -> str:
    """Return the canonical query string used in the string to sign.

    The pairs are sorted by key, then by value (Python's code-point order), and
    encoded with :func:`urllib.parse.urlencode`. The client also sends exactly
    this string on the wire.

    Args:
        query_params: Mapping or sequence of ``(key, value)`` pairs, or ``None``.

    Returns:
        The encoded query without a leading ``?``; ``""`` when there is none.
    """
    pairs = _pairs(query_params)
    if not pairs:
        return ""
    return urlencode(sorted(pairs))


def body_sha256(body: Optional[Body]) -> str:
    """Return the lower-case hex SHA-256 of a request body.

    Text is hashed as its UTF-8 bytes; ``None`` and an empty body hash as the
    empty string (:data:`EMPTY_STRING_HASH`).
    """
    if body is None:
        return EMPTY_STRING_HASH
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if not data:
        return EMPTY_STRING_HASH
    return hashlib.sha256(data).hexdigest()


def string_to_sign(
    method: str,
    path: str,
    query_params: Optional[QueryParams] = None,
    body: Optional[Body] = None,
    timestamp: Optional[int] = None,
    *,
    nonce: Optional[str] = None,
) -> str:
    """Build the string that is signed (see the module documentation).

    Raises:
        ValueError: if ``timestamp`` is missing.
    """
    if timestamp is None:
        raise ValueError("timestamp is required")
    lines = [
        method,
        path,
        canonical_query(query_params),
        body_sha256(body),
        str(int(timestamp)),
    ]
    if nonce is not None:
        lines.append(nonce)
    return "\n".join(lines)


def generate_signature(
    method: str,
    path: str,
    query_params: Optional[QueryParams] = None,
    body: Optional[Body] = None,
    timestamp: Optional[int] = None,
    secret: Optional[str] = None,
    *,
    nonce: Optional[str] = None,
) -> str:
    """Compute the HMAC-SHA256 request signature.

    Args:
        method: HTTP method in upper case, e.g. ``"GET"`` or ``"POST"``.
        path: Request path as sent on the wire (percent-encoded), without query.
        query_params: Query parameters (mapping or pairs), or ``None``.
        body: The exact request body (text is hashed as UTF-8), or ``None``.
        timestamp: Unix time in seconds, the value of ``X-Timestamp``.
        secret: The API secret; its UTF-8 bytes are the HMAC key.
        nonce: The ``X-Nonce`` value when the request sends one; it becomes the
            sixth line of the string to sign.

    Returns:
        64 lower-case hex characters, the value of ``X-Signature``.

    Raises:
        ValueError: if ``timestamp`` or ``secret`` is missing.
    """
    if timestamp is None:
        raise ValueError("timestamp is required")
    if secret is None:
        raise ValueError("secret is required")
    message = string_to_sign(method, path, query_params, body, timestamp, nonce=nonce)
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()
