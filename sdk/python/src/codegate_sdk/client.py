"""The CodeGate API client."""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Optional, Union
from urllib.parse import quote

import requests

from . import __version__
from .errors import (
    CodeGateError,
    ConfigurationError,
    RateLimitError,
    error_for_response,
    parse_retry_after,
)
from .ratelimit import Throttle, parse_rate_limit_headers
from .retry import is_retryable_status, retry_delay
from .signature import canonical_query, generate_signature

__all__ = ["CodeGateClient", "DEFAULT_USER_AGENT"]

logger = logging.getLogger("codegate_sdk")

#: ``User-Agent`` sent unless the caller chooses another.
DEFAULT_USER_AGENT = f"codegate-sdk-python/{__version__} python-requests/{requests.__version__}"

#: Methods that never change state and may always be retried.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Policy a route is assumed to count against before the server has said.
_DEFAULT_ROUTE_POLICIES: dict[str, tuple[str, ...]] = {
    "get_project": ("reads",),
    "list_codes": ("reads",),
    "get_code": ("reads",),
    "get_code_by_code": ("reads",),
    "get_statistics": ("reads",),
    "verify_code": ("redemption",),
    "reactivate_code": ("redemption",),
}

Timeout = Union[float, tuple[float, float], None]
JSON = dict[str, Any]


