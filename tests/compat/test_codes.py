"""list_codes, get_code and get_code_by_code."""

import secrets
import time

import pytest

from compat_helpers import (
    LIST_FIELDS, actor, assert_code_item, assert_log_item, build_mixed_project, buyer_of,
    expect_http_error, list_all,
)

STATUSES = ("unused", "used", "disabled", "expired")


def page(project, **kwargs) -> dict:
    resp = project.client.list_codes(**kwargs)
    assert set(resp) >= LIST_FIELDS, f"list answer lacks fields: {resp!r}"
    return resp


def codes_of(items) -> list[str]:
    return [item["code"] for item in items]


# ------------------------------------------------------------------ list_codes

def test_list_codes_of_empty_project(project):
    resp = page(project)

    assert resp["items"] == []
    assert (resp["total"], resp["page"], resp["page_size"], resp["total_pages"]) == (0, 1, 20, 0)


def test_list_codes_items_have_all_fields(project):
    states = build_mixed_project(project)
    flags = {
        "unused": {"used": False},
        "used": {"used": True},
        "disabled": {"used": False, "disabled": True},
        "expired": {"used": False, "expired": True},
    }
    state_of = {code: state for state, codes in states.items() for code in codes}

    items = page(project, page_size=100)["items"]

    assert sorted(codes_of(items)) == sorted(state_of)
    for item in items:
        state = state_of[item["code"]]
        verified_by = buyer_of(item["code"]) if state == "used" else None
        assert_code_item(item, code=item["code"], verified_by=verified_by, **flags[state])
        if state == "expired":
            assert item["expires_at"] < time.time(), item


@pytest.mark.parametrize("page_size, total_pages", [(10, 3), (7, 4), (20, 2), (1, 25), (100, 1)])
def test_list_codes_pagination(project, page_size, total_pages):
    generated = project.generate(25)

    seen = []
    for number in range(1, total_pages + 1):
        resp = page(project, page=number, page_size=page_size)
        assert (resp["total"], resp["page"], resp["page_size"], resp["total_pages"]) == \
            (25, number, page_size, total_pages)
        expected_len = page_size if number < total_pages else 25 - page_size * (total_pages - 1)
        assert len(resp["items"]) == expected_len, f"page {number}: {len(resp['items'])} items"
        seen.extend(codes_of(resp["items"]))
    assert sorted(seen) == sorted(generated), "pages must cover every code exactly once"

    beyond = page(project, page=total_pages + 1, page_size=page_size)
    assert beyond["items"] == []
    assert (beyond["total"], beyond["page"], beyond["total_pages"]) == (25, total_pages + 1, total_pages)


def test_list_codes_newest_first(project):
    older = project.generate(5)
    time.sleep(1.1)  # the second batch gets a strictly later created_at
    newer = project.import_codes([f"NEWER-{i}" for i in range(3)])

    items = page(project, page_size=100)["items"]

    assert set(codes_of(items[:3])) == set(newer), f"newest codes should come first: {codes_of(items)}"
    assert set(codes_of(items[3:])) == set(older)
    created = [item["created_at"] for item in items]
    assert created == sorted(created, reverse=True), f"not newest first: {created}"


@pytest.mark.parametrize("status", STATUSES)
def test_list_codes_status_filter(project, status):
    states = build_mixed_project(project)

    resp = page(project, page_size=100, status=status)

    assert sorted(codes_of(resp["items"])) == sorted(states[status])
    assert resp["total"] == len(states[status])
    assert resp["total_pages"] == 1


def test_list_codes_status_precedence(project):
    """disabled > used > expired > unused (DESIGN §1), whatever happened to the code."""
    used_then_expired, used_then_disabled, disabled_and_expired, plain = project.generate(4)
    project.use(used_then_expired)
    project.expire(used_then_expired)
    project.use(used_then_disabled)
    project.disable(used_then_disabled)
    project.disable(disabled_and_expired)
    project.expire(disabled_and_expired)
    expected = {
        "used": {used_then_expired},
        "disabled": {used_then_disabled, disabled_and_expired},
        "expired": set(),
        "unused": {plain},
    }

    actual = {status: set(codes_of(list_all(project.client, status=status))) for status in STATUSES}

    assert actual == expected


