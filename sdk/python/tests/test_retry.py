"""Retry and backoff logic (fake sleep and clock: no real waiting)."""

from __future__ import annotations

import pytest
import requests

from codegate_sdk import AuthenticationError, RateLimitError, ServerError
from codegate_sdk.retry import backoff_delay, is_retryable_status, retry_delay
from conftest import scripted_client
from test_client_unit import assert_validly_signed

OK = (200, {}, {"id": "p" * 32, "name": "demo"})
VERIFIED = (200, {}, {"success": True, "code_id": "c" * 32, "code": "ABC", "verified_at": 1,
                      "message": "ok", "error_code": None})


def unavailable(headers: dict | None = None) -> tuple:
    return (503, headers or {}, {"status": 503, "title": "Unavailable", "code": "UNAVAILABLE"})


def limited(retry_after: str | None = "2") -> tuple:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return (429, headers, {"status": 429, "title": "Too Many Requests", "code": "RATE_LIMITED"})


class TestBackoffFunctions:
    def test_full_jitter_bounds(self) -> None:
        assert backoff_delay(0, 0.5, 30, rand=lambda: 0.0) == 0.0
        assert backoff_delay(0, 0.5, 30, rand=lambda: 1.0) == 0.5
        assert backoff_delay(3, 0.5, 30, rand=lambda: 1.0) == 4.0
        assert backoff_delay(3, 0.5, 30, rand=lambda: 0.25) == 1.0

    def test_cap(self) -> None:
        assert backoff_delay(20, 0.5, 30, rand=lambda: 1.0) == 30.0

    def test_random_values_stay_in_range(self) -> None:
        for attempt in range(8):
            ceiling = min(30.0, 0.5 * 2**attempt)
            for _ in range(200):
                assert 0.0 <= backoff_delay(attempt, 0.5, 30.0) <= ceiling

    def test_retry_after_is_a_floor(self) -> None:
        assert retry_delay(0, 0.5, 30, retry_after=2.0, rand=lambda: 1.0) == 2.0
        assert retry_delay(5, 0.5, 30, retry_after=2.0, rand=lambda: 1.0) == 16.0
        assert retry_delay(0, 0.5, 30, retry_after=None, rand=lambda: 1.0) == 0.5

    def test_retryable_statuses(self) -> None:
        assert all(is_retryable_status(s) for s in (429, 500, 502, 503, 504))
        assert not any(is_retryable_status(s) for s in (200, 400, 401, 403, 404, 409, 422, 501, 505))


def test_5xx_is_retried_with_exponential_backoff() -> None:
    client, adapter, fake = scripted_client([unavailable(), unavailable(), OK])
    client._rand = lambda: 1.0
    assert client.get_project()["name"] == "demo"
    assert len(adapter.requests) == 3
    assert fake.sleeps == [0.5, 1.0]


def test_backoff_is_jittered_within_bounds() -> None:
    client, adapter, fake = scripted_client([unavailable()] * 3 + [OK], backoff_base=1.0)
    assert client.get_project()
    assert len(fake.sleeps) == 3
    for attempt, slept in enumerate(fake.sleeps):
        assert 0.0 <= slept <= 1.0 * 2**attempt


def test_backoff_max_caps_delays() -> None:
    client, _, fake = scripted_client([unavailable()] * 4 + [OK], max_retries=4,
                                      backoff_base=0.5, backoff_max=1.0)
    client._rand = lambda: 1.0
    client.get_project()
    assert fake.sleeps == [0.5, 1.0, 1.0, 1.0]


def test_retries_exhausted_raises_last_error() -> None:
    client, adapter, fake = scripted_client([unavailable()], max_retries=2)
    with pytest.raises(ServerError) as info:
        client.get_project()
    assert info.value.status_code == 503
    assert len(adapter.requests) == 3
    assert len(fake.sleeps) == 2


def test_max_retries_zero_disables_retries() -> None:
    client, adapter, fake = scripted_client([unavailable(), OK], max_retries=0)
    with pytest.raises(ServerError):
        client.get_project()
    assert len(adapter.requests) == 1 and fake.sleeps == []


def test_429_waits_at_least_retry_after() -> None:
    client, adapter, fake = scripted_client([limited("2"), OK])
    client._rand = lambda: 0.0
    client.get_project()
    assert len(adapter.requests) == 2
    assert fake.sleeps == [2.0]


def test_429_jitter_larger_than_retry_after_is_kept() -> None:
    client, _, fake = scripted_client([limited("1"), limited("1"), limited("1"), OK],
                                      backoff_base=1.0)
    client._rand = lambda: 1.0
    client.get_project()
    assert fake.sleeps == [1.0, 2.0, 4.0]


