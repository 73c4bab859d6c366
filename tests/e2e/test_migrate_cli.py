"""`secretctl migrate` at the machine (SQLite): the dry run's table, a job refused before
anything moves (exit 1), a run with its progress and summary table, resuming a finished job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from adapters.db.engine import create_engine_from_url
from adapters.db.tables import secrets, versions
from core.domain.values import ScopeRef, ScopeType, SecretValue
from core.secrets import NewSecret
from entrypoints.cli import OPERATOR, main
from entrypoints.config import load_settings
from entrypoints.container import Container

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ACME = ScopeRef(ScopeType.ORGANIZATION, "acme")
CANARY = "cli-migration-canary-2b7e"


def write_config(
    path: Path, database_url: str, data_dir: Path, backends: dict[str, Any], **settings: Any
) -> None:
    """A TOML configuration file (strings, numbers and booleans are written as in JSON)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    lines += [
        f"database_url = {json.dumps(database_url)}",
        f"data_dir = {json.dumps(str(data_dir))}",
        "[keys]",
        'provider = "file"',
        f"path = {json.dumps(str(data_dir / 'master.key'))}",
    ]
    for name, options in backends.items():
        lines.append(f"[backends.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    path.write_text("\n".join(lines) + "\n")


BACKENDS = {"local": {"plugin": "local"}, "spare": {"plugin": "local"}}


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "secrets.toml"
    write_config(path, database_url, tmp_path, BACKENDS)
    container = Container(settings=load_settings(config_file=str(path)))
    try:
        service, writes = container.secret_service(), container.write_service()
        for name in ("API_KEY", "lower_name"):
            draft = NewSecret(ACME, name, parent=ScopeRef.global_scope())
            secret = service.create_secret(OPERATOR, draft, SecretValue.from_text(CANARY))
            writes.write_value(OPERATOR, secret.id, SecretValue.from_text(CANARY + "-2"))
    finally:
        container.shutdown_resources()
    return path


def secretctl(config: Path, *args: str, **env: str) -> Result:
    environment = {"SECRETS_CONFIG": str(config), "COLUMNS": "200", **env}
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


def backends_of(database_url: str) -> dict[str, set[str]]:
    """Where each secret's versions live, by name."""
    engine = create_engine_from_url(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(secrets.c.name, versions.c.backend).join(
                    versions, versions.c.secret_id == secrets.c.id
                )
            ).all()
    finally:
        engine.dispose()
    found: dict[str, set[str]] = {}
    for name, backend in rows:
        found.setdefault(name, set()).add(backend)
    return found


def test_dry_run_then_run_then_resume_a_finished_job(config: Path, database_url: str) -> None:
    selector = ("--selector", "scope=organization:acme")
    dry = secretctl(config, "migrate", "--from", "local", "--to", "spare", "--dry-run", *selector)
    assert dry.exit_code == 0, dry.output
    assert "API_KEY" in dry.stdout and "lower_name" in dry.stdout
    assert "2 secrets, 2 versions would move" in dry.stdout
    assert backends_of(database_url) == {"API_KEY": {"local"}, "lower_name": {"local"}}

    run = secretctl(
        config, "migrate", "--from", "local", "--to", "spare", "--all-versions", *selector
    )
    assert run.exit_code == 0, run.output
    assert "succeeded" in run.stdout
    assert "migrating" not in run.stderr  # no progress bar off a terminal
    assert backends_of(database_url) == {"API_KEY": {"spare"}, "lower_name": {"spare"}}
    assert CANARY not in run.output

    job_id = run.stderr.split("migration ", 1)[1].split()[0]
    again = secretctl(config, "migrate", "--resume", job_id, "-o", "json")
    assert again.exit_code == 0, again.output
    job = json.loads(again.stdout)
    assert (job["id"], job["state"], job["done"], job["failed"]) == (job_id, "succeeded", 2, 0)


def test_progress_shows_at_a_terminal_unless_quiet(config: Path) -> None:
    selector = ("--selector", "scope=organization:acme")
    at_terminal = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}  # as rich sees a terminal
    shown = secretctl(
        config, "migrate", "--from", "local", "--to", "spare", *selector, **at_terminal
    )
    quiet = secretctl(
        config, "migrate", "--from", "spare", "--to", "local", "-q", *selector, **at_terminal
    )

    assert shown.exit_code == 0 and quiet.exit_code == 0, shown.output + quiet.output
    assert "migrating" in shown.stderr and "migrating" not in quiet.stderr


def test_a_dry_run_as_json_lists_what_would_move(config: Path) -> None:
    dry = secretctl(config, "migrate", "--from", "local", "--to", "spare", "--dry-run", "--json")

    plan = json.loads(dry.stdout)
    assert sorted(item["name"] for item in plan["secrets"]) == ["API_KEY", "lower_name"]
    assert (plan["from"], plan["to"], plan["versions"], plan["misfits"]) == (
        "local",
        "spare",
        2,
        [],
    )


def test_a_secret_that_does_not_fit_refuses_the_job_and_exits_1(
    config: Path, database_url: str, tmp_path: Path
) -> None:
    write_config(config, database_url, tmp_path, BACKENDS, name_pattern="^[A-Z_]+$")

    run = secretctl(config, "migrate", "--from", "local", "--to", "spare")

    assert run.exit_code == 1, run.output
    assert "refused" in run.stdout and "does not fit the target" in run.stdout
    assert "lower_name" in run.stdout and "invalid secret name" in run.stdout
    assert backends_of(database_url) == {"API_KEY": {"local"}, "lower_name": {"local"}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "local"), "--from A --to B"),
        (("--from", "local", "--to", "spare", "--selector", "colour=red"), "scope=TYPE:ID"),
        (("--resume", "not-a-uuid"), "a migration's id"),
        (("--from", "local", "--to", "nowhere"), "unknown backend 'nowhere'"),
    ],
)
def test_bad_invocations_say_what_is_wrong(
    config: Path, args: tuple[str, ...], message: str
) -> None:
    result = secretctl(config, "migrate", *args)
    assert result.exit_code != 0
    assert message in result.output
