"""Typed HTTP errors raised by :class:`codegate_sdk.CodeGateClient`.

Every error is a :class:`requests.HTTPError`, so code written for the 0.1 client
(``except requests.HTTPError as e: e.response.status_code``) keeps working.
The server answers errors as RFC 9457 ``application/problem+json`` documents
``{type, title, status, detail, code}``; their fields are exposed as attributes.
Bodies that are not JSON (a proxy's HTML page, say) are tolerated: ``detail``
then holds the body text.

Business failures of verify / reactivate (``success: false`` with an
``error_code``) are HTTP 200 answers and are *returned*, never raised.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import math
import time
from typing import Any, Optional

import requests

__all__ = [
    "CodeGateError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "ValidationError",
    "QuotaExceededError",
    "RateLimitError",
    "ServerError",
    "ConfigurationError",
    "error_for_response",
    "parse_retry_after",
]

_MAX_DETAIL_TEXT = 500


class ConfigurationError(ValueError):
    """The client could not be configured (e.g. a missing environment variable)."""


class CodeGateError(requests.HTTPError):
    """An HTTP error answer (4xx / 5xx) from the CodeGate API.

    Attributes:
        status_code: HTTP status of the answer.
        code: Machine-readable ``code`` of the problem document
            (e.g. ``"INVALID_SIGNATURE"``), or ``None``.
        detail: Human-readable explanation (problem ``detail``, or the body
            text when the body is not JSON), or ``None``.
        title: Problem ``title``, or ``None``.
        type: Problem ``type`` URI, or ``None``.
        problem: The decoded JSON body when it was a JSON object, else ``None``.
        response: The :class:`requests.Response` (as for any ``HTTPError``).
    """

    def __init__(
        self,
        message: str,
        *,
        response: Optional[requests.Response] = None,
        status_code: Optional[int] = None,
        code: Optional[str] = None,
        detail: Optional[str] = None,
        title: Optional[str] = None,
        type: Optional[str] = None,
        problem: Optional[dict[str, Any]] = None,
    ) -> None:
        request = response.request if response is not None else None
        super().__init__(message, response=response, request=request)
        if status_code is None and response is not None:
            status_code = response.status_code
        self.status_code: Optional[int] = status_code
        self.code: Optional[str] = code
        self.detail: Optional[str] = detail
        self.title: Optional[str] = title
        self.type: Optional[str] = type
        self.problem: Optional[dict[str, Any]] = problem


class AuthenticationError(CodeGateError):
    """401: missing, unknown or disabled key, bad signature, stale timestamp,
    replayed request, or a disabled project on a read endpoint."""


class PermissionDeniedError(CodeGateError):
    """403: the credential may not access this project or action."""


class NotFoundError(CodeGateError):
    """404: unknown project or code id."""


class ConflictError(CodeGateError):
    """409: conflict, e.g. the same ``Idempotency-Key`` is still being processed."""


class ValidationError(CodeGateError):
    """400, 413 or 422: the request was malformed, too large or invalid."""


class QuotaExceededError(CodeGateError):
    """402: a project quota (codes, redemptions per period) is exhausted."""


class RateLimitError(CodeGateError):
    """429: rate limited.

    Attributes:
        retry_after: Seconds to wait before retrying (from ``Retry-After``),
            or ``None`` when the server did not say.
        policy: Name of the rate-limit policy that was exceeded, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: Optional[float] = None,
        policy: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after: Optional[float] = retry_after
        self.policy: Optional[str] = policy


class ServerError(CodeGateError):
    """5xx: a fault on the server or on a proxy in front of it."""


_BY_STATUS: dict[int, type[CodeGateError]] = {
    400: ValidationError,
    401: AuthenticationError,
    402: QuotaExceededError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: ValidationError,
    422: ValidationError,
    429: RateLimitError,
}


def error_class_for_status(status: int) -> type[CodeGateError]:
    """Return the exception class used for an HTTP status (>= 400)."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, CodeGateError)


def parse_retry_after(value: Optional[str], *, now: Optional[float] = None) -> Optional[float]:
    """Parse a ``Retry-After`` header value into seconds to wait.

    Accepts delta-seconds (``"2"``, also a decimal such as ``"1.5"``) and an
    HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``, converted relative to
    ``now``, the current Unix time by default, and clamped at 0).

    Returns:
        Seconds as a float, or ``None`` when the value is absent or unusable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
            return None
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT
        when = when.replace(tzinfo=datetime.timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _problem_fields(response: requests.Response) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """Return (JSON object body or None, plain text fallback or None)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data, None
    text = (response.text or "").strip()
    if len(text) > _MAX_DETAIL_TEXT:
        text = text[:_MAX_DETAIL_TEXT] + "…"
    return None, text or None


def _as_text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    # FastAPI-style validation errors put a list in ``detail``.
    return json.dumps(value, ensure_ascii=False)


def error_for_response(response: requests.Response) -> CodeGateError:
    """Build the typed exception for an error answer (status >= 400).

    The caller raises it. The problem document's ``code``, ``detail``,
    ``title`` and ``type`` become attributes; for 429 ``retry_after`` comes
    from ``Retry-After``.
    """
    status = response.status_code
    problem, text = _problem_fields(response)
    code = detail = title = type_ = None
    if problem is not None:
        code = _as_text(problem.get("code"))
        detail = _as_text(problem.get("detail"))
        title = _as_text(problem.get("title"))
        type_ = _as_text(problem.get("type"))
    else:
        detail = text
    reason = response.reason or title or ""
    method = response.request.method if response.request is not None else ""
    message = f"{status} {reason}".strip()
    if code:
        message += f" [{code}]"
    if detail:
        message += f": {detail}"
    if method or response.url:
        message += f" ({method} {response.url})".replace("( ", "(")
    cls = error_class_for_status(status)
    kwargs: dict[str, Any] = dict(
        response=response,
        status_code=status,
        code=code,
        detail=detail,
        title=title,
        type=type_,
        problem=problem,
    )
    if cls is RateLimitError:
        policy = problem.get("policy") if problem is not None else None
        return RateLimitError(
            message,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            policy=policy if isinstance(policy, str) else None,
            **kwargs,
        )
    return cls(message, **kwargs)
