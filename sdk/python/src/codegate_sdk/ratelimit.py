"""Rate-limit header parsing and the optional client-side throttle.

CodeGate sends, on every answer, the IETF httpapi draft headers::

    RateLimit-Policy: "reads";q=600;w=60
    RateLimit: "reads";r=587;t=42

and the widely used ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset``. :func:`parse_rate_limit_headers` turns either form into
:class:`RateLimitInfo` records; :class:`Throttle` uses them to wait until a
policy's quota is back instead of collecting a 429.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Optional

__all__ = [
    "RateLimitInfo",
    "parse_structured_list",
    "parse_rate_limit_headers",
    "Throttle",
]

#: ``X-RateLimit-Reset`` values at least this large are Unix timestamps
#: (GitHub style); smaller ones are seconds from now.
_EPOCH_THRESHOLD = 1_000_000_000.0


@dataclass(frozen=True)
class RateLimitInfo:
    """The state of one rate-limit policy as reported by one answer.

    Attributes:
        policy: Policy name (e.g. ``"reads"``), or ``None`` when the answer
            only carried unnamed ``X-RateLimit-*`` headers.
        remaining: Requests left in the current window, if reported.
        reset: Seconds (from when the answer was received) until the quota is
            available again, if reported.
        limit: Quota of the policy (``q`` / ``X-RateLimit-Limit``), if reported.
        window: Window of the policy in seconds (``w``), if reported.
    """

    policy: Optional[str]
    remaining: Optional[int] = None
    reset: Optional[float] = None
    limit: Optional[int] = None
    window: Optional[float] = None


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and in_quotes:
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            in_quotes = not in_quotes
        elif char == separator and not in_quotes:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped:
                out.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            else:
                out.append(char)
        return "".join(out)
    return text


def parse_structured_list(value: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a structured-field list such as ``"a";r=1;t=2, "b";r=0;t=5``.

    This is a lenient parser for the shapes used by rate-limit headers: each
    member is a (quoted or bare) name followed by ``;key=value`` parameters.

    Returns:
        A list of ``(name, {param: value})`` with names and values unquoted.
    """
    members: list[tuple[str, dict[str, str]]] = []
    for raw_member in _split_outside_quotes(value, ","):
        if not raw_member.strip():
            continue
        pieces = _split_outside_quotes(raw_member, ";")
        name = _unquote(pieces[0])
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            if not piece.strip():
                continue
            key, sep, val = piece.partition("=")
            params[key.strip().lower()] = _unquote(val) if sep else "?1"
        members.append((name, params))
    return members


