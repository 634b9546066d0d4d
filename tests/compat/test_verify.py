"""verify_code and reactivate_code: every business outcome is HTTP 200."""

import secrets
from collections import Counter

import pytest

from compat_helpers import (
    RECENT_FIELDS, actor, assert_business_failure, assert_code_item, assert_hex32,
    assert_recent_time, assert_verify_success, now,
)

DAY = 86_400


# ------------------------------------------------------------------ verify_code

def test_verify_success(project):
    (code,) = project.generate(1)
    code_id = project.code_id(code)

    resp = project.client.verify_code(code, verified_by=actor())

    assert_verify_success(resp, code=code, code_id=code_id)


def test_verify_twice_is_code_already_used(project):
    (code,) = project.generate(1)
    first = project.use(code)

    second = project.client.verify_code(code, verified_by=actor())

    assert_business_failure(second, "CODE_ALREADY_USED")
    assert project.client.get_code_by_code(code)["verified_at"] == first["verified_at"]


def test_verify_unknown_code_is_code_not_found(project):
    project.generate(1)
    resp = project.client.verify_code(f"NOPE-{secrets.token_hex(4)}", verified_by=actor())
    assert_business_failure(resp, "CODE_NOT_FOUND")


def test_verify_disabled_code(project):
    (code,) = project.generate(1)
    project.disable(code)

    resp = project.client.verify_code(code, verified_by=actor())

    assert_business_failure(resp, "CODE_DISABLED")
    assert_code_item(project.client.get_code_by_code(code), code=code, used=False, disabled=True)


@pytest.mark.parametrize("how", ["import", "patch"])
def test_verify_expired_code(project, how):
    if how == "import":
        (code,) = project.import_expired([f"EXPIRED-{secrets.token_hex(4)}"])
    else:
        (code,) = project.generate(1)
        project.expire(code)

    resp = project.client.verify_code(code, verified_by=actor())

    assert_business_failure(resp, "CODE_EXPIRED")
    assert_code_item(project.client.get_code_by_code(code), code=code, used=False, expired=True)


def test_verify_in_disabled_project(project):
    (code,) = project.generate(1)
    project.update(status=False)

    resp = project.client.verify_code(code, verified_by=actor())

    assert_business_failure(resp, "PROJECT_DISABLED")
    project.update(status=True)
    assert_code_item(project.client.get_code_by_code(code), code=code, used=False)


def test_verify_in_expired_project(project):
    # The code carries its own (future) expiry, so only the project's expiry applies.
    (code,) = project.import_codes(["OWN-EXPIRY-1"], expires_at=now() + DAY)
    project.update(expires_at=now() - 60)

    resp = project.client.verify_code(code, verified_by=actor())

    assert_business_failure(resp, "PROJECT_EXPIRED")


# Verify checks, in order: not found, disabled, already used, expired,
# project disabled, project expired (DESIGN §2). Each case sets up two
# simultaneous reasons to refuse and expects the earlier one.

def used_then_disabled(project):
    (code,) = project.generate(1)
    project.use(code)
    project.disable(code)
    return code


def used_then_expired(project):
    (code,) = project.generate(1)
    project.use(code)
    project.expire(code)
    return code


def disabled_and_expired(project):
    (code,) = project.generate(1)
    project.disable(code)
    project.expire(code)
    return code


def expired_code(project):
    return project.import_expired([f"EXP-{secrets.token_hex(4)}"])[0]


def used_code(project):
    (code,) = project.generate(1)
    project.use(code)
    return code


def unknown_code(project):
    project.generate(1)
    return f"UNKNOWN-{secrets.token_hex(4)}"


def code_with_own_future_expiry(project):
    return project.import_codes([f"FUT-{secrets.token_hex(4)}"], expires_at=now() + DAY)[0]


def disable_project(project):
    project.update(status=False)


def disable_and_expire_project(project):
    project.update(status=False, expires_at=now() - 60)


def leave_project(project):
    pass