def test_list_codes_search_is_substring_match(project):
    project.import_codes(["ALPHA-001", "ALPHA-002", "BETA-001", "GAMMA-777"])
    project.use("ALPHA-001")

    def search(term, **kwargs):
        resp = page(project, page_size=100, search=term, **kwargs)
        assert resp["total"] == len(resp["items"])
        return set(codes_of(resp["items"]))

    assert search("LPH") == {"ALPHA-001", "ALPHA-002"}
    assert search("001") == {"ALPHA-001", "BETA-001"}
    assert search("GAMMA-777") == {"GAMMA-777"}
    assert search("LPH", status="unused") == {"ALPHA-002"}
    assert search("LPH", status="used") == {"ALPHA-001"}
    nothing = page(project, search="ZZZ")
    assert (nothing["items"], nothing["total"], nothing["total_pages"]) == ([], 0, 0)


@pytest.mark.parametrize("params", [
    {"page_size": 0},
    {"page_size": 101},
    {"page": 0},
    {"status": "bogus"},
], ids=["page_size=0", "page_size=101", "page=0", "status=bogus"])
def test_list_codes_rejects_bad_parameters_with_422(project, params):
    expect_http_error(422, project.client.list_codes, problem_code="VALIDATION_FAILED", **params)


# ------------------------------------------------------------------ get_code

def test_get_code_of_fresh_code(project):
    (code,) = project.import_codes(["FRESH-CODE-1"])
    code_id = project.code_id(code)

    detail = project.client.get_code(code_id)

    assert detail["id"] == code_id
    assert_code_item(detail, code=code, used=False)
    assert detail["expires_at"] is None
    assert detail["verification_logs"] == []


def test_get_code_with_verification_logs(project):
    (code,) = project.generate(1)
    verifier, second = actor("alice"), actor("bob")
    verified = project.use(code, verified_by=verifier)
    project.client.verify_code(code, verified_by=second)  # refused: already used

    detail = project.client.get_code(verified["code_id"])

    assert_code_item(detail, code=code, used=True, verified_by=verifier)
    assert detail["verified_at"] == verified["verified_at"]
    logs = detail["verification_logs"]
    assert len(logs) == 2, f"one log row per verify attempt: {logs}"
    by_result = {log["result"]: log for log in logs}
    assert set(by_result) == {"success", "failed"}, logs
    assert_log_item(by_result["success"], result="success", verified_by=verifier)
    assert by_result["success"]["verified_at"] == verified["verified_at"]
    assert_log_item(by_result["failed"], result="failed", verified_by=second)


def test_get_code_unknown_id_is_404(project):
    project.generate(1)
    expect_http_error(404, project.client.get_code, secrets.token_hex(16))


def test_get_code_of_another_project_is_404(make_project):
    mine, other = make_project(), make_project()
    (foreign,) = other.generate(1)

    expect_http_error(404, mine.client.get_code, other.code_id(foreign))


# ------------------------------------------------------------------ get_code_by_code

@pytest.mark.parametrize("code", [
    "SLASH/CODE-1", "SPACE CODE 2", "PLUS+CODE+3", "HASH#CODE4", "PERCENT%CODE5", "QUERY?CODE6",
])
def test_get_code_by_code_with_reserved_characters(project, code):
    project.import_codes([code, "OTHER-CODE"])

    by_code = project.client.get_code_by_code(code)

    assert_code_item(by_code, code=code, used=False)
    assert by_code == project.client.get_code(by_code["id"]), "by-code and by-id answers differ"

    verifier = actor()
    verified = project.client.verify_code(code, verified_by=verifier)
    assert verified["success"] is True and verified["code"] == code, verified
    assert_code_item(project.client.get_code_by_code(code), code=code, used=True, verified_by=verifier)


def test_get_code_by_code_unknown_is_404(project):
    project.generate(1)
    expect_http_error(404, project.client.get_code_by_code, "NO-SUCH-CODE")
