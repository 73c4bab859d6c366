"""`secretctl serve` as an operator runs it (granian, SQLite, local backend), driven over real
HTTP by `requests` and by the `secretctl` client commands."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

BIN = Path(sys.executable).parent
VALUE = "ghp-serve-test-1f2e3d4c5b6a7988"
VALUE_2 = "ghp-serve-test-second-0a9b8c7d"


@dataclass
class Server:
    addr: str
    token: str
    data_dir: Path
    process: subprocess.Popen
    log_path: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "SECRETS_ADDR": self.addr, "SECRETS_TOKEN": self.token}

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "secretctl"), *args],
            input=stdin,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def output(self) -> str:
        return self.log_path.read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_env(data_dir: Path, port: int, **settings: str) -> dict[str, str]:
    """The environment of a `secretctl serve` of its own: none of the caller's SECRETS_*."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SECRETS_")}
    return env | {"SECRETS_DATA_DIR": str(data_dir), "SECRETS_PORT": str(port)} | settings


# granian does not stop when SIGTERM comes while its workers are still being spawned (measured:
# 2 of 8 stops within a moment of the first answer hung without the embedded worker, 5 of 8 with
# it, 0 of 16 two seconds later): a test stops a server only once it has been up that long.
SETTLE_SECONDS = 2.0


def settle_before_stopping(started_at: float) -> None:
    time.sleep(max(0.0, started_at + SETTLE_SECONDS - time.monotonic()))


@contextmanager
def running_server(
    env: dict[str, str], workdir: Path, command: tuple[str, ...] = ("serve",)
) -> Iterator[Server]:
    """`secretctl serve` (or `command`) with `env`, once it answers `/healthz`; stopped on
    leaving. Over HTTPS when `env` names a certificate (`SECRETS_TLS__CERT_FILE`, self-signed:
    it is its own authority)."""
    port = int(env["SECRETS_PORT"])
    log_path = workdir / f"server-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "secretctl"), *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    certificate = env.get("SECRETS_TLS__CERT_FILE")
    addr = f"{'https' if certificate else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    started_at = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"secretctl serve exited:\n{log_path.read_text()}")
            try:
                answer = requests.get(f"{addr}/healthz", timeout=5, verify=certificate or True)
                if answer.status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"secretctl serve did not answer:\n{log_path.read_text()}")
            time.sleep(0.2)
        started_at = time.monotonic()  # answering: settle from here
        token = re.search(r"SECRETS_TOKEN=(\S+)", log_path.read_text())
        data_dir = Path(env["SECRETS_DATA_DIR"])
        yield Server(addr, token.group(1) if token else "", data_dir, process, log_path)
    finally:
        if process.poll() is None:  # a test may have stopped it itself
            settle_before_stopping(started_at)
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # never leave a server behind the test run
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            raise


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = serve_env(tmp_path / "data", free_port(), SECRETS_LOG_LEVEL="DEBUG")
    with running_server(env, tmp_path) as started:
        yield started