@pytest.mark.parametrize("make_code, change_project, expected", [
    (used_then_disabled, leave_project, "CODE_DISABLED"),
    (disabled_and_expired, leave_project, "CODE_DISABLED"),
    (used_then_expired, leave_project, "CODE_ALREADY_USED"),
    (unknown_code, disable_project, "CODE_NOT_FOUND"),
    (used_code, disable_project, "CODE_ALREADY_USED"),
    (expired_code, disable_project, "CODE_EXPIRED"),
    (code_with_own_future_expiry, disable_and_expire_project, "PROJECT_DISABLED"),
], ids=lambda v: v.__name__ if callable(v) else v)
def test_verify_check_order(project, make_code, change_project, expected):
    code = make_code(project)
    change_project(project)

    resp = project.client.verify_code(code, verified_by=actor())

    assert_business_failure(resp, expected)


def test_verified_by_is_recorded(project):
    (code,) = project.generate(1)
    verifier = actor("customer")

    resp = project.client.verify_code(code, verified_by=verifier)

    detail = project.client.get_code(resp["code_id"])
    assert detail["verified_by"] == verifier
    assert [log["verified_by"] for log in detail["verification_logs"]] == [verifier]
    recent = project.client.get_statistics()["recent_verifications"]
    assert [{k: entry[k] for k in RECENT_FIELDS} for entry in recent] == \
        [{"code": code, "verified_at": resp["verified_at"], "verified_by": verifier}]


def test_verify_without_verified_by_records_null(project):
    (code,) = project.generate(1)

    resp = project.client.verify_code(code)

    assert_verify_success(resp, code=code)
    assert_code_item(project.client.get_code(resp["code_id"]), code=code, used=True, verified_by=None)


# ------------------------------------------------------------------ reactivate_code

def test_reactivate_used_code(project):
    (code,) = project.generate(1)
    verified = project.use(code)

    resp = project.client.reactivate_code(code, reactivated_by=actor("support"), reason="refund")

    assert resp["success"] is True, resp
    assert resp.get("error_code") is None, resp
    assert resp["code"] == code
    assert_hex32(resp["code_id"], "reactivate.code_id")
    assert resp["code_id"] == verified["code_id"]
    assert_recent_time(resp["reactivated_at"], "reactivate.reactivated_at")
    assert isinstance(resp["message"], str) and resp["message"], resp
    assert project.client.get_code_by_code(code)["status"] is False
    assert project.client.get_statistics()["used_codes"] == 0


def test_reactivate_unused_code_is_code_already_unused(project):
    (code,) = project.generate(1)
    project.use(code)
    project.client.reactivate_code(code, reactivated_by=actor("support"))

    again = project.client.reactivate_code(code, reactivated_by=actor("support"))

    assert_business_failure(again, "CODE_ALREADY_UNUSED")


def test_reactivated_code_can_be_verified_again(project):
    (code,) = project.generate(1)
    project.use(code)
    project.client.reactivate_code(code, reactivated_by=actor("support"))
    verifier = actor("second-owner")

    resp = project.client.verify_code(code, verified_by=verifier)

    assert_verify_success(resp, code=code)
    assert_code_item(project.client.get_code_by_code(code), code=code, used=True, verified_by=verifier)


def test_reactivate_unknown_code_is_code_not_found(project):
    project.generate(1)
    resp = project.client.reactivate_code(f"NOPE-{secrets.token_hex(4)}", reactivated_by=actor())
    assert_business_failure(resp, "CODE_NOT_FOUND")


def test_reactivation_attempts_are_logged(project):
    (code,) = project.generate(1)
    project.use(code)
    project.client.reactivate_code(code, reactivated_by=actor("support"))
    project.client.reactivate_code(code, reactivated_by=actor("support"))  # CODE_ALREADY_UNUSED
    project.use(code)

    logs = project.client.get_code_by_code(code)["verification_logs"]

    assert Counter(log["result"] for log in logs) == {"success": 2, "reactivated": 1, "failed": 1}, logs