class CodeGateClient:
    """Client for the CodeGate SDK API, authenticated with an HMAC API key.

    Every request is signed (``X-API-Key``, ``X-Timestamp``, ``X-Nonce``,
    ``X-Signature``). Error answers raise subclasses of
    :class:`requests.HTTPError` (see :mod:`codegate_sdk.errors`); business
    failures of verify / reactivate are returned as ``{"success": False,
    "error_code": ...}``.

    Reads are retried on connection errors, 5xx and 429 with exponential
    backoff and full jitter, never sooner than the server's ``Retry-After``.
    Verify and reactivate carry an ``Idempotency-Key`` (a fresh one per call
    unless you pass your own), so they are retried the same way and a retry
    gets the first answer back instead of ``CODE_ALREADY_USED``. Every attempt
    is signed anew, with a new timestamp and nonce.

    Example::

        client = CodeGateClient(api_key, secret, project_id, "https://codegate.example.com")
        result = client.verify_code("ABCD-EFGH-JKLM", verified_by="user-42")
        if result["success"]:
            grant(result.get("metadata"))
        else:
            print(result["error_code"])
    """

    def __init__(
        self,
        api_key: str,
        secret: str,
        project_id: str,
        base_url: str = "https://api.example.com",
        *,
        timeout: Timeout = 10.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        throttle: bool = False,
        session: Optional[requests.Session] = None,
        user_agent: Optional[str] = None,
        auto_idempotency_keys: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a client.

        Args:
            api_key: Public API key (32 hex characters).
            secret: API secret (64 hex characters), used to sign requests.
            project_id: Project id (32 hex characters) the key belongs to.
            base_url: Server URL, e.g. ``"https://codegate.example.com"``.
            timeout: Seconds to wait for the server, per attempt; a float or a
                ``(connect, read)`` tuple; ``None`` waits forever.
            max_retries: Retries after the first attempt (0 disables retries).
            backoff_base: Backoff scale in seconds: retry ``n`` (from 0) waits a
                random time in ``[0, min(backoff_max, backoff_base * 2**n)]``.
            backoff_max: Longest backoff in seconds. A ``Retry-After`` longer
                than this is not waited for: the error is raised instead.
            throttle: When true, read the rate-limit headers of each answer and,
                once a policy's remaining quota is 0, wait until it resets
                before the next request of that policy, instead of getting 429.
            session: A :class:`requests.Session` to use (for proxies, TLS
                settings, hooks, ...). The client does not change its settings.
            user_agent: ``User-Agent`` header; default ``codegate-sdk-python/<version>``.
            auto_idempotency_keys: Send a fresh ``Idempotency-Key`` on every
                verify / reactivate that does not get one explicitly. Without a
                key those calls are never retried.
            sleep: Function used to wait (injectable for tests).
            clock: Function returning the current Unix time in seconds
                (used for ``X-Timestamp`` and the throttle; injectable for tests).

        Raises:
            ValueError: if a numeric setting is out of range.
        """
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must be >= 0")
        self.api_key = api_key
        self.secret = secret
        self.project_id = project_id
        self.base_url = base_url.rstrip("/")
        self.timeout: Timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.auto_idempotency_keys = auto_idempotency_keys
        self._owns_session = session is None
        self.session: requests.Session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._rand: Callable[[], float] = random.random
        self.throttle: Optional[Throttle] = (
            Throttle(clock=clock, default_policies=_DEFAULT_ROUTE_POLICIES) if throttle else None
        )

    # ------------------------------------------------------------------ setup

    @classmethod
    def from_env(
        cls, *, environ: Optional[Mapping[str, str]] = None, **kwargs: Any
    ) -> "CodeGateClient":
        """Create a client from ``CODEGATE_API_KEY``, ``CODEGATE_SECRET``,
        ``CODEGATE_PROJECT_ID`` and ``CODEGATE_BASE_URL``.

        Args:
            environ: Mapping to read instead of :data:`os.environ`.
            **kwargs: Further keyword arguments for the constructor.

        Raises:
            ConfigurationError: naming every variable that is missing or empty.
        """
        env = os.environ if environ is None else environ
        names = ("CODEGATE_API_KEY", "CODEGATE_SECRET", "CODEGATE_PROJECT_ID", "CODEGATE_BASE_URL")
        values = {name: (env.get(name) or "").strip() for name in names}
        missing = [name for name in names if not values[name]]
        if missing:
            raise ConfigurationError(
                "missing environment variable"
                + ("s " if len(missing) > 1 else " ")
                + ", ".join(missing)
                + " (needed by CodeGateClient.from_env)"
            )
        return cls(
            values["CODEGATE_API_KEY"],
            values["CODEGATE_SECRET"],
            values["CODEGATE_PROJECT_ID"],
            values["CODEGATE_BASE_URL"],
            **kwargs,
        )

    def close(self) -> None:
        """Close the HTTP session if the client created it."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> "CodeGateClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(api_key={self.api_key!r}, project_id={self.project_id!r}, "
            f"base_url={self.base_url!r})"
        )

    # ---------------------------------------------------------------- signing

    def _generate_signature(
        self,
        method: str,
        path: str,
        query_params: Optional[Mapping[str, Any]] = None,
        body: Optional[Union[str, bytes]] = None,
        timestamp: Optional[int] = None,
        nonce: Optional[str] = None,
    ) -> str:
        """Sign a request with this client's secret (current time by default)."""
        if timestamp is None:
            timestamp = int(self._clock())
        return generate_signature(
            method, path, query_params, body, timestamp, self.secret, nonce=nonce
        )

    def _signed_headers(
        self,
        method: str,
        path: str,
        query_params: Optional[Mapping[str, Any]],
        body: Optional[bytes],
    ) -> dict[str, str]:
        """Headers of one attempt: fresh timestamp, fresh nonce, signature."""
        timestamp = int(self._clock())
        nonce = uuid.uuid4().hex
        signature = generate_signature(
            method, path, query_params, body, timestamp, self.secret, nonce=nonce
        )
        headers = {
            "X-API-Key": self.api_key,
            "X-Timestamp": str(timestamp),
            "X-Nonce": nonce,
            "X-Signature": signature,
            "User-Agent": self.user_agent,
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    # --------------------------------------------------------------- requests

    def _make_request(
        self,
        method: str,
        path: str,
        query_params: Optional[Mapping[str, Any]] = None,
        body: Optional[Mapping[str, Any]] = None,
        *,
        route: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> JSON:
        """Send a signed request, with retries and throttling, and decode it.

        Args:
            method: HTTP method.
            path: Path under the base URL, already percent-encoded.
            query_params: Query parameters (values converted with ``str()``).
            body: JSON body, serialised once and sent as UTF-8 bytes.
            route: Name used by the throttle (defaults to ``"METHOD path"``).
            idempotency_key: Sent as ``Idempotency-Key``; makes a non-GET
                request retryable.

        Returns:
            The decoded JSON answer (``{}`` for an empty body).

        Raises:
            CodeGateError: (a subclass of it) for an error answer.
            requests.RequestException: for connection errors and timeouts once
                retries are exhausted.
        """
        method = method.upper()
        route = route or f"{method} {path}"
        query = canonical_query(query_params)
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        data: Optional[bytes] = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        retry_safe = method in _SAFE_METHODS or idempotency_key is not None

        attempt = 0
        while True:
            if self.throttle is not None:
                wait = self.throttle.delay(route)
                if wait > 0:
                    logger.debug("throttle: waiting %.3fs before %s", wait, route)
                    self._sleep(wait)

            headers = self._signed_headers(method, path, query_params, data)
            if idempotency_key is not None:
                headers["Idempotency-Key"] = idempotency_key

            try:
                response = self.session.request(
                    method, url, data=data, headers=headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if retry_safe and attempt < self.max_retries:
                    delay = retry_delay(
                        attempt, self.backoff_base, self.backoff_max, None, self._rand
                    )
                    logger.debug("%s %s failed (%s); retry in %.3fs", method, path, exc, delay)
                    self._sleep(delay)
                    attempt += 1
                    continue
                raise

            if self.throttle is not None:
                self.throttle.observe(route, response.headers)

            if response.status_code < 400:
                return _decode(response)

            error = error_for_response(response)
            if self._should_retry(error, retry_safe, idempotency_key, attempt):
                retry_after = _retry_after_of(error, response, self._clock())
                if retry_after is not None and retry_after > self.backoff_max:
                    raise error
                if retry_after is not None and self.throttle is not None:
                    self.throttle.note_retry_after(route, retry_after)
                delay = retry_delay(
                    attempt, self.backoff_base, self.backoff_max, retry_after, self._rand
                )
                logger.debug(
                    "%s %s answered %s; retry in %.3fs", method, path, response.status_code, delay
                )
                response.close()
                self._sleep(delay)
                attempt += 1
                continue
            raise error

    def _should_retry(
        self,
        error: CodeGateError,
        retry_safe: bool,
        idempotency_key: Optional[str],
        attempt: int,
    ) -> bool:
        if not retry_safe or attempt >= self.max_retries:
            return False
        status = error.status_code or 0
        if is_retryable_status(status):
            return True
        # 409 on an idempotent request while one of *our own* earlier attempts
        # may still be running on the server: wait and ask again.
        return status == 409 and idempotency_key is not None and attempt > 0

    # ------------------------------------------------------------ project API

    def _project_path(self, suffix: str = "") -> str:
        return f"/api/v1/projects/{quote(self.project_id, safe='')}{suffix}"

    def get_project(self) -> JSON:
        """Get the project: ``id, name, description, status, expires_at,
        created_at`` and ``statistics`` (code counts by state).

        Returns:
            The project as a dict.
        """
        return self._make_request("GET", self._project_path(), route="get_project")

    # ---------------------------------------------------------------- codes

    def list_codes(
        self,
        page: int = 1,
        page_size: int = 20,
        status: Optional[str] = None,
        search: Optional[str] = None,
        *,
        cursor: Optional[str] = None,
    ) -> JSON:
        """List codes, newest first.

        Args:
            page: Page number, from 1.
            page_size: Codes per page, 1-100.
            status: Only codes in this state: ``"unused"``, ``"used"``,
                ``"disabled"`` or ``"expired"``.
            search: Only codes containing this text.
            cursor: Continue from an opaque ``next_cursor`` of an earlier page
                instead of using ``page`` (fast for very deep listings).

        Returns:
            ``{items, total, page, page_size, total_pages}`` (plus
            ``next_cursor`` when the server offers one).
        """
        params: dict[str, Any] = {"page_size": page_size}
        if cursor is not None:
            params["cursor"] = cursor
        else:
            params["page"] = page
        if status:
            params["status"] = status
        if search:
            params["search"] = search
        return self._make_request(
            "GET", self._project_path("/codes"), query_params=params, route="list_codes"
        )

    def iter_codes(
        self,
        status: Optional[str] = None,
        search: Optional[str] = None,
        page_size: int = 100,
    ) -> Iterator[JSON]:
        """Yield every code matching the filters, page after page.

        Follows the server's ``next_cursor`` when it offers one (stable and
        fast however deep), else walks page numbers up to ``total_pages``.

        Args:
            status: State filter, as for :meth:`list_codes`.
            search: Substring filter, as for :meth:`list_codes`.
            page_size: Codes fetched per request (1-100).

        Yields:
            Code items as dicts.
        """
        result = self.list_codes(page=1, page_size=page_size, status=status, search=search)
        page = 1
        seen_cursors: set[str] = set()
        while True:
            items = result.get("items") or []
            yield from items
            if not items:
                return
            next_cursor = result.get("next_cursor")
            if "next_cursor" in result:
                if not next_cursor or next_cursor in seen_cursors:
                    return
                seen_cursors.add(next_cursor)
                result = self.list_codes(
                    page_size=page_size, status=status, search=search, cursor=next_cursor
                )
                continue
            total_pages = result.get("total_pages")
            if total_pages is not None and page >= int(total_pages):
                return
            if total_pages is None and len(items) < page_size:
                return
            page += 1
            result = self.list_codes(page=page, page_size=page_size, status=status, search=search)

    def get_code(self, code_id: str) -> JSON:
        """Get one code by its id, with its ``verification_logs``.

        Raises:
            NotFoundError: when no code of this project has that id.
        """
        path = self._project_path(f"/codes/{quote(code_id, safe='')}")
        return self._make_request("GET", path, route="get_code")

    def get_code_by_code(self, code: str) -> JSON:
        """Get one code by the code string people type, with its
        ``verification_logs``. The code is percent-encoded in the path.

        Raises:
            NotFoundError: when the project has no such code.
        """
        path = self._project_path(f"/codes/by-code/{quote(code, safe='')}")
        return self._make_request("GET", path, route="get_code_by_code")

    # ------------------------------------------------------------ redemption

    def _idempotency_key(self, given: Optional[str]) -> Optional[str]:
        if given is not None:
            return given
        return uuid.uuid4().hex if self.auto_idempotency_keys else None

    def verify_code(
        self,
        code: str,
        verified_by: Optional[str] = None,
        *,
        idempotency_key: Optional[str] = None,
    ) -> JSON:
        """Verify (redeem) a code: one use of it, exactly once.

        Args:
            code: The code string.
            verified_by: Who redeemed it (your user id, say); stored and shown
                in the code's logs.
            idempotency_key: ``Idempotency-Key`` to send (<= 255 chars). A
                repeat with the same key within 24 h gets the first answer
                again. Default: a fresh random key, reused by this call's own
                retries.

        Returns:
            ``{success, code_id, code, verified_at, message, error_code}``;
            on success also ``metadata``. ``success`` is false with
            ``error_code`` ``CODE_NOT_FOUND``, ``CODE_DISABLED``,
            ``CODE_ALREADY_USED``, ``CODE_EXPIRED``, ``PROJECT_DISABLED`` or
            ``PROJECT_EXPIRED`` for business failures (no exception).
        """
        body: dict[str, Any] = {"code": code}
        if verified_by:
            body["verified_by"] = verified_by
        return self._make_request(
            "POST",
            self._project_path("/codes/verify"),
            body=body,
            route="verify_code",
            idempotency_key=self._idempotency_key(idempotency_key),
        )

    def reactivate_code(
        self,
        code: str,
        reactivated_by: Optional[str] = None,
        reason: Optional[str] = None,
        *,
        idempotency_key: Optional[str] = None,
    ) -> JSON:
        """Reactivate a code: give one use back.

        Args:
            code: The code string.
            reactivated_by: Who did it; stored in the code's logs.
            reason: Why (a refund, say); stored in the code's logs.
            idempotency_key: As for :meth:`verify_code`.

        Returns:
            ``{success, code_id, code, reactivated_at, message, error_code}``;
            ``error_code`` is ``CODE_ALREADY_UNUSED`` when the code has no use
            to give back, ``CODE_NOT_FOUND`` when it does not exist.
        """
        body: dict[str, Any] = {"code": code}
        if reactivated_by:
            body["reactivated_by"] = reactivated_by
        if reason:
            body["reason"] = reason
        return self._make_request(
            "POST",
            self._project_path("/codes/reactivate"),
            body=body,
            route="reactivate_code",
            idempotency_key=self._idempotency_key(idempotency_key),
        )

    # ------------------------------------------------------------ statistics

    def get_statistics(self) -> JSON:
        """Get the project's statistics: ``total_codes, used_codes,
        unused_codes, disabled_codes, expired_codes, usage_rate`` and the 10
        newest ``recent_verifications``."""
        return self._make_request("GET", self._project_path("/statistics"), route="get_statistics")


def _decode(response: requests.Response) -> JSON:
    if not response.content:
        return {}
    data = response.json()
    if isinstance(data, dict):
        return data
    return {"data": data}


def _retry_after_of(
    error: CodeGateError, response: requests.Response, now: float
) -> Optional[float]:
    """Seconds the server asked us to wait, from ``Retry-After`` or, for a
    429 without it, from the exhausted policies of the ``RateLimit`` headers."""
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        return error.retry_after
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
    if retry_after is not None:
        return retry_after
    if response.status_code == 429:
        waits = [
            info.reset
            for info in parse_rate_limit_headers(response.headers, now=now)
            if info.reset is not None and (info.remaining is None or info.remaining <= 0)
        ]
        if waits:
            return max(waits)
    return None
