"""List-valued settings from the environment, through the whole app and through real `secretctl
serve` / `worker` processes: `SECRETS_AUDIT__SINKS=stdout` mirrors events to standard output,
`SECRETS_IDENTITY__JWT__ALGORITHMS=HS256` lets HS256 tokens in, and a bad setting stops the
start with one line naming its key (a non-zero exit, no traceback) instead of answering 500 or
401."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import jwt
import pytest
import requests

from adapters.db.engine import create_engine_from_url
from adapters.db.migrate import upgrade
from adapters.keys import FileKeyProvider
from core.domain.errors import ConfigurationError
from entrypoints.config import load_settings
from entrypoints.container import Container
from entrypoints.http.app import create_app
from tests.e2e.test_attacks_ops_serve import serve
from tests.e2e.test_serve import BIN, free_port, running_server, serve_env

ISSUER, AUDIENCE = "https://idp.test", "secret-management"
IDP_KEY = "a-shared-hmac-key-for-the-environment-test-0123456789abcdefghijk"
ROOT = "config-env-root-token-0123456789"
FROM_ENVIRONMENT = {
    "SECRETS_AUDIT__SINKS": "stdout",
    "SECRETS_IDENTITY__JWT__ISSUER": ISSUER,
    "SECRETS_IDENTITY__JWT__AUDIENCE": AUDIENCE,
    "SECRETS_IDENTITY__JWT__SHARED_KEY_ENV": "IDP_KEY",
    "SECRETS_IDENTITY__JWT__ALGORITHMS": "HS256",
    "IDP_KEY": IDP_KEY,
}


def user_token(subject: str = "alice") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 300}
    return jwt.encode(claims, IDP_KEY, algorithm="HS256")


def audit_lines(output: str) -> list[dict]:
    """The audit events a sink wrote among other output: JSON objects with their hash."""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if {"action", "hash"} <= set(line)]


def existing_data(data_dir: Path) -> None:
    """A data directory as a first start leaves it: a key file and a migrated SQLite file."""
    FileKeyProvider(data_dir / "master.key", create=True)
    engine = create_engine_from_url(f"sqlite:///{data_dir / 'secrets.db'}")
    upgrade(engine)
    engine.dispose()


def test_settings_from_the_environment_serve_requests(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {
        **FROM_ENVIRONMENT,
        "SECRETS_DATA_DIR": str(tmp_path),
        "SECRETS_DATABASE_URL": database_url,
        "SECRETS_DEV_ROOT_TOKEN": ROOT,
    }
    settings = load_settings(environ)
    container = Container(settings=settings)
    container.environ.override(environ)
    app = create_app(settings, container)
    try:
        client = app.test_client()
        body = {"type": "organization", "id": "acme", "parent": {"type": "global", "id": "global"}}
        made = client.post("/api/v1/scopes", json=body, headers={"Authorization": f"Bearer {ROOT}"})
        assert made.status_code == 201, made.get_json()
        listed = client.get("/api/v1/secrets", headers={"Authorization": f"Bearer {user_token()}"})
        assert listed.status_code == 200, listed.get_json()
    finally:
        container.shutdown_resources()
    actions = [line["action"] for line in audit_lines(capsys.readouterr().out)]
    assert "scope.create" in actions, actions


def test_create_app_with_a_bad_setting_raises_instead_of_serving(
    database_url: str, tmp_path: Path
) -> None:
    environ = {
        **FROM_ENVIRONMENT,
        "SECRETS_AUDIT__SINKS": "stdout,syslog",
        "SECRETS_DATA_DIR": str(tmp_path),
        "SECRETS_DATABASE_URL": database_url,
    }
    settings = load_settings(environ)  # the sink's name is checked against the plugins
    container = Container(settings=settings)
    container.environ.override(environ)
    with pytest.raises(ConfigurationError, match="unknown sink 'syslog'") as caught:
        create_app(settings, container)
    assert "configuration key 'audit.sinks'" in caught.value.message


def test_secretctl_serve_with_settings_from_the_environment(tmp_path: Path) -> None:
    env = serve_env(tmp_path / "data", free_port(), **FROM_ENVIRONMENT)
    with running_server(env, tmp_path) as server:
        api = f"{server.addr}/api/v1"
        body = {"type": "organization", "id": "acme", "parent": {"type": "global", "id": "global"}}
        root = {"Authorization": f"Bearer {server.token}"}
        assert (
            requests.post(f"{api}/scopes", json=body, headers=root, timeout=30).status_code == 201
        )
        user = {"Authorization": f"Bearer {user_token()}"}
        assert requests.get(f"{api}/secrets", headers=user, timeout=30).status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            actions = [line["action"] for line in audit_lines(server.output())]
            if "scope.create" in actions:
                break
            time.sleep(0.1)
        assert "scope.create" in actions, server.output()


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ({"SECRETS_AUDIT__SINKS": "stdout,syslog"}, "audit.sinks"),
        ({"SECRETS_IDENTITY__JWT__ALGORITHMS": "HS257"}, "identity.jwt.algorithms[0]"),
        ({"SECRETS_IDENTITY__JWT__LEEWAY_SECONDS": "soon"}, "identity.jwt.leeway_seconds"),
    ],
)
def test_secretctl_serve_and_worker_refuse_a_bad_setting_in_one_line(
    tmp_path: Path, setting: dict[str, str], key: str
) -> None:
    env = serve_env(tmp_path / "data", free_port(), **(FROM_ENVIRONMENT | setting))
    served = serve(env, tmp_path)
    assert not (tmp_path / "data" / "master.key").exists()  # refused before making anything
    existing_data(tmp_path / "data")  # the worker runs where the service's data is
    worked = subprocess.run(
        [str(BIN / "secretctl"), "worker", "--once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    [line] = served.stderr.strip().splitlines()  # serve: that line and nothing else
    assert line.startswith(f"Error: configuration key '{key}'"), line
    for result in (served, worked):
        assert result.returncode != 0, result.stdout + result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and f"configuration key '{key}'" in errors[0], result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert IDP_KEY not in result.stdout + result.stderr


def test_secretctl_serve_refuses_a_data_dir_it_cannot_make_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    served = serve(serve_env(tmp_path / "a-file" / "data", free_port()), tmp_path)
    assert served.returncode == 1
    [line] = served.stderr.strip().splitlines()
    assert line.startswith("Error: configuration key 'data_dir': cannot make"), line
