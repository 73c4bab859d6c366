"""The lifecycle worker runs wherever the service runs (issue 16), with real processes:

- `secretctl serve` in the embedded default runs one worker of its own: a scheduled rotation
  happens and its webhook is delivered with nothing else started;
- as docker-compose.yml runs it: `secretctl serve` and `secretctl worker`, the commands and the
  environment of its two services, on PostgreSQL in production mode;
- and the status of the worker, its heartbeat, is there to read.

The shortest interval a rotation policy may have is a minute (`core.rotation_policies
.MIN_INTERVAL_SECONDS`): rather than wait it out, each test moves the policy's next run to now
in the database, as if the minute had passed; the worker polls every half second.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import yaml
from sqlalchemy import Engine, select, update

from adapters.db.engine import create_engine_from_url
from adapters.db.tables import rotation_policies, workers
from adapters.webhooks import verify_signature
from entrypoints.server import WORKERS_KILL_SECONDS, port_in_use
from tests.e2e.test_attacks_ops_serve import dockerfile_environment
from tests.e2e.test_serve import BIN, free_port, running_server, serve_env
from tests.support.webhooks import WebhookReceiver, webhook_receiver

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
WEBHOOK_KEY = "webhook-hmac-key-of-the-worker-tests-0123"
GRANT_OPS = ("admin", "grant", "--principal", "user:ops", "--role", "admin")
JWT_KEY = "compose-test-shared-jwt-key-0123456789abcdef"
VALUE = "sk-serve-worker-test-0f1e2d3c4b5a"


def fast_worker_with_webhook(receiver: WebhookReceiver) -> dict[str, str]:
    """What an operator adds to the environment: an event webhook; and, for a test, a worker
    that polls every half second."""
    return {
        "SECRETS_WORKER__POLL_SECONDS": "0.5",
        "SECRETS_EVENTS__WEBHOOKS__RECEIVER__URL": f"{receiver.url}/events",
        "SECRETS_EVENTS__WEBHOOKS__RECEIVER__SECRET_ENV": "TEST_WEBHOOK_KEY",
        "TEST_WEBHOOK_KEY": WEBHOOK_KEY,
    }


class Api:
    def __init__(self, addr: str, token: str) -> None:
        self.addr = addr
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, f"{self.addr}/api/v1{path}", headers=self.headers, timeout=10, **kwargs
        )

    def rotating_secret(self) -> str:
        """A secret of the global scope with a `random` rotation policy; its id."""
        body = {"name": "ROTATED_TOKEN", "value": VALUE, "scope": {"type": "global"}}
        created = self.call("POST", "/secrets", json=body)
        assert created.status_code == 201, created.text
        secret_id: str = created.json()["id"]
        policy = {"rotator": "random", "interval_seconds": 60, "grace_seconds": 0}
        answer = self.call("PUT", f"/secrets/{secret_id}/rotation-policy", json=policy)
        assert answer.status_code == 200, answer.text
        return secret_id

    def current_version(self, secret_id: str) -> int:
        return int(self.call("GET", f"/secrets/{secret_id}").json()["current_version"])


def make_due(engine: Engine, secret_id: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(rotation_policies)
            .where(rotation_policies.c.secret_id == uuid.UUID(secret_id))
            .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def wait_until(
    condition: Callable[[], bool], what: str, log: Callable[[], str], seconds: float = 30
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds:g} s:\n{log()}")
        time.sleep(0.2)


def rotated_events(receiver: WebhookReceiver, secret_id: str) -> list[Any]:
    return [
        request
        for request in receiver.requests
        if request.json()["type"] == "secret.rotated"
        and request.json()["secret"]["id"] == secret_id
    ]


def see_rotation_and_webhook(
    api: Api, engine: Engine, receiver: WebhookReceiver, log: Callable[[], str]
) -> str:
    """A due scheduled rotation is run and its event delivered, signed; the secret's id."""
    secret_id = api.rotating_secret()
    assert api.current_version(secret_id) == 1
    make_due(engine, secret_id)
    wait_until(lambda: api.current_version(secret_id) == 2, "the scheduled rotation", log)
    wait_until(lambda: bool(rotated_events(receiver, secret_id)), "the webhook delivery", log)
    [delivered] = rotated_events(receiver, secret_id)
    assert verify_signature(WEBHOOK_KEY.encode(), delivered.headers, delivered.body)
    assert delivered.json()["actor"] == "worker" and delivered.json()["version"] == 2
    assert VALUE not in log()
    return secret_id


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def worker_rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(workers)))


# -- the embedded default --------------------------------------------------------------------


