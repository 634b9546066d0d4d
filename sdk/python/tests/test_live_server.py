"""Every client method against a real ``codegate`` server.

The server binary is ``$CODEGATE_BIN`` or ``<repo>/target/debug/codegate``;
these tests fail (they do not skip) when it is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import requests

from codegate_sdk import (
    AuthenticationError,
    CodeGateClient,
    CodeGateError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from conftest import SDK_DIR, Admin, LiveServer, Provisioned, provision

CODE_ITEM_FIELDS = {"id", "code", "status", "is_disabled", "is_expired", "expires_at",
                    "verified_at", "verified_by", "created_at"}
STAT_FIELDS = {"total_codes", "used_codes", "unused_codes", "disabled_codes", "expired_codes"}


def code_id_of(client: CodeGateClient, code: str) -> str:
    return client.get_code_by_code(code)["id"]


# ------------------------------------------------------------------ project


def test_get_project(project: Provisioned) -> None:
    project.admin.generate_codes(project.project_id, 5)
    client = project.client()
    info = client.get_project()
    assert info["id"] == project.project_id
    assert isinstance(info["name"], str) and info["name"].startswith("sdk-test-")
    assert info["status"] is True
    assert {"description", "expires_at", "created_at", "statistics"} <= info.keys()
    assert isinstance(info["created_at"], int)
    assert STAT_FIELDS <= info["statistics"].keys()
    assert info["statistics"]["total_codes"] == 5
    assert info["statistics"]["unused_codes"] == 5


def test_from_env(project: Provisioned, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEGATE_API_KEY", project.api_key)
    monkeypatch.setenv("CODEGATE_SECRET", project.secret)
    monkeypatch.setenv("CODEGATE_PROJECT_ID", project.project_id)
    monkeypatch.setenv("CODEGATE_BASE_URL", project.server.base_url)
    with CodeGateClient.from_env() as client:
        assert client.get_project()["id"] == project.project_id


# -------------------------------------------------------------------- codes


def test_list_codes_pages_and_filters(project: Provisioned) -> None:
    codes = project.admin.generate_codes(project.project_id, 25)
    client = project.client()

    first = client.list_codes(page=1, page_size=10)
    assert (first["total"], first["page"], first["page_size"], first["total_pages"]) == (25, 1, 10, 3)
    assert len(first["items"]) == 10
    assert CODE_ITEM_FIELDS <= first["items"][0].keys()
    assert first["items"][0]["status"] is False

    seen = [item["code"] for p in (1, 2, 3) for item in client.list_codes(page=p, page_size=10)["items"]]
    assert len(seen) == 25 and set(seen) == set(codes)
    assert len(client.list_codes(page=3, page_size=10)["items"]) == 5
    assert client.list_codes(page=4, page_size=10)["items"] == []

    assert client.list_codes()["page_size"] == 20  # defaults

    assert client.verify_code(codes[0])["success"] is True
    used = client.list_codes(status="used")
    assert used["total"] == 1 and used["items"][0]["code"] == codes[0]
    assert used["items"][0]["status"] is True
    assert client.list_codes(status="unused")["total"] == 24

    needle = codes[5][2:9]
    found = client.list_codes(search=needle)
    assert codes[5] in {item["code"] for item in found["items"]}


def test_list_codes_search_needing_encoding(project: Provisioned) -> None:
    project.admin.generate_codes(project.project_id, 3)
    client = project.client()
    for search in ("a b+c&d=e%f/g~h_i.j-k", "兑换码-ÄÖ"):
        answer = client.list_codes(search=search)
        assert answer["total"] == 0 and answer["items"] == [] and answer["total_pages"] == 0


def test_iter_codes(project: Provisioned) -> None:
    codes = project.admin.generate_codes(project.project_id, 25)
    client = project.client()
    walked = [item["code"] for item in client.iter_codes(page_size=7)]
    assert len(walked) == 25
    assert set(walked) == set(codes)
    client.verify_code(codes[3])
    assert [c["code"] for c in client.iter_codes(status="used")] == [codes[3]]
    assert sum(1 for _ in client.iter_codes(status="unused", page_size=100)) == 24


def test_get_code_and_get_code_by_code(project: Provisioned) -> None:
    (code,) = project.admin.generate_codes(project.project_id, 1)
    client = project.client()
    by_code = client.get_code_by_code(code)
    assert by_code["code"] == code
    assert CODE_ITEM_FIELDS <= by_code.keys()
    assert by_code["verification_logs"] == []
    by_id = client.get_code(by_code["id"])
    assert by_id["id"] == by_code["id"] and by_id["code"] == code
    assert by_id["status"] is False and by_id["is_disabled"] is False


def test_get_code_by_code_with_reserved_characters(project: Provisioned) -> None:
    client = project.client()
    # Signed over the percent-encoded path: must be a 404, not a 401.
    for code in ("A/B C#1", "兑换码?&=%", "x y+z"):
        with pytest.raises(NotFoundError):
            client.get_code_by_code(code)


# ------------------------------------------------------------------ verify


def test_verify_success_already_used_not_found(project: Provisioned) -> None:
    (code,) = project.admin.generate_codes(project.project_id, 1, metadata={"plan": "pro", "months": 12})
    client = project.client()

    first = client.verify_code(code, verified_by="user123")
    assert first["success"] is True, first
    assert first["code"] == code
    assert isinstance(first["code_id"], str) and len(first["code_id"]) == 32
    assert isinstance(first["verified_at"], int)
    assert first.get("error_code") is None
    assert first.get("metadata") == {"plan": "pro", "months": 12}

    again = client.verify_code(code, verified_by="user123")
    assert again["success"] is False
    assert again["error_code"] == "CODE_ALREADY_USED"

    missing = client.verify_code("NO-SUCH-CODE-" + uuid.uuid4().hex[:8].upper())
    assert missing["success"] is False
    assert missing["error_code"] == "CODE_NOT_FOUND"

    detail = client.get_code(first["code_id"])
    assert detail["status"] is True
    assert detail["verified_by"] == "user123"
    assert detail["verified_at"] == first["verified_at"]
    results = [log["result"] for log in detail["verification_logs"]]
    assert results.count("success") == 1


def test_verify_max_uses(project: Provisioned) -> None:
    (code,) = project.admin.generate_codes(project.project_id, 1, max_uses=2)
    client = project.client()
    assert client.verify_code(code)["success"] is True
    assert client.verify_code(code)["success"] is True
    assert client.verify_code(code)["error_code"] == "CODE_ALREADY_USED"


def test_non_ascii_verified_by_round_trips(project: Provisioned) -> None:
    (code,) = project.admin.generate_codes(project.project_id, 1)
    client = project.client()
    result = client.verify_code(code, verified_by="用户-42")
    assert result["success"] is True, result
    detail = client.get_code(result["code_id"])
    assert detail["verified_by"] == "用户-42"
    assert detail["verification_logs"][0]["verified_by"] == "用户-42"
    recent = client.get_statistics()["recent_verifications"]
    assert recent[0]["code"] == code and recent[0]["verified_by"] == "用户-42"


def test_disabled_code(project: Provisioned) -> None:
    (code,) = project.admin.generate_codes(project.project_id, 1)
    client = project.client()
    project.admin.patch_code(project.project_id, code_id_of(client, code), disabled=True)
    assert client.get_code_by_code(code)["is_disabled"] is True
    result = client.verify_code(code)
    assert result["success"] is False and result["error_code"] == "CODE_DISABLED"
    assert client.list_codes(status="disabled")["total"] == 1


def test_disabled_project(project: Provisioned) -> None:
    (code,) = project.admin.generate_codes(project.project_id, 1)
    client = project.client()
    project.admin.patch_project(project.project_id, status=False)
    result = client.verify_code(code)
    assert result["success"] is False and result["error_code"] == "PROJECT_DISABLED"
    with pytest.raises(AuthenticationError):
        client.get_project()


def test_idempotent_verify_retry(project: Provisioned) -> None:
    (code,) = project.admin.generate_codes(project.project_id, 1)
    client = project.client()
    key = f"order-{uuid.uuid4().hex}"
    first = client.verify_code(code, verified_by="buyer-1", idempotency_key=key)
    second = client.verify_code(code, verified_by="buyer-1", idempotency_key=key)
    assert first["success"] is True, first
    assert second == first
    third = client.verify_code(code, verified_by="buyer-1")  # fresh key
    assert third["success"] is False and third["error_code"] == "CODE_ALREADY_USED"
    logs = client.get_code(first["code_id"])["verification_logs"]
    assert [log["result"] for log in logs].count("success") == 1


# -------------------------------------------------------------- reactivate


def test_reactivate(project: Provisioned) -> None:
    (code,) = project.admin.generate_codes(project.project_id, 1)
    client = project.client()
    verified = client.verify_code(code, verified_by="user-7")
    assert verified["success"] is True

    result = client.reactivate_code(code, reactivated_by="support-агент", reason='refund "#123"\nline2')
    assert result["success"] is True, result
    assert result["code"] == code and result["code_id"] == verified["code_id"]
    assert isinstance(result["reactivated_at"], int)
    assert result.get("error_code") is None

    detail = client.get_code(verified["code_id"])
    assert detail["status"] is False
    assert "reactivated" in [log["result"] for log in detail["verification_logs"]]

    again = client.reactivate_code(code)
    assert again["success"] is False and again["error_code"] == "CODE_ALREADY_UNUSED"

    missing = client.reactivate_code("NO-SUCH-" + uuid.uuid4().hex[:8].upper())
    assert missing["success"] is False and missing["error_code"] == "CODE_NOT_FOUND"

    assert client.verify_code(code)["success"] is True


# -------------------------------------------------------------- statistics


def test_statistics(project: Provisioned) -> None:
    codes = project.admin.generate_codes(project.project_id, 5)
    client = project.client()
    client.verify_code(codes[0], verified_by="alice")
    client.verify_code(codes[1], verified_by="bob")
    project.admin.patch_code(project.project_id, code_id_of(client, codes[2]), disabled=True)

    stats = client.get_statistics()
    assert stats["project_id"] == project.project_id
    assert (stats["total_codes"], stats["used_codes"], stats["unused_codes"],
            stats["disabled_codes"], stats["expired_codes"]) == (5, 2, 2, 1, 0)
    assert isinstance(stats["usage_rate"], (int, float)) and stats["usage_rate"] > 0
    recent = stats["recent_verifications"]
    assert sorted(r["code"] for r in recent) == sorted(codes[:2])
    assert recent[0]["verified_at"] >= recent[1]["verified_at"]  # newest first
    assert {r["verified_by"] for r in recent} == {"alice", "bob"}
    assert all(isinstance(r["verified_at"], int) for r in recent)

    counts = client.get_project()["statistics"]
    assert (counts["total_codes"], counts["used_codes"], counts["disabled_codes"]) == (5, 2, 1)


# ------------------------------------------------------------ typed errors


def test_bad_secret_is_authentication_error(project: Provisioned) -> None:
    client = CodeGateClient(project.api_key, "0" * 64, project.project_id, project.server.base_url)
    with pytest.raises(AuthenticationError) as info:
        client.get_project()
    err = info.value
    assert isinstance(err, requests.HTTPError)
    assert err.status_code == 401 and err.response.status_code == 401
    assert err.code, "problem+json answer should carry a machine-readable code"
    assert err.detail


def test_unknown_key_is_authentication_error(project: Provisioned) -> None:
    client = CodeGateClient(uuid.uuid4().hex, project.secret, project.project_id, project.server.base_url)
    with pytest.raises(AuthenticationError):
        client.get_statistics()


def test_other_project_is_permission_denied(project: Provisioned, live_server: LiveServer,
                                            admin: Admin) -> None:
    other = provision(live_server, admin)
    client = CodeGateClient(project.api_key, project.secret, other.project_id, live_server.base_url)
    with pytest.raises(PermissionDeniedError) as info:
        client.get_project()
    assert info.value.status_code == 403
    with pytest.raises(PermissionDeniedError):
        client.verify_code("ANY-CODE")


def test_unknown_code_id_is_not_found(project: Provisioned) -> None:
    with pytest.raises(NotFoundError) as info:
        project.client().get_code(uuid.uuid4().hex)
    assert info.value.status_code == 404


@pytest.mark.parametrize("kwargs", [{"page_size": 500}, {"page_size": 0}, {"page": 0},
                                    {"status": "bogus"}])
def test_invalid_list_parameters_are_validation_errors(project: Provisioned, kwargs: dict) -> None:
    with pytest.raises(ValidationError) as info:
        project.client().list_codes(**kwargs)
    assert info.value.status_code in (400, 422)


def test_errors_are_not_retried(project: Provisioned) -> None:
    sleeps: list[float] = []
    client = project.client(sleep=sleeps.append)
    with pytest.raises(CodeGateError):
        client.get_code(uuid.uuid4().hex)
    assert sleeps == []


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize("script", ["basic_usage.py", "error_handling.py"])
def test_examples_run(project: Provisioned, script: str) -> None:
    project.admin.generate_codes(project.project_id, 3)
    env = dict(os.environ, CODEGATE_API_KEY=project.api_key, CODEGATE_SECRET=project.secret,
               CODEGATE_PROJECT_ID=project.project_id, CODEGATE_BASE_URL=project.server.base_url)
    run = subprocess.run([sys.executable, str(SDK_DIR / "examples" / script)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{script} failed:\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.stdout.strip()
