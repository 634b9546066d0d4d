"""Authentication and authorisation failures on the signed SDK API."""

import pytest
import requests

from compat_helpers import (
    actor, assert_business_failure, assert_problem, expect_http_error, now, signed_request,
)

# Read methods of the SDK, each as (client, code, code_id) -> answer.
READ_CALLS = {
    "get_project": lambda client, code, code_id: client.get_project(),
    "list_codes": lambda client, code, code_id: client.list_codes(),
    "get_code": lambda client, code, code_id: client.get_code(code_id),
    "get_code_by_code": lambda client, code, code_id: client.get_code_by_code(code),
    "get_statistics": lambda client, code, code_id: client.get_statistics(),
}


def project_path(project) -> str:
    return f"/api/v1/projects/{project.id}"


def send_signed(project, *, timestamp=None, **kwargs) -> requests.Response:
    return signed_request(project.base_url, "GET", project_path(project),
                          api_key=project.key["api_key"], secret=project.key["secret"],
                          timestamp=timestamp, **kwargs)


def test_wrong_secret_is_401(project):
    client = project.new_client(secret="0" * 64)
    expect_http_error(401, client.get_project, problem_code="INVALID_SIGNATURE")


def test_hand_signed_request_with_current_timestamp_is_accepted(project):
    """Control for the timestamp tests: the hand-made signature itself is right."""
    resp = send_signed(project)
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == project.id


@pytest.mark.parametrize("offset", [-3600, 3600], ids=["stale", "future"])
def test_timestamp_out_of_window_is_401(project, offset):
    resp = send_signed(project, timestamp=now() + offset)
    assert_problem(resp, 401, "TIMESTAMP_OUT_OF_WINDOW")


def test_unknown_api_key_is_401(project):
    resp = signed_request(project.base_url, "GET", project_path(project), api_key="f" * 32,
                          secret=project.key["secret"])
    assert_problem(resp, 401)


def test_unsigned_request_is_401(project):
    resp = requests.get(project.base_url + project_path(project), timeout=30)
    assert_problem(resp, 401)


@pytest.mark.parametrize("call", [
    lambda client: client.get_project(),
    lambda client: client.list_codes(),
    lambda client: client.get_statistics(),
    lambda client: client.verify_code("ANY-CODE", verified_by=actor()),
], ids=["get_project", "list_codes", "get_statistics", "verify_code"])
def test_key_of_another_project_is_403(make_project, call):
    mine, other = make_project(), make_project()
    other.generate(1)
    client = mine.new_client(project_id=other.id)

    expect_http_error(403, call, client)


@pytest.mark.parametrize("name", list(READ_CALLS))
def test_disabled_project_refuses_reads_with_401_but_verify_answers(project, name):
    code, spare = project.generate(2)
    code_id = project.code_id(code)
    project.update(status=False)

    expect_http_error(401, READ_CALLS[name], project.client, code, code_id)
    assert_business_failure(project.client.verify_code(spare, verified_by=actor()), "PROJECT_DISABLED")


def test_deleted_api_key_is_401(project):
    code, spare = project.generate(2)
    project.use(code)  # the key works before deletion

    project.delete_key()

    expect_http_error(401, project.client.get_project)
    expect_http_error(401, project.client.list_codes)
    expect_http_error(401, project.client.verify_code, spare, verified_by=actor())
