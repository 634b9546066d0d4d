"""Assertions and small utilities shared by the compatibility tests.

Everything here talks about the wire contract of DESIGN.md §2; nothing here knows
how the server is implemented.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import time
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

import pytest
import requests
from codegate_sdk import generate_signature

HEX32 = re.compile(r"^[0-9a-f]{32}$")

PROJECT_FIELDS = {"id", "name", "description", "status", "expires_at", "created_at", "statistics"}
PROJECT_STAT_FIELDS = {"total_codes", "used_codes", "unused_codes", "disabled_codes", "expired_codes"}
CODE_ITEM_FIELDS = {
    "id", "code", "status", "is_disabled", "is_expired",
    "expires_at", "verified_at", "verified_by", "created_at",
}
LOG_ITEM_FIELDS = {"id", "verified_at", "verified_by", "ip_address", "result"}
LIST_FIELDS = {"items", "total", "page", "page_size", "total_pages"}
STATISTICS_FIELDS = {
    "project_id", "total_codes", "used_codes", "unused_codes", "disabled_codes",
    "expired_codes", "usage_rate", "recent_verifications",
}
RECENT_FIELDS = {"code", "verified_at", "verified_by"}
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}

_actor_counter = itertools.count(1)


def now() -> int:
    return int(time.time())


def actor(prefix: str = "user") -> str:
    """A `verified_by` / `reactivated_by` value never used before in this run.

    The server refuses an identical signed mutating request repeated within the
    timestamp window as a replay (DESIGN §2), so two verify calls for the same
    code in the same second must differ in their body.
    """
    return f"{prefix}-{next(_actor_counter)}"


# ---------------------------------------------------------------- value checks

def assert_has_fields(obj: dict, fields: Iterable[str], what: str) -> None:
    missing = set(fields) - set(obj)
    assert not missing, f"{what} lacks fields {sorted(missing)}: {obj!r}"


def assert_int(value: Any, what: str) -> None:
    assert isinstance(value, int) and not isinstance(value, bool), \
        f"{what} should be an integer, got {value!r}"


def assert_recent_time(value: Any, what: str, slack: int = 600) -> None:
    """An integer Unix-seconds timestamp close to the current time."""
    assert_int(value, what)
    assert abs(value - now()) <= slack, f"{what}={value} is not near now ({now()})"


def assert_hex32(value: Any, what: str) -> None:
    assert isinstance(value, str) and HEX32.match(value), \
        f"{what} should be 32 lower-case hex chars, got {value!r}"


def assert_code_item(
    item: dict,
    *,
    code: str,
    used: bool,
    disabled: bool = False,
    expired: bool = False,
    verified_by: str | None = None,
) -> None:
    """Check one code item (list entry or detail) against its expected state."""
    assert_has_fields(item, CODE_ITEM_FIELDS, "code item")
    assert_hex32(item["id"], "code.id")
    assert item["code"] == code
    assert item["status"] is used, f"status of {code} should be {used}: {item!r}"
    assert item["is_disabled"] is disabled, f"is_disabled of {code}: {item!r}"
    assert item["is_expired"] is expired, f"is_expired of {code}: {item!r}"
    assert_recent_time(item["created_at"], "code.created_at")
    if used:
        assert_recent_time(item["verified_at"], "code.verified_at")
    else:
        assert item["verified_at"] is None, f"unused {code} has verified_at: {item!r}"
    assert item["verified_by"] == verified_by, f"verified_by of {code}: {item!r}"
    if item["expires_at"] is not None:
        assert_int(item["expires_at"], "code.expires_at")


def assert_log_item(log: dict, *, result: str, verified_by: str | None = None) -> None:
    assert_has_fields(log, LOG_ITEM_FIELDS, "verification log item")
    assert log["id"] is not None
    assert_recent_time(log["verified_at"], "log.verified_at")
    assert log["result"] == result, f"log result: {log!r}"
    assert log["ip_address"] == "127.0.0.1", f"log ip_address: {log!r}"
    if verified_by is not None:
        assert log["verified_by"] == verified_by, f"log verified_by: {log!r}"


def assert_verify_success(resp: dict, *, code: str, code_id: str | None = None) -> None:
    assert resp.get("success") is True, f"verify of {code} should succeed: {resp!r}"
    assert resp.get("error_code") is None, resp
    assert resp["code"] == code
    assert_hex32(resp["code_id"], "verify.code_id")
    if code_id is not None:
        assert resp["code_id"] == code_id
    assert_recent_time(resp["verified_at"], "verify.verified_at")
    assert isinstance(resp["message"], str) and resp["message"], resp


def assert_business_failure(resp: dict, error_code: str) -> None:
    """A refused verify / reactivate: HTTP 200 (the SDK did not raise), success false."""
    assert resp.get("success") is False, f"expected {error_code}, got {resp!r}"
    assert resp.get("error_code") == error_code, f"expected {error_code}, got {resp!r}"
    assert isinstance(resp.get("message"), str) and resp["message"], resp


def assert_problem(resp: requests.Response, status: int, code: str | None = None) -> dict:
    """An RFC 9457 problem+json error answer with a machine-readable `code`."""
    assert resp.status_code == status, \
        f"expected HTTP {status}, got {resp.status_code}: {resp.text[:500]}"
    content_type = resp.headers.get("Content-Type", "")
    assert content_type.startswith("application/problem+json"), \
        f"error Content-Type should be application/problem+json, got {content_type!r}"
    body = resp.json()
    assert_has_fields(body, PROBLEM_FIELDS, "problem body")
    assert body["status"] == status, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert isinstance(body["code"], str) and body["code"], body
    if code is not None:
        assert body["code"] == code, f"expected problem code {code}, got {body!r}"
    return body


def expect_http_error(status: int, call: Callable, /, *args,
                      problem_code: str | None = None, **kwargs) -> dict:
    """Run an SDK call that must raise requests.HTTPError with `status`; return the problem body."""
    with pytest.raises(requests.HTTPError) as excinfo:
        result = call(*args, **kwargs)
        print(f"unexpected success: {result!r}")
    return assert_problem(excinfo.value.response, status, problem_code)


# ---------------------------------------------------------------- wire helpers

def signed_request(
    base_url: str,
    method: str,
    path: str,
    *,
    api_key: str,
    secret: str,
    timestamp: int | None = None,
    params: dict | None = None,
    body: dict | None = None,
) -> requests.Response:
    """Send a request signed exactly like the SDK does, but with a chosen timestamp."""
    ts = now() if timestamp is None else timestamp
    query = {k: str(v) for k, v in params.items()} if params else None
    body_text = json.dumps(body, ensure_ascii=False) if body else None
    signature = generate_signature(
        method=method, path=path, query_params=query, body=body_text, timestamp=ts, secret=secret,
    )
    url = base_url + path + (f"?{urlencode(query)}" if query else "")
    headers = {
        "X-API-Key": api_key,
        "X-Timestamp": str(ts),
        "X-Signature": signature,
        "Content-Type": "application/json",
    }
    return requests.request(method, url, headers=headers, data=body_text, timeout=30)


def csv_body(rows: Iterable[dict]) -> str:
    """CSV for the import endpoint: header `code,expires_at,max_uses,metadata`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["code", "expires_at", "max_uses", "metadata"],
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        metadata = row.get("metadata")
        writer.writerow({
            "code": row["code"],
            "expires_at": row.get("expires_at", ""),
            "max_uses": row.get("max_uses", ""),
            "metadata": json.dumps(metadata) if metadata is not None else "",
        })
    return out.getvalue()