def test_serve_runs_one_worker_itself_so_rotations_and_webhooks_happen(tmp_path: Path) -> None:
    with webhook_receiver() as receiver:
        env = serve_env(tmp_path / "data", free_port(), **fast_worker_with_webhook(receiver))
        engine = create_engine_from_url(f"sqlite:///{tmp_path / 'data' / 'secrets.db'}")
        try:
            with running_server(env, tmp_path) as server:
                api = Api(server.addr, server.token)
                see_rotation_and_webhook(api, engine, receiver, server.output)

                status = api.call("GET", "/status").json()
                # One worker for the server, though it runs two HTTP worker processes.
                [worker] = status["workers"]
                assert worker["alive"] and worker["last_heartbeat_age_seconds"] < 5
                assert parent_of(worker["pid"]) == server.process.pid
                ready = requests.get(f"{server.addr}/readyz", timeout=5).json()["worker"]
                assert ready["alive"] == 1 and ready["last_heartbeat_age_seconds"] < 5
            assert not running(worker["pid"])  # stopped with the server
            assert worker_rows(engine) == []  # and its heartbeat row removed
        finally:
            engine.dispose()


def test_no_worker_turns_the_embedded_worker_off(tmp_path: Path) -> None:
    for settings, args in (({"SECRETS_WORKER__EMBEDDED": "false"}, ()), ({}, ("--no-worker",))):
        env = serve_env(
            tmp_path / "data", free_port(), SECRETS_WORKER__POLL_SECONDS="0.5", **settings
        )
        with running_server(env, tmp_path, ("serve", *args)) as server:
            time.sleep(2)  # four polls of a worker, had one started
            status = Api(server.addr, server.token).call("GET", "/status").json()
            assert status["workers"] == [], status


def test_the_embedded_worker_is_started_again_if_it_dies(tmp_path: Path) -> None:
    env = serve_env(tmp_path / "data", free_port(), SECRETS_WORKER__POLL_SECONDS="0.5")
    with running_server(env, tmp_path) as server:
        api = Api(server.addr, server.token)

        def worker_pids() -> list[int]:
            return [w["pid"] for w in api.call("GET", "/status").json()["workers"] if w["alive"]]

        wait_until(lambda: len(worker_pids()) == 1, "the first heartbeat", server.output)
        [first] = worker_pids()
        os.kill(first, signal.SIGKILL)
        wait_until(
            lambda: any(pid != first for pid in worker_pids()), "a new worker", server.output
        )
        assert "the embedded worker exited with status -9" in server.output()


def children(pid: int) -> list[int]:
    """The processes `pid` has started and that still run (whichever of its threads did)."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def started_at(pid: int) -> str | None:
    """When process `pid` started (in clock ticks since boot): tells it from a process that
    gets its number later; None once it is gone (or a zombie, which holds nothing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else fields[19]


@contextmanager
def killed_if_left(pids: list[int]) -> Iterator[dict[int, str | None]]:
    """`pids` and when each started; whichever still runs on leaving is killed: never a process
    left behind the test run, whatever happened."""
    processes = {pid: started_at(pid) for pid in pids}
    try:
        yield processes
    finally:
        for pid, start in processes.items():
            if started_at(pid) == start:
                os.kill(pid, signal.SIGKILL)


def all_gone(processes: dict[int, str | None]) -> Callable[[], bool]:
    return lambda: not any(started_at(pid) == start for pid, start in processes.items())


def test_everything_the_server_started_stops_when_the_server_is_killed(tmp_path: Path) -> None:
    """Killed (`kill -9`, systemd's KillMode=process, a supervisor), the server cannot stop its
    processes: its embedded worker (a session of its own, out of reach of the signals sent to
    the server's group) and its HTTP workers (granian's, forked from it) see their parent gone
    and stop by themselves. Left running, the HTTP workers would hold the port (SO_REUSEPORT: a
    new server there would share the connections with them) and the database."""
    port = free_port()
    env = serve_env(tmp_path / "data", port, SECRETS_WORKER__POLL_SECONDS="0.5")
    with running_server(env, tmp_path) as server:
        api = Api(server.addr, server.token)
        wait_until(
            lambda: bool(api.call("GET", "/status").json()["workers"]), "a heartbeat", server.output
        )
        [worker] = api.call("GET", "/status").json()["workers"]
        with killed_if_left(children(server.process.pid)) as processes:
            assert worker["pid"] in processes
            assert len(processes) >= 3, processes  # the worker and two HTTP workers at least
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)
            wait_until(all_gone(processes), "the stop of the server's processes", server.output, 10)
        assert "the server (process" in server.output()
        assert "HTTP worker" in server.output()
        assert not port_in_use("127.0.0.1", port)


