"""Fixtures: a real CodeGate server, an admin API helper and per-test projects.

The server binary comes from $CODEGATE_BIN (default <repo>/target/debug/codegate).
Each server gets a fresh data directory, is initialised with `codegate init --json`
and started with `codegate serve --listen 127.0.0.1:0`; it prints the address it
bound on stdout. Tests talk to it with the unmodified `codegate_sdk` package for
the SDK routes and with plain `requests` + the admin Bearer token for setup.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from codegate_sdk import CodeGateClient

from compat_helpers import actor, csv_body, now

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 10.0
HTTP_TIMEOUT = 30.0
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def codegate_bin() -> Path:
    path = Path(os.environ.get("CODEGATE_BIN", REPO / "target" / "debug" / "codegate"))
    if not path.is_file():
        pytest.fail(f"CodeGate binary not found at {path}: build it or set CODEGATE_BIN",
                    pytrace=False)
    return path


def server_env() -> dict[str, str]:
    return {**os.environ, "CODEGATE_RATE_LIMITS": "off"}


# ------------------------------------------------------------------ PostgreSQL mode
# With CODEGATE_TEST_DATABASE_URL=postgres://… each server gets a fresh database
# of its own on that server (created with psql, dropped when the server stops).

def _test_database_server() -> str | None:
    url = os.environ.get("CODEGATE_TEST_DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


def _psql(server_url: str, sql: str) -> None:
    result = subprocess.run(["psql", server_url, "-v", "ON_ERROR_STOP=1", "-qc", sql],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise ServerStartError(f"psql {sql!r} failed: {result.stderr}")


def _create_test_database(server_url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit
    name = f"cg_compat_{os.urandom(8).hex()}"
    _psql(server_url, f'CREATE DATABASE "{name}"')
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _drop_test_database(server_url: str, database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    try:
        _psql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except (ServerStartError, subprocess.TimeoutExpired):
        pass


# ------------------------------------------------------------------ server process

class ServerStartError(RuntimeError):
    pass


def _drain(pipe, sink: list[str], lines: queue.Queue | None) -> None:
    """Read a pipe to EOF so the server never blocks on a full pipe buffer."""
    for line in pipe:
        sink.append(line)
        if lines is not None:
            lines.put(line)
    if lines is not None:
        lines.put(None)


class CodeGateServer:
    """One `codegate serve` process on a fresh data directory."""

    def __init__(self, binary: Path):
        self.binary = binary
        self.data_dir = Path(tempfile.mkdtemp(prefix="codegate-compat-"))
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.base_url = ""
        self.token = ""
        self.database_url: str | None = None

    def env(self) -> dict[str, str]:
        env = server_env()
        if self.database_url:
            env["CODEGATE_DATABASE_URL"] = self.database_url
        return env

    def start(self) -> "CodeGateServer":
        try:
            pg_server = _test_database_server()
            if pg_server:
                self.database_url = _create_test_database(pg_server)
            self.token = self._init()
            stdout_lines = self._spawn()
            self.base_url = self._wait_for_address(stdout_lines)
            self._wait_healthy()
        except ServerStartError:
            self.stop()
            raise
        return self

    def _spawn(self) -> queue.Queue:
        """Start `codegate serve`; return the queue its stdout lines arrive on."""
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1, env=self.env(),
        )
        stdout_lines: queue.Queue = queue.Queue()
        for pipe, sink, lines in ((self.proc.stdout, self.stdout, stdout_lines),
                                  (self.proc.stderr, self.stderr, None)):
            threading.Thread(target=_drain, args=(pipe, sink, lines), daemon=True).start()
        return stdout_lines

    def _init(self) -> str:
        try:
            result = subprocess.run(
                [str(self.binary), "init", "--data-dir", str(self.data_dir), "--json"],
                capture_output=True, text=True, timeout=60, env=self.env(),
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerStartError(f"`codegate init` did not finish within 60 s: {exc}") from None
        if result.returncode != 0:
            raise ServerStartError(
                f"`codegate init` exited {result.returncode}\nstdout:\n{result.stdout}\n"
                f"stderr:\n{result.stderr}")
        for line in result.stdout.splitlines():
            if line.strip().startswith("{"):
                credentials = json.loads(line)
                missing = {"username", "password", "token"} - set(credentials)
                if missing:
                    raise ServerStartError(f"`codegate init --json` output lacks {missing}: {line}")
                return credentials["token"]
        raise ServerStartError(f"`codegate init --json` printed no JSON line:\n{result.stdout}\n"
                               f"stderr:\n{result.stderr}")

    def _wait_for_address(self, stdout_lines: queue.Queue) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerStartError(self._report(
                    f"no 'listening on http://127.0.0.1:PORT' line on stdout within {STARTUP_TIMEOUT} s"))
            try:
                line = stdout_lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=5)
                raise ServerStartError(self._report(
                    f"server exited (code {self.proc.returncode}) before announcing its address"))
            match = LISTENING.search(line)
            if match:
                return match.group(1)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                resp = requests.get(f"{self.base_url}/healthz", timeout=2)
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise ServerStartError(self._report(f"/healthz never answered 200 (last: {last})"))

    def _report(self, what: str) -> str:
        return (f"{what}\n--- server stdout ---\n{''.join(self.stdout)[-4000:]}"
                f"\n--- server stderr ---\n{''.join(self.stderr)[-8000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.database_url:
            _drop_test_database(_test_database_server(), self.database_url)
            self.database_url = None


# ------------------------------------------------------------------ admin API

class Admin:
    """The management API (Bearer token) used to set up what the SDK then reads."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, expect: int, **kwargs) -> Any:
        resp = self.session.request(method, f"{self.base_url}/api/v1{path}",
                                    timeout=HTTP_TIMEOUT, **kwargs)
        assert resp.status_code == expect, (
            f"setup call {method} {path} should answer {expect}, "
            f"got {resp.status_code}: {resp.text[:1000]}")
        return resp.json() if resp.content else None

    def create_project(self, name: str, **fields) -> dict:
        return self._call("POST", "/projects", 201, json={"name": name, **fields})

    def update_project(self, pid: str, **fields) -> dict:
        return self._call("PATCH", f"/projects/{pid}", 200, json=fields)

    def create_api_key(self, pid: str, name: str | None = None) -> dict:
        return self._call("POST", f"/projects/{pid}/api-keys", 201,
                          json={"name": name} if name else {})

    def delete_api_key(self, pid: str, key_id: str) -> None:
        self._call("DELETE", f"/projects/{pid}/api-keys/{key_id}", 204)

    def generate_codes(self, pid: str, count: int, **fields) -> dict:
        return self._call("POST", f"/projects/{pid}/codes/generate", 201,
                          json={"count": count, **fields})

    def import_csv(self, pid: str, rows: list[dict]) -> dict:
        return self._call("POST", f"/projects/{pid}/codes/import", 200,
                          data=csv_body(rows).encode(), headers={"Content-Type": "text/csv"})

    def update_code(self, pid: str, code_id: str, **fields) -> dict:
        return self._call("PATCH", f"/projects/{pid}/codes/{code_id}", 200, json=fields)