def test_operator_session(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    api = f"{server.addr}/api/v1"
    assert requests.get(f"{api}/secrets", timeout=5).status_code == 401

    body = {
        "name": "GITHUB_TOKEN",
        "value": VALUE,
        "consumer": "git_provider",
        "scope": {"type": "project", "id": "p-7", "parent": {"type": "organization", "id": "o-1"}},
    }
    created = requests.post(f"{api}/secrets", headers=headers, timeout=5, json=body)
    assert created.status_code == 404  # the parent organization does not exist yet
    made_org = server.cli(
        "set", "ORG_WIDE", "--scope", "organization:o-1", "--parent", "global", stdin="x"
    )
    assert made_org.returncode == 0, made_org.stderr
    created = requests.post(f"{api}/secrets", headers=headers, timeout=5, json=body)
    assert created.status_code == 201, created.text
    secret_id = created.json()["id"]
    second = requests.post(
        f"{api}/secrets/{secret_id}/versions", headers=headers, timeout=5, json={"value": VALUE_2}
    )
    assert second.status_code == 201
    v1 = requests.get(f"{api}/secrets/{secret_id}/value?version=1", headers=headers, timeout=5)
    assert v1.json()["value"] == VALUE

    got = server.cli("get", "GITHUB_TOKEN", "--scope", "project:p-7")
    assert got.returncode == 0 and got.stdout == VALUE_2 + "\n"
    set_new = server.cli(
        "set",
        "SLACK_WEBHOOK",
        "--scope",
        "project:p-7",
        "--env",
        "staging",
        stdin="https://hooks.example/x",
    )
    assert set_new.returncode == 0, set_new.stderr
    assert "version 1" in set_new.stdout
    set_again = server.cli(
        "set",
        "SLACK_WEBHOOK",
        "--scope",
        "project:p-7",
        "--env",
        "staging",
        stdin="https://hooks.example/y\n",  # as `echo` pipes it: the newline is dropped
    )
    assert "version 2" in set_again.stdout
    webhook = server.cli("get", "SLACK_WEBHOOK", "--scope", "project:p-7", "--env", "staging")
    assert webhook.stdout == "https://hooks.example/y\n"  # get prints one; set dropped the pipe's
    listed = server.cli("list", "--scope", "project:p-7")
    assert "GITHUB_TOKEN" in listed.stdout and "SLACK_WEBHOOK" in listed.stdout
    missing = server.cli("get", "NOPE", "--scope", "project:p-7")
    assert missing.returncode == 3 and "not_found" in missing.stderr  # exit 3: not found

    deleted = requests.delete(f"{api}/secrets/{secret_id}", headers=headers, timeout=5)
    assert deleted.status_code == 200
    assert "GITHUB_TOKEN" not in server.cli("list", "--scope", "project:p-7").stdout

    assert stat.S_IMODE(os.stat(server.data_dir / "master.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(server.data_dir).st_mode) == 0o700
    for path in server.data_dir.iterdir():
        content = path.read_bytes()
        assert VALUE.encode() not in content and VALUE_2.encode() not in content, path
    output = server.output()
    assert "POST /api/v1/secrets" in output  # the DEBUG log was really captured
    assert VALUE not in output and VALUE_2 not in output


def test_run_injects_resolved_secrets_into_a_child_process(server: Server) -> None:
    steps = [
        ("DB_HOST", "global-host", "global", None, None),
        ("API_URL", "from-global", "global", None, None),
        ("TEAM_ONLY", "from-team", "team:t-1", "organization:acme", None),
        ("API_URL", "from-project", "project:p-7", "team:t-1", None),
        ("API_URL", "from-project-prod", "project:p-7", None, "production"),
    ]
    made = server.cli("set", "ORG", "--scope", "organization:acme", "--parent", "global", stdin="o")
    assert made.returncode == 0, made.stderr
    for name, value, scope, parent, environment in steps:
        args = ["set", name, "--scope", scope]
        args += ["--parent", parent] if parent else []
        args += ["--env", environment] if environment else []
        result = server.cli(*args, stdin=value)
        assert result.returncode == 0, result.stderr

    show = "import json, os; print(json.dumps({k: os.environ.get(k) for k in %r}))"
    names = ["API_URL", "TEAM_ONLY", "DB_HOST", "ORG", "KEEP_ME"]
    child = [sys.executable, "-c", show % names]
    base = ["run", "--project", "p-7", "--env", "production"]
    os.environ["KEEP_ME"] = "parent-value"
    try:
        inherited = server.cli(*base, "--", *child)
        isolated = server.cli(*base, "--no-inherit-env", "--", *child)
    finally:
        del os.environ["KEEP_ME"]
    assert inherited.returncode == 0, inherited.stderr
    assert json.loads(inherited.stdout) == {
        "API_URL": "from-project-prod",
        "TEAM_ONLY": "from-team",
        "DB_HOST": "global-host",
        "ORG": "o",
        "KEEP_ME": "parent-value",
    }
    assert json.loads(isolated.stdout)["KEEP_ME"] is None

    resolved = server.cli("resolve", "--project", "p-7", "--env", "production")
    assert "API_URL\tproject/p-7\tproduction\tproject/p-7, global/global" in resolved.stdout

    server.cli("set", "A-B", "--scope", "project:p-7", stdin="1")
    server.cli("set", "A_B", "--scope", "project:p-7", stdin="2")
    clash = server.cli(*base, "--", *child)
    assert (
        clash.returncode == 1 and "two secrets become the environment variable A_B" in clash.stderr
    )


def test_login_stores_the_token_privately(server: Server, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETS_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    secretctl = str(BIN / "secretctl")

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [secretctl, *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    refused = cli("login", "--addr", server.addr, "--token", "wrong-token")
    assert refused.returncode == 4 and "unauthenticated" in refused.stderr  # not allowed
    assert not (tmp_path / "config" / "secretctl" / "credentials.json").exists()
    assert cli("login", "--addr", server.addr, "--token", server.token).returncode == 0
    stored = tmp_path / "config" / "secretctl" / "credentials.json"
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert cli("set", "STORED", stdin="works").returncode == 0
    assert cli("get", "STORED").stdout == "works\n"


def test_admin_grant_works_on_the_database_directly(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETS_")}
    env["SECRETS_DATA_DIR"] = str(server.data_dir)
    granted = subprocess.run(
        [str(BIN / "secretctl"), "admin", "grant", "--principal", "user:zoe", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert granted.returncode == 0, granted.stderr
    assert "granted admin at global/global to user:zoe" in granted.stdout
    bindings = requests.get(
        f"{server.addr}/api/v1/role-bindings",
        params={"principal": "user:zoe"},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=5,
    ).json()
    assert [(b["principal"], b["role"], b["created_by"]) for b in bindings["items"]] == [
        ("user:zoe", "admin", "cli")
    ]


def test_audit_verify_and_prune_at_the_machine(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETS_")}
    env["SECRETS_DATA_DIR"] = str(server.data_dir)
    headers = {"Authorization": f"Bearer {server.token}"}
    requests.get(f"{server.addr}/api/v1/secrets", headers=headers, timeout=5)

    def secretctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "secretctl"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    verified = secretctl("audit", "verify", "--local")
    assert verified.returncode == 0, verified.stderr
    assert "audit chain intact" in verified.stdout
    pruned = secretctl("audit", "prune", "--older-than", "400d")
    assert pruned.returncode == 0 and "pruned 0 audit events" in pruned.stdout
    assert secretctl("audit", "prune", "--older-than", "soon").returncode == 2


def test_a_stop_does_not_wait_for_an_open_change_stream(tmp_path: Path) -> None:
    """SIGTERM ends the server though a client holds a change stream open (which never ends by
    itself): the worker is killed past `WORKERS_KILL_SECONDS` instead of waiting forever."""
    env = serve_env(tmp_path / "data", free_port())
    with running_server(env, tmp_path) as started:
        stream = requests.get(
            f"{started.addr}/api/v1/events/stream",
            headers={"Authorization": f"Bearer {started.token}"},
            stream=True,
            timeout=60,
        )
        assert stream.status_code == 200
        settle_before_stopping(time.monotonic())
        stopping = time.monotonic()
        os.killpg(started.process.pid, signal.SIGTERM)
        try:
            started.process.wait(timeout=25)
        finally:
            stream.close()
        assert time.monotonic() - stopping < 25
