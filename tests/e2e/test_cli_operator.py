"""The operator's commands at the machine: run where there is no data they make nothing and
show no traceback; `init` makes the data when asked; `admin break-glass` lets an operator into a
production deployment that has no identity provider, and `serve` warns loudly when nobody could
get in."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner, Result
from werkzeug.serving import make_server

from entrypoints.cli import main
from entrypoints.commands.operator import no_way_in
from entrypoints.config import load_settings
from entrypoints.http.app import create_app
from tests.e2e.test_serve import free_port, running_server, serve_env

OPERATOR_COMMANDS = [
    ("admin", "grant", "--principal", "user:zoe", "--role", "admin"),
    ("admin", "break-glass"),
    ("keys", "list"),
    ("keys", "rotate"),
    ("keys", "rewrap"),
    ("audit", "verify", "--local"),
    ("audit", "prune", "--older-than", "400d"),
    ("migrate", "--from", "local", "--to", "local", "--dry-run"),
    ("worker", "--once"),
]


def operator(data_dir: Path, *args: str, **env: str) -> Result:
    environment = {"SECRETS_DATA_DIR": str(data_dir), **env}
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


@pytest.fixture(autouse=True)
def no_settings_of_the_caller(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [key for key in os.environ if key.startswith("SECRETS_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("command", OPERATOR_COMMANDS, ids=" ".join)
def test_outside_the_data_directory_nothing_is_made_and_no_traceback_shown(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    elsewhere = tmp_path / "not-a-data-dir"

    result = operator(elsewhere, *command)

    assert result.exit_code == 3, result.output  # not found
    assert result.stderr.splitlines() == [
        f"Error: no key file at {elsewhere / 'master.key'}: run this where the service's data "
        "is (SECRETS_DATA_DIR, --config), or make a new one with `secretctl init`"
    ]
    assert list(tmp_path.iterdir()) == []  # no data directory, key file or database


def test_a_key_without_a_database_or_a_database_without_schema_is_refused(
    tmp_path: Path,
) -> None:
    key = {"SECRETS_MASTER_KEY": "A" * 43 + "="}
    no_database = operator(tmp_path / "data", "keys", "list", **key)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secrets.db").touch()
    no_schema = operator(tmp_path / "data", "keys", "list", **key)

    assert no_database.exit_code == 3 and "no database at" in no_database.stderr
    assert no_schema.exit_code == 3 and "the database has no schema" in no_schema.stderr
    with sqlite3.connect(tmp_path / "data" / "secrets.db") as database:  # no table made
        assert database.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_a_database_that_cannot_be_reached_is_one_line_and_exit_7(tmp_path: Path) -> None:
    unreachable = f"postgresql://nobody:pw@127.0.0.1:{free_port()}/none"

    result = operator(
        tmp_path,
        "keys",
        "list",
        SECRETS_MASTER_KEY="A" * 43 + "=",
        SECRETS_DATABASE_URL=unreachable,
    )

    assert result.exit_code == 7, result.output
    assert len(result.stderr.splitlines()) == 1 and "the database cannot be used" in result.stderr
    assert "pw" not in result.stderr


def test_init_makes_the_data_and_the_operator_commands_then_work(tmp_path: Path) -> None:
    data = tmp_path / "data"

    made = operator(data, "init")
    again = operator(data, "init")
    listed = operator(data, "keys", "list", "-o", "json")
    granted = operator(data, "admin", "grant", "--principal", "user:zoe", "--role", "admin")

    assert made.exit_code == 0 and again.exit_code == 0, made.output + again.output
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "master.key").stat().st_mode) == 0o600
    assert listed.exit_code == 0 and '"state": "active"' in listed.stdout
    assert granted.exit_code == 0 and "granted admin at global/global" in granted.stdout


def test_the_operator_commands_print_data_in_each_format(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ready = json.loads(operator(data, "init", "--json").stdout)
    granted = json.loads(
        operator(
            data, "admin", "grant", "--principal", "group:sre", "--role", "auditor", "-o", "json"
        ).stdout
    )
    rotated = json.loads(operator(data, "keys", "rotate", "--json").stdout)
    keys = yaml.safe_load(operator(data, "keys", "list", "-o", "yaml").stdout)
    rewrapped = json.loads(operator(data, "keys", "rewrap", "-q", "--json").stdout)
    verified = operator(data, "audit", "verify", "--local", "-o", "env").stdout
    pruned = json.loads(operator(data, "audit", "prune", "--older-than", "400d", "--json").stdout)

    assert ready == {"data_dir": str(data.resolve()), "key_file": str(data / "master.key")}
    assert (granted["principal"], granted["role"], granted["scope"]) == (
        "group:sre",
        "auditor",
        {"type": "global", "id": "global"},
    )
    assert [key["state"] for key in keys if key["id"] == rotated["active_key"]] == ["active"]
    assert rewrapped["active_key"] == rotated["active_key"] and rewrapped["failed"] == []
    assert {"OK=true", "BROKEN=''"} <= set(verified.splitlines())
    assert pruned["pruned"] == 0


# -- production without an identity provider ----------------------------------------------------


@pytest.fixture
def production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialised production data directory with no identity provider configured."""
    data = tmp_path / "data"
    monkeypatch.setenv("SECRETS_MODE", "production")
    monkeypatch.setenv("SECRETS_DATA_DIR", str(data))
    assert operator(data, "init", SECRETS_MODE="production").exit_code == 0
    return data


