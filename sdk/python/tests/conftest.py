"""Shared test helpers: a scripted HTTP adapter for unit tests, and a real
``codegate`` server started in a fresh data directory for live tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from codegate_sdk import CodeGateClient

SDK_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = SDK_DIR.parents[1]

# --------------------------------------------------------------------------
# Unit-test helpers: a transport adapter answering from a script
# --------------------------------------------------------------------------

Reply = Union[tuple[int, Mapping[str, str], Union[bytes, str, dict, None]], BaseException]


class ScriptedAdapter(BaseAdapter):
    """A requests transport that records requests and answers from a script.

    ``replies`` is a list consumed in order (the last one repeats), or a
    callable ``(request, index) -> reply``. A reply is ``(status, headers, body)``
    (``body`` a dict is sent as JSON) or an exception to raise.
    """

    def __init__(self, replies: Union[list[Reply], Callable[[requests.PreparedRequest, int], Reply]]):
        super().__init__()
        self.replies = replies
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        index = len(self.requests)
        self.requests.append(request)
        if callable(self.replies):
            reply = self.replies(request, index)
        else:
            reply = self.replies[min(index, len(self.replies) - 1)]
        if isinstance(reply, BaseException):
            raise reply
        status, headers, body = reply
        hdrs = CaseInsensitiveDict(dict(headers))
        if isinstance(body, dict):
            content = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            content = body.encode()
        else:
            content = body or b""
        response = requests.Response()
        response.status_code = status
        response.headers = hdrs
        response._content = content  # type: ignore[attr-defined]
        response.encoding = "utf-8"
        response.request = request
        response.url = request.url or ""
        response.reason = {200: "OK", 401: "Unauthorized", 429: "Too Many Requests"}.get(status, "")
        return response

    def close(self) -> None:
        pass


class FakeTime:
    """A clock and a sleep function that advances it, recording each sleep."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted_client(
    replies: Union[list[Reply], Callable[[requests.PreparedRequest, int], Reply]],
    fake_time: Optional[FakeTime] = None,
    **kwargs: Any,
) -> tuple[CodeGateClient, ScriptedAdapter, FakeTime]:
    """A client whose HTTP goes to a :class:`ScriptedAdapter`."""
    fake_time = fake_time or FakeTime()
    adapter = ScriptedAdapter(replies)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    client = CodeGateClient(
        "k" * 32,
        "s" * 64,
        "p" * 32,
        "http://codegate.test",
        session=session,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        **kwargs,
    )
    return client, adapter, fake_time


# --------------------------------------------------------------------------
# Live server
# --------------------------------------------------------------------------

LISTEN_RE = re.compile(r"listening on (https?://\S+)")
START_TIMEOUT = 20.0

# Variables that would point the server at something other than a fresh
# SQLite database in a temp dir, or change its limits behind the tests' back.
_SCRUBBED_ENV_PREFIXES = ("CODEGATE_RATE_LIMIT",)
_SCRUBBED_ENV = {
    "CODEGATE_DATABASE_URL",
    "CODEGATE_REDIS_URL",
    "CODEGATE_LISTEN",
    "CODEGATE_DATA_DIR",
    "CODEGATE_URL",
    "CODEGATE_TOKEN",
}


def codegate_binary() -> Path:
    """The server binary: ``$CODEGATE_BIN`` or ``<repo>/target/debug/codegate``.

    Fails the test (never skips) when it is missing.
    """
    configured = os.environ.get("CODEGATE_BIN")
    binary = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "codegate"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"codegate server binary not found at {binary}: run `cargo build -p codegate` "
            "in the repository root (or set CODEGATE_BIN to the binary)",
            pytrace=False,
        )
    return binary


def _server_env(extra: Optional[Mapping[str, str]]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED_ENV and not key.startswith(_SCRUBBED_ENV_PREFIXES)
    }
    env.update(extra or {})
    return env


def _drain(stream: Any, sink: list[str], on_line: Optional[Callable[[str], None]] = None) -> None:
    for line in iter(stream.readline, ""):
        sink.append(line.rstrip("\n"))
        if on_line is not None:
            on_line(line)
    stream.close()