# ------------------------------------------------------------------ projects

@dataclass
class Project:
    """A project with one HMAC API key and an SDK client bound to it."""

    admin: Admin = field(repr=False)
    base_url: str
    info: dict
    key: dict = field(repr=False)
    client: CodeGateClient = field(init=False, repr=False)

    def __post_init__(self):
        self.client = self.new_client()

    @property
    def id(self) -> str:
        return self.info["id"]

    def new_client(self, *, secret: str | None = None, project_id: str | None = None) -> CodeGateClient:
        return CodeGateClient(
            api_key=self.key["api_key"],
            secret=secret if secret is not None else self.key["secret"],
            project_id=project_id if project_id is not None else self.id,
            base_url=self.base_url,
        )

    # -- seeding

    def generate(self, count: int, **fields) -> list[str]:
        resp = self.admin.generate_codes(self.id, count, **fields)
        assert resp["count"] == count and len(resp["codes"]) == count, resp
        return resp["codes"]

    def import_codes(self, codes: list[str], **row_fields) -> list[str]:
        resp = self.admin.import_csv(self.id, [{"code": c, **row_fields} for c in codes])
        assert resp["imported"] == len(codes) and resp["rejected"] == [], resp
        return codes

    def import_expired(self, codes: list[str]) -> list[str]:
        return self.import_codes(codes, expires_at=now() - 3600)

    # -- state changes

    def code_id(self, code: str) -> str:
        return self.client.get_code_by_code(code)["id"]

    def update_code(self, code: str, **fields) -> dict:
        return self.admin.update_code(self.id, self.code_id(code), **fields)

    def disable(self, code: str) -> None:
        self.update_code(code, disabled=True)

    def expire(self, code: str) -> None:
        self.update_code(code, expires_at=now() - 3600)

    def use(self, code: str, verified_by: str | None = None) -> dict:
        resp = self.client.verify_code(code, verified_by=verified_by or actor())
        assert resp.get("success") is True, f"setup verify of {code} failed: {resp!r}"
        return resp

    def update(self, **fields) -> dict:
        self.info = self.admin.update_project(self.id, **fields)
        return self.info

    def delete_key(self) -> None:
        self.admin.delete_api_key(self.id, self.key["id"])


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session", autouse=True)
def _http_timeout_guard():
    """The SDK sends requests without a timeout; make a hung server fail a test
    instead of hanging the whole suite (the SDK's own code is left untouched)."""
    original = requests.adapters.HTTPAdapter.send

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = HTTP_TIMEOUT
        return original(self, request, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(requests.adapters.HTTPAdapter, "send", send)
        yield


def _start_server() -> CodeGateServer:
    server = CodeGateServer(codegate_bin())
    try:
        return server.start()
    except ServerStartError as exc:
        failure = str(exc)
    pytest.fail(f"could not start CodeGate: {failure}", pytrace=False)


@pytest.fixture(scope="session")
def server():
    """One server for the session; tests isolate themselves with their own projects."""
    srv = _start_server()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server():
    """A server of its own on a fresh data directory, for tests that need one."""
    srv = _start_server()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def admin(server) -> Admin:
    return Admin(server.base_url, server.token)


_project_counter = itertools.count(1)


@pytest.fixture
def make_project(request, server, admin):
    """Factory: a new project (and API key) per call, named after the test."""

    def make(description: str = "compat suite project", **fields) -> Project:
        name = f"{request.node.name[:80]}-{next(_project_counter)}"
        info = admin.create_project(name, description=description, **fields)
        key = admin.create_api_key(info["id"], name="compat")
        return Project(admin=admin, base_url=server.base_url, info=info, key=key)

    return make


@pytest.fixture
def project(make_project) -> Project:
    return make_project()