def test_an_http_worker_holding_a_change_stream_exits_when_the_server_is_killed(
    tmp_path: Path,
) -> None:
    """A change stream never ends by itself, and granian's graceful stop would wait for it: the
    HTTP worker exits `WORKERS_KILL_SECONDS` after its server is gone, as the server would have
    killed it."""
    port = free_port()
    env = serve_env(tmp_path / "data", port, SECRETS_WORKER__EMBEDDED="false")
    with running_server(env, tmp_path) as server:
        stream = requests.get(
            f"{server.addr}/api/v1/events/stream",
            headers={"Authorization": f"Bearer {server.token}"},
            stream=True,
            timeout=60,
        )
        try:
            assert stream.status_code == 200
            with killed_if_left(children(server.process.pid)) as processes:
                os.kill(server.process.pid, signal.SIGKILL)
                server.process.wait(timeout=10)
                seconds = WORKERS_KILL_SECONDS + 10
                wait_until(
                    all_gone(processes), "the exit of the HTTP workers", server.output, seconds
                )
        finally:
            stream.close()
        assert f"did not stop in {WORKERS_KILL_SECONDS:g} s: it exits" in server.output()
        assert not port_in_use("127.0.0.1", port)


# -- as docker-compose.yml runs it ----------------------------------------------------------


def compose_variables() -> dict[str, str]:
    """What an operator puts in the .env file next to docker-compose.yml."""
    return {
        "POSTGRES_PASSWORD": "not-used-here",
        "SECRETS_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "IDP_ISSUER": "https://idp.compose.test",
        "IDP_JWKS_URL": "https://idp.compose.test/jwks.json",
    }


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?message}`."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        assert kind == "-", f"docker-compose.yml needs {name}: {rest}"
        return rest

    return re.sub(r"\$\{(\w+)(?::([-?])([^}]*))?\}", one, str(value))


def compose_service(name: str, variables: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """A service's command and environment, as compose gives them to the container."""
    service = yaml.safe_load(COMPOSE.read_text())["services"][name]
    environment = {
        key: interpolate(value, variables) for key, value in service["environment"].items()
    }
    return service["command"], environment


@contextmanager
def running_worker(command: list[str], env: dict[str, str], log_path: Path) -> Iterator[int]:
    assert command[0] == "secretctl"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "secretctl"), *command[1:]],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log_path.read_text()  # it finishes its pass


@pytest.mark.postgres
def test_the_service_and_the_worker_as_compose_runs_them(
    tmp_path: Path, postgres_engine: Engine
) -> None:
    variables = compose_variables()
    serve_command, serve_environment = compose_service("secrets", variables)
    worker_command, worker_environment = compose_service("worker", variables)
    assert worker_environment == serve_environment  # one environment for both
    assert (serve_command, worker_command) == (["secretctl", "serve"], ["secretctl", "worker"])
    assert serve_environment["SECRETS_WORKER__EMBEDDED"] == "false"  # the worker service runs it

    database_url = postgres_engine.url.render_as_string(hide_password=False)
    with webhook_receiver() as receiver:
        # What the test cannot take from the file: the database (compose's host `postgres`), a
        # data directory and an address of this machine, and an identity provider (an HS256
        # shared key in place of the JWKS URL). The rest is the image's and the file's own.
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SECRETS_")},
            **dockerfile_environment(),
            **serve_environment,
            "SECRETS_DATABASE_URL": database_url,
            "SECRETS_DATA_DIR": str(tmp_path / "data"),
            "SECRETS_HOST": "127.0.0.1",
            "SECRETS_PORT": str(free_port()),
            "SECRETS_IDENTITY__JWT__SHARED_KEY_ENV": "TEST_JWT_KEY",
            "TEST_JWT_KEY": JWT_KEY,
            **fast_worker_with_webhook(receiver),
        }
        del environment["SECRETS_IDENTITY__JWT__JWKS_URL"]
        assert environment["SECRETS_MODE"] == "production"

        with running_server(environment, tmp_path, tuple(serve_command[1:])) as server:
            granted = subprocess.run(
                [str(BIN / "secretctl"), *GRANT_OPS],
                env=environment,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert granted.returncode == 0, granted.stderr
            api = Api(server.addr, ops_token(serve_environment))
            assert api.call("GET", "/status").json()["workers"] == []  # no embedded worker

            worker_log = tmp_path / "worker.log"
            with running_worker(worker_command, environment, worker_log) as worker_pid:
                see_rotation_and_webhook(
                    api, postgres_engine, receiver, lambda: server.output() + worker_log.read_text()
                )
                [worker] = api.call("GET", "/status").json()["workers"]
                assert worker["pid"] == worker_pid and worker["alive"]
            assert worker_rows(postgres_engine) == []


def ops_token(environment: dict[str, str]) -> str:
    now = int(time.time())
    claims = {
        "iss": environment["SECRETS_IDENTITY__JWT__ISSUER"],
        "aud": environment["SECRETS_IDENTITY__JWT__AUDIENCE"],
        "sub": "ops",
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, JWT_KEY, algorithm="HS256")


def test_compose_waits_for_the_server_before_starting_the_worker() -> None:
    """The server upgrades the database before it answers its health check: a worker started
    before that would find no tables."""
    worker = yaml.safe_load(COMPOSE.read_text())["services"]["worker"]
    assert worker["depends_on"] == {"secrets": {"condition": "service_healthy"}}
    assert "HEALTHCHECK" in (COMPOSE.parent / "Dockerfile").read_text()
