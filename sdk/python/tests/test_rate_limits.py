"""Retries, backoff and throttling against a real server that rate-limits.

A second server is started with ``CODEGATE_RATE_LIMIT_READS=3/2``: three reads
per two seconds per credential. Every test uses a fresh API key, so each starts
with a full quota.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from codegate_sdk import RateLimitError, parse_rate_limit_headers, parse_retry_after
from conftest import Admin, LiveServer, Provisioned, provision, start_server, stop_server

READS_LIMIT = 3
READS_WINDOW = 2


@pytest.fixture(scope="module")
def limited_server() -> Iterator[LiveServer]:
    server = start_server({
        "CODEGATE_RATE_LIMIT_READS": f"{READS_LIMIT}/{READS_WINDOW}",
        "CODEGATE_RATE_LIMIT_BULK": "1000/60",
        "CODEGATE_RATE_LIMIT_MANAGEMENT": "1000/60",
    })
    yield server
    stop_server(server)


@pytest.fixture
def limited(limited_server: LiveServer) -> Provisioned:
    admin = Admin(limited_server)
    provisioned = provision(limited_server, admin)
    admin.generate_codes(provisioned.project_id, 3)
    return provisioned


class Recorder:
    """A session response hook and a sleep function that record what happened."""

    def __init__(self) -> None:
        self.responses: list[requests.Response] = []
        self.sleeps: list[float] = []
        self.session = requests.Session()
        self.session.hooks["response"].append(self._hook)

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.responses.append(response)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)

    @property
    def statuses(self) -> list[int]:
        return [r.status_code for r in self.responses]


def test_answers_carry_rate_limit_headers(limited: Provisioned) -> None:
    rec = Recorder()
    limited.client(session=rec.session, max_retries=0).get_project()
    headers = rec.responses[0].headers
    for name in ("RateLimit-Policy", "RateLimit", "X-RateLimit-Limit",
                 "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert name in headers, f"answer lacks {name}: {dict(headers)}"
    infos = parse_rate_limit_headers(headers)
    assert infos and infos[0].remaining == READS_LIMIT - 1, infos
    assert infos[0].limit == READS_LIMIT, infos
    assert headers["X-RateLimit-Limit"] == str(READS_LIMIT)
    assert headers["X-RateLimit-Remaining"] == str(READS_LIMIT - 1)


def test_fourth_quick_read_raises_rate_limit_error(limited: Provisioned) -> None:
    rec = Recorder()
    client = limited.client(session=rec.session, max_retries=0, sleep=rec.sleep)
    client.get_project()
    client.list_codes()
    client.get_statistics()
    with pytest.raises(RateLimitError) as info:
        client.get_project()
    err = info.value
    assert isinstance(err, requests.HTTPError)
    assert err.status_code == 429
    assert err.retry_after is not None and err.retry_after > 0
    assert err.retry_after <= READS_WINDOW + 1
    assert err.code == "RATE_LIMITED"
    assert rec.sleeps == []
    # Retry-After is never earlier than the RateLimit header's reset.
    resets = [i.reset for i in parse_rate_limit_headers(err.response.headers)
              if i.reset is not None and i.remaining == 0]
    assert all(err.retry_after >= t for t in resets), (err.retry_after, resets)


def test_retrying_client_waits_and_succeeds(limited: Provisioned) -> None:
    rec = Recorder()
    client = limited.client(session=rec.session, max_retries=3, sleep=rec.sleep)
    started = time.monotonic()
    for _ in range(5):
        assert client.get_project()["id"] == limited.project_id
    elapsed = time.monotonic() - started
    limited_answers = [r for r in rec.responses if r.status_code == 429]
    assert limited_answers, f"expected at least one 429 on the way, statuses {rec.statuses}"
    assert rec.statuses.count(200) == 5
    retry_afters = [parse_retry_after(r.headers.get("Retry-After")) for r in limited_answers]
    assert all(ra is not None and ra > 0 for ra in retry_afters), retry_afters
    # Every wait after a 429 honoured its Retry-After.
    assert len(rec.sleeps) == len(limited_answers)
    for slept, retry_after in zip(rec.sleeps, retry_afters):
        assert slept >= retry_after  # type: ignore[operator]
    assert elapsed >= min(retry_afters)  # type: ignore[type-var]


def test_throttled_client_never_receives_429(limited: Provisioned) -> None:
    rec = Recorder()
    client = limited.client(session=rec.session, max_retries=0, throttle=True, sleep=rec.sleep)
    calls = [client.get_project, client.list_codes, client.get_statistics,
             client.get_project, client.list_codes, client.get_statistics]
    for call in calls:
        call()
    assert rec.statuses == [200] * 6, rec.statuses
    assert rec.sleeps, "the throttle should have waited for the reads quota at least once"
    assert all(s > 0 for s in rec.sleeps)


def test_redemptions_are_not_slowed_by_exhausted_reads(limited: Provisioned) -> None:
    rec = Recorder()
    client = limited.client(session=rec.session, max_retries=0, throttle=True, sleep=rec.sleep)
    for _ in range(READS_LIMIT):
        client.get_project()
    answer = client.verify_code("NOT-A-REAL-CODE")
    assert answer["error_code"] == "CODE_NOT_FOUND"
    assert rec.sleeps == []