def list_all(client, **filters) -> list[dict]:
    """Every item of list_codes for the given filters (page_size 100, walking pages)."""
    items, page = [], 1
    while True:
        resp = client.list_codes(page=page, page_size=100, **filters)
        items.extend(resp["items"])
        if page >= resp["total_pages"]:
            return items
        page += 1


# ---------------------------------------------------------------- fixtures of data

def build_mixed_project(project) -> dict[str, list[str]]:
    """Seed a project with 3 used, 2 disabled, 2 expired and 3 unused codes.

    Returns the codes by the state the server must derive for them.
    """
    generated = project.generate(9)
    states = {
        "used": generated[0:3],
        "disabled": generated[3:5],
        "expired": [generated[5]] + project.import_expired(["MIXED-EXPIRED-1"]),
        "unused": generated[6:9],
    }
    for code in states["used"]:
        project.use(code, verified_by=buyer_of(code))
    for code in states["disabled"]:
        project.disable(code)
    project.expire(states["expired"][0])
    return states


def buyer_of(code: str) -> str:
    """The `verified_by` build_mixed_project records for a used code."""
    return f"buyer-of-{code}"


def expected_counts(states: dict[str, list[str]]) -> dict[str, int]:
    return {
        "total_codes": sum(len(codes) for codes in states.values()),
        "used_codes": len(states["used"]),
        "unused_codes": len(states["unused"]),
        "disabled_codes": len(states["disabled"]),
        "expired_codes": len(states["expired"]),
    }