@dataclass
class LiveServer:
    """A running ``codegate serve`` and the admin credentials from ``init``."""

    base_url: str
    token: str
    username: str
    password: str
    process: subprocess.Popen[str]
    data_dir: str
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def logs(self, lines: int = 40) -> str:
        """The last lines of the server's stdout and stderr, for messages."""
        out = "\n".join(self.stdout[-lines:])
        err = "\n".join(self.stderr[-lines:])
        return f"--- server stdout ---\n{out}\n--- server stderr ---\n{err}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(extra_env: Optional[Mapping[str, str]] = None) -> LiveServer:
    """``codegate init`` a fresh temp data dir, then ``codegate serve`` it on
    a free loopback port; waits for the ``listening on`` line and ``/healthz``."""
    binary = codegate_binary()
    data_dir = tempfile.mkdtemp(prefix="codegate-sdk-test-")
    env = _server_env(extra_env)

    init = subprocess.run(
        [str(binary), "init", "--data-dir", data_dir, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    if init.returncode != 0:
        pytest.fail(
            f"`codegate init --data-dir {data_dir} --json` exited {init.returncode}\n"
            f"stdout:\n{init.stdout}\nstderr:\n{init.stderr}",
            pytrace=False,
        )
    admin: Optional[dict[str, Any]] = None
    for line in init.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                admin = json.loads(line)
                break
            except ValueError:
                continue
    if not admin or not all(k in admin for k in ("username", "password", "token")):
        pytest.fail(
            "`codegate init --json` did not print a JSON line with username, password, token\n"
            f"stdout:\n{init.stdout}\nstderr:\n{init.stderr}",
            pytrace=False,
        )

    process = subprocess.Popen(
        [str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=env,
    )
    stdout_lines: list[str] = []
    stderr_lines: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def on_stdout(line: str) -> None:
        match = LISTEN_RE.search(line)
        if match and "url" not in found:
            found["url"] = match.group(1).rstrip("/")
            ready.set()

    threading.Thread(target=_drain, args=(process.stdout, stdout_lines, on_stdout), daemon=True).start()
    threading.Thread(target=_drain, args=(process.stderr, stderr_lines), daemon=True).start()

    server = LiveServer(
        base_url="",
        token=admin["token"],
        username=admin["username"],
        password=admin["password"],
        process=process,
        data_dir=data_dir,
        stdout=stdout_lines,
        stderr=stderr_lines,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not ready.wait(0.05):
        if process.poll() is not None:
            time.sleep(0.2)  # let the drain threads catch the last lines
            pytest.fail(
                f"`codegate serve` exited with {process.returncode} before printing "
                f"'listening on http://…' on stdout\n{server.logs()}",
                pytrace=False,
            )
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(
                f"`codegate serve` printed no 'listening on http://…' line on stdout "
                f"within {START_TIMEOUT:.0f} s\n{server.logs()}",
                pytrace=False,
            )
    server.base_url = found["url"]

    last_error = ""
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                return server
            last_error = "status not 200"
        except requests.RequestException as exc:
            last_error = str(exc)
        time.sleep(0.1)
    server.stop()
    pytest.fail(f"/healthz did not answer 200 within {START_TIMEOUT:.0f} s ({last_error})\n{server.logs()}", pytrace=False)


def stop_server(server: LiveServer) -> None:
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)


class Admin:
    """Management API calls with the admin's Bearer token (test set-up only)."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {server.token}"

    def call(self, method: str, path: str, body: Optional[dict[str, Any]] = None,
             expect: tuple[int, ...] = (200, 201)) -> Any:
        """Send a management request; retry politely on 429; assert the status."""
        url = f"{self.server.base_url}{path}"
        for _ in range(10):
            response = self.session.request(method, url, json=body, timeout=30)
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("Retry-After") or 1))
        assert response.status_code in expect, (
            f"management call {method} {path} {body!r} answered {response.status_code}: "
            f"{response.text[:500]}"
        )
        return response.json() if response.content else None

    def create_project(self, name: Optional[str] = None) -> dict[str, Any]:
        project = self.call("POST", "/api/v1/projects",
                            {"name": name or f"sdk-test-{uuid.uuid4().hex[:8]}"}, expect=(201,))
        assert isinstance(project.get("id"), str) and len(project["id"]) == 32, project
        return project

    def create_api_key(self, project_id: str) -> dict[str, Any]:
        key = self.call("POST", f"/api/v1/projects/{project_id}/api-keys",
                        {"name": "sdk-tests"}, expect=(201,))
        for name in ("api_key", "secret"):
            assert isinstance(key.get(name), str) and key[name], key
        return key

    def generate_codes(self, project_id: str, count: int, **options: Any) -> list[str]:
        answer = self.call("POST", f"/api/v1/projects/{project_id}/codes/generate",
                           {"count": count, **options}, expect=(201,))
        codes = answer["codes"]
        assert len(codes) == count == answer["count"], answer
        return codes

    def patch_code(self, project_id: str, code_id: str, **fields: Any) -> dict[str, Any]:
        return self.call("PATCH", f"/api/v1/projects/{project_id}/codes/{code_id}", fields)

    def patch_project(self, project_id: str, **fields: Any) -> dict[str, Any]:
        return self.call("PATCH", f"/api/v1/projects/{project_id}", fields)


@dataclass
class Provisioned:
    """A fresh project with one HMAC API key on a live server."""

    server: LiveServer
    admin: Admin
    project_id: str
    api_key: str
    secret: str

    def client(self, **kwargs: Any) -> CodeGateClient:
        """An SDK client for this project (keyword arguments go to the constructor)."""
        return CodeGateClient(self.api_key, self.secret, self.project_id, self.server.base_url, **kwargs)


def provision(server: LiveServer, admin: Admin) -> Provisioned:
    project = admin.create_project()
    key = admin.create_api_key(project["id"])
    if "project_id" in key:
        assert key["project_id"] == project["id"], key
    return Provisioned(server, admin, project["id"], key["api_key"], key["secret"])


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """One server for the whole run, default read / redemption limits; bulk and
    management limits raised so test set-up never waits."""
    server = start_server({
        "CODEGATE_RATE_LIMIT_BULK": "1000/60",
        "CODEGATE_RATE_LIMIT_MANAGEMENT": "1000/60",
    })
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def admin(live_server: LiveServer) -> Admin:
    return Admin(live_server)


@pytest.fixture
def project(live_server: LiveServer, admin: Admin) -> Provisioned:
    """A fresh project and API key for one test."""
    return provision(live_server, admin)


def vectors_path() -> Path:
    """``$CODEGATE_VECTORS`` or ``<repo>/../shared/vectors/signature_v1.json``."""
    configured = os.environ.get("CODEGATE_VECTORS")
    if configured:
        return Path(configured)
    return REPO_ROOT.parent / "shared" / "vectors" / "signature_v1.json"
