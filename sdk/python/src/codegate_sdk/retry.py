"""Backoff computation for retries: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Optional

__all__ = ["backoff_delay", "retry_delay", "is_retryable_status"]

#: 5xx statuses a retry cannot fix.
_NOT_RETRYABLE_5XX = frozenset({501, 505})


def is_retryable_status(status: int) -> bool:
    """True for 429 and for 5xx answers (except 501 and 505)."""
    if status == 429:
        return True
    return 500 <= status < 600 and status not in _NOT_RETRYABLE_5XX


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with full jitter.

    Args:
        attempt: 0 for the first retry, 1 for the second, ...
        base: Scale of the backoff in seconds.
        cap: Largest backoff in seconds.
        rand: Source of uniform numbers in ``[0, 1)``.

    Returns:
        A delay drawn uniformly from ``[0, min(cap, base * 2**attempt)]``.
    """
    ceiling = min(cap, base * (2.0 ** max(0, attempt)))
    return max(0.0, rand() * ceiling)


def retry_delay(
    attempt: int,
    base: float,
    cap: float,
    retry_after: Optional[float] = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before retry number ``attempt + 1``.

    The jittered backoff, but never less than ``retry_after`` (the server's
    ``Retry-After``) when one was given.
    """
    delay = backoff_delay(attempt, base, cap, rand)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
