"""Mapping of error answers to typed exceptions."""

from __future__ import annotations

import email.utils

import pytest
import requests

from codegate_sdk import (
    AuthenticationError,
    CodeGateError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    ValidationError,
    parse_retry_after,
)
from conftest import scripted_client

PROBLEM = {"Content-Type": "application/problem+json"}


def problem(status: int, code: str, detail: str = "something is wrong") -> dict:
    return {"type": f"https://codegate.dev/problems/{code.lower()}", "title": "Problem",
            "status": status, "detail": detail, "code": code}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ValidationError),
        (401, AuthenticationError),
        (402, QuotaExceededError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, ValidationError),
        (422, ValidationError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (418, CodeGateError),
    ],
)
def test_status_maps_to_class(status: int, cls: type) -> None:
    client, adapter, _ = scripted_client([(status, PROBLEM, problem(status, "SOME_CODE"))], max_retries=0)
    with pytest.raises(cls) as info:
        client.get_project()
    err = info.value
    assert type(err) is cls
    assert isinstance(err, requests.HTTPError)
    assert isinstance(err, CodeGateError)
    assert err.status_code == status
    assert err.response is not None and err.response.status_code == status
    assert err.code == "SOME_CODE"
    assert err.detail == "something is wrong"
    assert err.title == "Problem"
    assert err.problem and err.problem["status"] == status
    assert "SOME_CODE" in str(err)
    assert len(adapter.requests) == 1


def test_non_json_error_body_is_tolerated() -> None:
    html = "<html><body>502 Bad Gateway</body></html>"
    client, _, _ = scripted_client([(502, {"Content-Type": "text/html"}, html)], max_retries=0)
    with pytest.raises(ServerError) as info:
        client.get_statistics()
    assert info.value.code is None
    assert info.value.problem is None
    assert info.value.detail == html


def test_empty_error_body() -> None:
    client, _, _ = scripted_client([(404, {}, b"")], max_retries=0)
    with pytest.raises(NotFoundError) as info:
        client.get_code("0" * 32)
    assert info.value.detail is None and info.value.code is None


def test_fastapi_style_detail_list_becomes_text() -> None:
    body = {"detail": [{"loc": ["query", "page_size"], "msg": "too large"}]}
    client, _, _ = scripted_client([(422, {}, body)], max_retries=0)
    with pytest.raises(ValidationError) as info:
        client.list_codes(page_size=500)
    assert "too large" in (info.value.detail or "")


def test_rate_limit_error_carries_retry_after_and_policy() -> None:
    body = {**problem(429, "RATE_LIMITED"), "policy": "reads"}
    client, _, _ = scripted_client([(429, {"Retry-After": "7"}, body)], max_retries=0)
    with pytest.raises(RateLimitError) as info:
        client.get_project()
    assert info.value.retry_after == 7.0
    assert info.value.policy == "reads"
    assert info.value.code == "RATE_LIMITED"


def test_rate_limit_without_retry_after() -> None:
    client, _, _ = scripted_client([(429, {}, problem(429, "RATE_LIMITED"))], max_retries=0)
    with pytest.raises(RateLimitError) as info:
        client.get_project()
    assert info.value.retry_after is None


def test_business_failure_is_returned_not_raised() -> None:
    answer = {"success": False, "code_id": None, "code": "NOPE", "verified_at": None,
              "message": "Code not found", "error_code": "CODE_NOT_FOUND"}
    client, _, _ = scripted_client([(200, {}, answer)])
    assert client.verify_code("NOPE") == answer


class TestParseRetryAfter:
    def test_integer_seconds(self) -> None:
        assert parse_retry_after("2") == 2.0
        assert parse_retry_after(" 0 ") == 0.0

    def test_decimal_seconds(self) -> None:
        assert parse_retry_after("1.5") == 1.5

    def test_http_date(self) -> None:
        now = 1_767_225_600.0
        value = email.utils.formatdate(now + 30, usegmt=True)
        assert parse_retry_after(value, now=now) == pytest.approx(30.0)

    def test_http_date_in_the_past_is_zero(self) -> None:
        now = 1_767_225_600.0
        value = email.utils.formatdate(now - 30, usegmt=True)
        assert parse_retry_after(value, now=now) == 0.0

    @pytest.mark.parametrize("value", [None, "", "soon", "-3", "nan", "inf"])
    def test_unusable(self, value: object) -> None:
        assert parse_retry_after(value) is None  # type: ignore[arg-type]