def test_503_retry_after_is_honoured() -> None:
    client, _, fake = scripted_client([unavailable({"Retry-After": "3"}), OK])
    client._rand = lambda: 0.0
    client.get_project()
    assert fake.sleeps == [3.0]


def test_429_without_retry_after_uses_ratelimit_reset() -> None:
    reply = (429, {"RateLimit": '"reads";r=0;t=4'}, {"status": 429, "code": "RATE_LIMITED"})
    client, _, fake = scripted_client([reply, OK])
    client._rand = lambda: 0.0
    client.get_project()
    assert fake.sleeps == [4.0]


def test_retry_after_beyond_backoff_max_is_raised_not_waited() -> None:
    client, adapter, fake = scripted_client([limited("120"), OK], backoff_max=30.0)
    with pytest.raises(RateLimitError) as info:
        client.get_project()
    assert info.value.retry_after == 120.0
    assert len(adapter.requests) == 1 and fake.sleeps == []


def test_4xx_is_not_retried() -> None:
    client, adapter, fake = scripted_client([(401, {}, {"status": 401, "code": "INVALID_SIGNATURE"}), OK])
    with pytest.raises(AuthenticationError):
        client.get_project()
    assert len(adapter.requests) == 1 and fake.sleeps == []


def test_connection_error_on_read_is_retried() -> None:
    client, adapter, fake = scripted_client([requests.ConnectionError("refused"), requests.Timeout("slow"), OK])
    assert client.get_project()["name"] == "demo"
    assert len(adapter.requests) == 3 and len(fake.sleeps) == 2


def test_connection_error_raised_when_retries_exhausted() -> None:
    client, adapter, _ = scripted_client([requests.ConnectionError("refused")], max_retries=1)
    with pytest.raises(requests.ConnectionError):
        client.get_project()
    assert len(adapter.requests) == 2


def test_verify_retry_resigns_and_reuses_idempotency_key() -> None:
    client, adapter, fake = scripted_client([unavailable(), requests.ConnectionError("reset"), VERIFIED])
    client._rand = lambda: 1.0  # each sleep advances the fake clock by >= 0.5 s ...
    fake_sleep = fake.sleep

    def sleep_whole_seconds(seconds: float) -> None:  # ... make it whole seconds
        fake_sleep(seconds + 1.0)

    client._sleep = sleep_whole_seconds
    assert client.verify_code("ABC", verified_by="用户-42")["success"] is True
    sent = adapter.requests
    assert len(sent) == 3
    keys = {r.headers["Idempotency-Key"] for r in sent}
    assert len(keys) == 1 and len(keys.pop()) >= 16
    assert len({r.headers["X-Nonce"] for r in sent}) == 3
    assert len({r.headers["X-Timestamp"] for r in sent}) == 3
    assert len({r.headers["X-Signature"] for r in sent}) == 3
    assert len({r.body for r in sent}) == 1
    for request in sent:
        assert_validly_signed(request, client.secret)


def test_each_verify_call_gets_its_own_idempotency_key() -> None:
    client, adapter, _ = scripted_client([VERIFIED])
    client.verify_code("A")
    client.verify_code("A")
    client.reactivate_code("A")
    keys = [r.headers["Idempotency-Key"] for r in adapter.requests]
    assert len(set(keys)) == 3


def test_explicit_idempotency_key_is_sent() -> None:
    client, adapter, _ = scripted_client([unavailable(), VERIFIED])
    client.verify_code("A", idempotency_key="order-1234")
    client.reactivate_code("A", idempotency_key="refund-1234")
    assert [r.headers["Idempotency-Key"] for r in adapter.requests] == [
        "order-1234", "order-1234", "refund-1234"]


def test_verify_without_idempotency_key_is_never_retried() -> None:
    client, adapter, fake = scripted_client([unavailable(), VERIFIED], auto_idempotency_keys=False)
    with pytest.raises(ServerError):
        client.verify_code("A")
    assert len(adapter.requests) == 1 and fake.sleeps == []
    assert "Idempotency-Key" not in adapter.requests[0].headers

    client, adapter, _ = scripted_client([requests.ConnectionError("reset"), VERIFIED],
                                         auto_idempotency_keys=False)
    with pytest.raises(requests.ConnectionError):
        client.reactivate_code("A")
    assert len(adapter.requests) == 1


def test_409_retried_only_after_an_own_earlier_attempt() -> None:
    in_progress = (409, {}, {"status": 409, "code": "IDEMPOTENCY_IN_PROGRESS"})
    client, adapter, _ = scripted_client([requests.ReadTimeout("slow"), in_progress, VERIFIED])
    assert client.verify_code("A")["success"] is True
    assert len(adapter.requests) == 3

    from codegate_sdk import ConflictError

    client, adapter, _ = scripted_client([in_progress, VERIFIED])
    with pytest.raises(ConflictError):
        client.verify_code("A")
    assert len(adapter.requests) == 1