def _to_int(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    try:
        return int(float(value.strip()))
    except (ValueError, OverflowError):
        return None


def _to_float(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def parse_rate_limit_headers(
    headers: Mapping[str, str], *, now: Optional[float] = None
) -> list[RateLimitInfo]:
    """Read rate-limit state from an answer's headers.

    ``RateLimit`` (one member per policy, with ``r`` = remaining and ``t`` =
    seconds to reset) is preferred; ``RateLimit-Policy`` adds ``q`` and ``w``.
    Without ``RateLimit``, ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` /
    ``X-RateLimit-Limit`` are used, named after the first ``RateLimit-Policy``
    member when there is one. ``X-RateLimit-Reset`` is read as seconds from
    now, or as a Unix timestamp when it is that large (relative to ``now``,
    the current time by default).

    Args:
        headers: The answer's headers (case-insensitive mapping, as requests
            gives them).
        now: Current Unix time, for absolute ``X-RateLimit-Reset`` values.

    Returns:
        One :class:`RateLimitInfo` per reported policy (possibly empty).
    """
    policies: dict[str, dict[str, str]] = {}
    policy_order: list[str] = []
    policy_header = headers.get("RateLimit-Policy")
    if policy_header:
        for name, params in parse_structured_list(policy_header):
            if name not in policies:
                policy_order.append(name)
            policies[name] = params

    result: list[RateLimitInfo] = []
    ratelimit_header = headers.get("RateLimit")
    if ratelimit_header:
        for name, params in parse_structured_list(ratelimit_header):
            policy_params = policies.get(name, {})
            result.append(
                RateLimitInfo(
                    policy=name or None,
                    remaining=_to_int(params.get("r")),
                    reset=_to_float(params.get("t")),
                    limit=_to_int(policy_params.get("q")),
                    window=_to_float(policy_params.get("w")),
                )
            )
        if result:
            return result

    remaining = _to_int(headers.get("X-RateLimit-Remaining"))
    reset = _to_float(headers.get("X-RateLimit-Reset"))
    limit = _to_int(headers.get("X-RateLimit-Limit"))
    if remaining is None and reset is None and limit is None:
        return result
    if reset is not None and reset >= _EPOCH_THRESHOLD:
        current = time.time() if now is None else now
        reset = max(0.0, reset - current)
    policy_name = policy_order[0] if policy_order else None
    window = _to_float(policies[policy_name].get("w")) if policy_name is not None else None
    result.append(
        RateLimitInfo(policy=policy_name, remaining=remaining, reset=reset, limit=limit, window=window)
    )
    return result


class Throttle:
    """Client-side throttle driven by the server's rate-limit headers.

    Each request belongs to a *route* (one per client method). After every
    answer, :meth:`observe` records which policies the route counts against and,
    for each policy whose remaining quota reached 0, the time at which it is
    available again. Before the next request of a route, :meth:`delay` tells how
    long to wait so that request does not hit a 429.

    ``default_policies`` maps routes to the policy they are expected to count
    against (``"reads"``, ``"redemption"``). A route not answered yet uses the
    policies the server reported for another route of the same expected policy,
    or the expected name itself.

    Thread-safe; time comes from ``clock`` (Unix seconds).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        default_policies: Optional[Mapping[str, tuple[str, ...]]] = None,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._not_before: dict[str, float] = {}
        self._defaults: dict[str, tuple[str, ...]] = dict(default_policies or {})
        self._route_policies: dict[str, tuple[str, ...]] = {}
        self._group_policies: dict[tuple[str, ...], tuple[str, ...]] = {}

    def _policies_of(self, route: str) -> tuple[str, ...]:
        learned = self._route_policies.get(route)
        if learned is not None:
            return learned
        group = self._defaults.get(route)
        if group is None:
            return ()
        return self._group_policies.get(group, group)

    def delay(self, route: str) -> float:
        """Seconds to wait before sending a request of ``route`` (0 if none)."""
        now = self._clock()
        with self._lock:
            wait = 0.0
            for policy in self._policies_of(route):
                ready_at = self._not_before.get(policy)
                if ready_at is not None:
                    wait = max(wait, ready_at - now)
            return max(0.0, wait)

    def observe(self, route: str, headers: Mapping[str, str]) -> list[RateLimitInfo]:
        """Record the rate-limit state carried by an answer to ``route``.

        Returns:
            The parsed :class:`RateLimitInfo` records.
        """
        now = self._clock()
        infos = parse_rate_limit_headers(headers, now=now)
        if not infos:
            return infos
        names: list[str] = []
        with self._lock:
            for info in infos:
                name = info.policy if info.policy is not None else f"route:{route}"
                names.append(name)
                if info.remaining is not None and info.remaining <= 0:
                    if info.reset is not None:
                        self._not_before[name] = now + max(0.0, info.reset)
                elif info.remaining is not None:
                    self._not_before.pop(name, None)
            self._route_policies[route] = tuple(names)
            group = self._defaults.get(route)
            if group is not None:
                self._group_policies[group] = tuple(names)
        return infos

    def note_retry_after(self, route: str, seconds: float) -> None:
        """Record a 429's ``Retry-After`` for every policy of ``route``."""
        now = self._clock()
        with self._lock:
            names = self._policies_of(route) or (f"route:{route}",)
            self._route_policies[route] = names
            for name in names:
                self._not_before[name] = max(self._not_before.get(name, 0.0), now + seconds)