@pytest.fixture
def served(production: Path) -> Iterator[str]:
    """The production app on that data, over real HTTP on loopback."""
    app = create_app(load_settings())
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}/api/v1"
    http.shutdown()
    thread.join(timeout=10)
    app.extensions["container"].shutdown_resources()


def test_break_glass_mints_a_short_lived_audited_admin_token(production: Path, served: str) -> None:
    assert no_way_in(load_settings()) is not None  # what `serve` would warn of
    glass = operator(production, "admin", "break-glass", "--ttl", "10m", SECRETS_MODE="production")
    assert glass.exit_code == 0, glass.output
    token = glass.stdout.strip().removeprefix("export SECRETS_TOKEN=")
    assert token.startswith("smt_") and token not in glass.stderr
    headers = {"Authorization": f"Bearer {token}"}

    me = requests.get(f"{served}/auth/whoami", headers=headers, timeout=5).json()
    bindings = requests.get(
        f"{served}/role-bindings", params={"principal": me["principal"]}, headers=headers, timeout=5
    ).json()["items"]
    events = requests.get(f"{served}/audit/events", headers=headers, timeout=5).json()["items"]

    assert me["principal"].startswith("service:break-glass-")
    assert [(b["role"], b["scope"]["type"]) for b in bindings] == [("admin", "global")]
    assert bindings[0]["expires_at"] is not None
    made_by_cli = {e["action"] for e in events if e["actor"].startswith("cli:")}
    assert {"service_account.create", "binding.create", "token.issue"} <= made_by_cli
    assert no_way_in(load_settings()) is None


def test_break_glass_lasts_an_hour_at_most(production: Path) -> None:
    refused = operator(production, "admin", "break-glass", "--ttl", "2h", SECRETS_MODE="production")
    assert refused.exit_code == 2 and "1h" in refused.stderr


def test_a_service_account_bound_first_can_then_be_created(production: Path, served: str) -> None:
    """The bootstrap path of docs/access.md: bind `service:bootstrap` at the machine, then make
    the account (once a 409: bindings already named it)."""
    granted = operator(
        production, "admin", "grant", "--principal", "service:bootstrap", "--role", "admin"
    )
    glass = operator(production, "admin", "break-glass", SECRETS_MODE="production")
    token = glass.stdout.strip().removeprefix("export SECRETS_TOKEN=")
    env = {"SECRETS_ADDR": served.removesuffix("/api/v1"), "SECRETS_TOKEN": token}

    made = CliRunner().invoke(
        main, ["service-account", "create", "bootstrap", "-o", "json"], env=env
    )
    issued = CliRunner().invoke(main, ["token", "create", "bootstrap", "-o", "json"], env=env)

    assert granted.exit_code == 0 and made.exit_code == 0, granted.output + made.output
    assert '"principal": "service:bootstrap"' in made.stdout
    assert issued.exit_code == 0 and '"token": "smt_' in issued.stdout


def test_serve_warns_when_production_has_no_way_in(tmp_path: Path, production: Path) -> None:
    env = serve_env(production, free_port(), SECRETS_MODE="production")
    env["SECRETS_WORKER__EMBEDDED"] = "false"
    with running_server(env, tmp_path) as server:
        output = server.output()
    assert "WARNING: production mode with no identity provider" in output
    assert "secretctl admin break-glass" in output
