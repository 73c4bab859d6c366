"""The operator's commands at the machine: they open the service's database and keys directly
(no server, no token) and act as `cli` in the audit trail.

None of them makes anything it does not find: run outside the data directory (or with another
configuration), they say what is missing and exit 3, where they once made a new master key and
an empty database. `secretctl init` makes them when asked; `secretctl serve` in the embedded
default still does on its first start. No error shows a traceback: each is one line and the
exit code of `entrypoints.commands.exits`.
"""

from __future__ import annotations

import getpass
import os
import secrets as token_source
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from core.domain.errors import ConfigurationError, ServiceError
from core.domain.values import Principal, ScopeRef, ScopeType
from entrypoints.commands.access import ROLES
from entrypoints.commands.exits import CommandError, ExitCode, exit_code_for_status
from entrypoints.commands.output import Output, field, output_options, progress_bar
from entrypoints.commands.references import parse_scope
from entrypoints.commands.times import parse_duration

if TYPE_CHECKING:  # the client commands start without the service's own modules
    from entrypoints.config import Settings

OPERATOR = Principal(id="cli", kind="root", is_root=True)
KEY_ENV = "SECRETS_MASTER_KEY"
DEFAULT_KEY_FILE = "master.key"
BREAK_GLASS_LONGEST = timedelta(hours=1)


def settings_of(ctx: click.Context, **overrides: Any) -> Settings:
    from entrypoints.config import load_settings

    try:
        settings = load_settings(config_file=ctx.obj["config_file"])
    except ConfigurationError as error:
        raise CommandError(error.message, ExitCode.INVALID) from None
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def key_file(settings: Settings) -> Path | None:
    """The key file the settings' key provider reads, if it reads one (`auto` without
    SECRETS_MASTER_KEY, or `file`)."""
    provider = settings.keys.get("provider", "auto")
    if provider == "file" or (provider == "auto" and KEY_ENV not in os.environ):
        return Path(settings.keys.get("path") or settings.data_dir / DEFAULT_KEY_FILE)
    return None


def sqlite_file(settings: Settings) -> Path | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return None  # the engine says what is wrong with it
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def setup_problem(settings: Settings) -> str | None:
    """What is missing for the operator's commands to work on this data, or None: a key file,
    a SQLite file, a schema. Nothing is created while looking."""
    key = key_file(settings)
    if key is not None and not key.exists():
        return f"no key file at {key}"
    database = sqlite_file(settings)
    if database is not None and not database.exists():
        return f"no database at {database}"
    from adapters.db.engine import create_engine_from_url
    from adapters.db.migrate import current_revision

    engine = create_engine_from_url(settings.database_url)
    try:
        if current_revision(engine) is None:
            return "the database has no schema"
    finally:
        engine.dispose()
    return None


def require_setup(settings: Settings) -> None:
    with database_errors():
        problem = setup_problem(settings)
    if problem is not None:
        raise CommandError(
            f"{problem}: run this where the service's data is (SECRETS_DATA_DIR, --config), "
            "or make a new one with `secretctl init`",
            ExitCode.NOT_FOUND,
        )


@contextmanager
def database_errors() -> Iterator[None]:
    """A database that cannot be reached is one line and exit 7, never a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as error:
        cause = str(getattr(error, "orig", None) or type(error).__name__).strip()
        first = cause.splitlines()[0] if cause else type(error).__name__
        raise CommandError(f"the database cannot be used: {first}", ExitCode.UNAVAILABLE) from None


@contextmanager
def operator_container(ctx: click.Context, *, setup: bool = False) -> Iterator[Any]:
    """The service's container for a command at the machine. Unless `setup` (init), the data
    must exist already (see `setup_problem`)."""
    from entrypoints.container import Container

    settings = settings_of(ctx)
    if not setup:
        require_setup(settings)
    container = Container(settings=settings)
    try:
        with database_errors():
            yield container
    except ServiceError as error:
        raise CommandError(f"{error.code}: {error.message}", exit_code_of(error)) from None
    finally:
        container.shutdown_resources()


def exit_code_of(error: ServiceError) -> ExitCode:
    """The exit code of the status the API answers for this error."""
    if isinstance(error, ConfigurationError):
        return ExitCode.INVALID
    from entrypoints.http.errors import status_of

    return exit_code_for_status(status_of(error))


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@click.command()
@output_options
@click.pass_context
def init(ctx: click.Context, out: Output) -> None:
    """Make the service's data: the data directory (0700), the key file (0600, unless the key
    comes from SECRETS_MASTER_KEY), the database and its schema. Safe to run again.

    \b
      secretctl init                       # ./.secrets-data, as `secretctl serve` would
      SECRETS_DATA_DIR=/srv/secrets secretctl init
    """
    from adapters.keys import FileKeyProvider
    from entrypoints.server import prepare

    settings = settings_of(ctx)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = key_file(settings)
    try:
        if key is not None:
            FileKeyProvider(key, create=True)  # production never makes one unasked: this asks
        with database_errors():
            prepare(settings, migrate=True)
    except ServiceError as error:
        raise CommandError(f"{error.code}: {error.message}", exit_code_of(error)) from None
    ready = {"data_dir": str(settings.data_dir.resolve()), "key_file": str(key) if key else None}
    out.result(ready, f"ready: data in {ready['data_dir']}" + (f", key file {key}" if key else ""))


@click.group()
def admin() -> None:
    """Operator commands that work on the database directly (no server, no token)."""


@admin.command("grant")
@click.option("--principal", required=True, help="user:<id>, group:<id> or service:<name>")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option(
    "--scope", "scope_text", default="global", show_default=True, help="global or TYPE:ID"
)
@output_options
@click.pass_context
def admin_grant(
    ctx: click.Context, out: Output, principal: str, role: str, scope_text: str
) -> None:
    """Grant a role directly: how the first admin of a production deployment is made.

    \b
      secretctl admin grant --principal user:alice --role admin
      secretctl admin grant --principal group:sre --role auditor --scope organization:acme
    """
    from core.bindings import NewBinding
    from core.domain.access import Role

    scope = parse_scope(scope_text)
    with operator_container(ctx) as container:
        binding = container.binding_service().create(
            OPERATOR, NewBinding(principal, Role(role), scope_ref(scope.type, scope.id))
        )
    granted = {
        "id": str(binding.id),
        "principal": binding.principal,
        "role": binding.role.value,
        "scope": {"type": binding.scope.type.value, "id": binding.scope.id},
    }
    out.result(granted, f"granted {binding.role.value} at {binding.scope} to {binding.principal}")


def scope_ref(kind: str, scope_id: str) -> ScopeRef:
    try:
        return ScopeRef(ScopeType(kind), scope_id)
    except ValueError:
        raise click.BadParameter(f"unknown scope type '{kind}'", param_hint="--scope") from None


@admin.command("break-glass")
@click.option("--ttl", default="15m", show_default=True, help="How long it works: 1h at most.")
@output_options
@click.pass_context
def admin_break_glass(ctx: click.Context, out: Output, ttl: str) -> None:
    """Mint an admin token at the machine, for when nobody can get in (production without an
    identity provider, or one that is down).

    It makes a new service account `service:break-glass-…` at the global scope, binds it admin
    there until the token expires, and issues one API token with the same expiry (15 minutes by
    default, an hour at most), printed once. Each step is in the audit trail under
    `cli:<your OS user>`. Make the accounts and bindings you need with it, then let it expire
    (or `secretctl service-account delete` it).

    \b
      eval "$(secretctl admin break-glass --ttl 30m)"    # sets SECRETS_TOKEN
      secretctl service-account create deployer --scope global
    """
    from core.bindings import NewBinding
    from core.domain.access import Role

    lifetime = parse_duration(ttl, "--ttl")
    if not timedelta(0) < lifetime <= BREAK_GLASS_LONGEST:
        raise click.BadParameter("between 1s and 1h", param_hint="--ttl")
    user = os_user()
    actor = Principal(id=f"cli:{user}", kind="root", is_root=True)
    everywhere = ScopeRef.global_scope()
    with operator_container(ctx) as container:
        expires = container.clock().now() + lifetime
        name = f"break-glass-{expires:%Y%m%d%H%M%S}-{token_source.token_hex(3)}"
        accounts = container.service_account_service()
        account = accounts.create(
            actor, name, everywhere, f"break-glass access made by {user} at the machine"
        )
        container.binding_service().create(
            actor, NewBinding(account.principal, Role.ADMIN, everywhere, expires_at=expires)
        )
        _, token = accounts.issue_token(
            actor, account.id, description="break-glass", expires_at=expires
        )
    if not out.for_people:
        out.record(
            {"principal": account.principal, "expires_at": expires.isoformat(), "token": token}
        )
        return
    click.echo(
        f"{account.principal}: admin at global until {expires.isoformat()} (shown once)", err=True
    )
    click.echo(f"export SECRETS_TOKEN={token}")


def no_way_in(settings: Settings) -> str | None:
    """A production deployment nobody can sign in to, said loudly at start; None otherwise."""
    if not settings.production or settings.identity.get("jwt"):
        return None
    from adapters.clock import SystemClock
    from adapters.db.engine import create_engine_from_url
    from adapters.db.ways_in import usable_api_tokens

    engine = create_engine_from_url(settings.database_url)
    try:
        with database_errors():
            if usable_api_tokens(engine, SystemClock().now()):
                return None
    finally:
        engine.dispose()
    return (
        "WARNING: production mode with no identity provider ([identity.jwt]) and no API token "
        "that works: nobody can sign in. Get in at the machine with `secretctl admin "
        "break-glass`, then create service accounts and their tokens."
    )


@click.group()
def keys() -> None:
    """Key-encryption keys, on the database directly (the operator at the machine)."""


@keys.command("list")
@output_options
@click.pass_context
def keys_list(ctx: click.Context, out: Output) -> None:
    """Each key version: its id, provider, state and how many stored values it wraps.

    \b
      secretctl keys list -o json
    """
    with operator_container(ctx) as container:
        usages = container.key_service().usage(OPERATOR)
    rows = [
        {
            "id": usage.id,
            "provider": usage.provider,
            "state": usage.state.value if usage.state else "unrecorded",
            "blobs": usage.blobs,
        }
        for usage in usages
    ]
    columns = [(name, field(name)) for name in ("id", "provider", "state", "blobs")]
    out.items(rows, columns, env=lambda row: (f"key_{row['id']}", row["state"]))


@keys.command("rotate")
@output_options
@click.pass_context
def keys_rotate(ctx: click.Context, out: Output) -> None:
    """Make a new active key version (key file provider); then run `keys rewrap`.

    \b
      secretctl keys rotate && secretctl keys rewrap
    """
    with operator_container(ctx) as container:
        key = container.key_service().rotate(OPERATOR)
    out.result({"active_key": key.id}, f"new active key {key.id}; now run: secretctl keys rewrap")


@keys.command("rewrap")
@click.option("--batch-size", type=int, default=500, show_default=True, help="Per transaction.")
@click.option("--limit", type=int, help="Stop after about this many values (resume later).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@output_options
@click.pass_context
def keys_rewrap(
    ctx: click.Context, out: Output, batch_size: int, limit: int | None, quiet: bool
) -> None:
    """Re-wrap every value's data key under the active key, without decrypting any value.

    Resumable and safe to run in parallel; exits 1 when a value's data key did not unwrap. A
    progress bar shows on standard error at a terminal, unless -q.

    \b
      secretctl keys rewrap --batch-size 1000
      secretctl keys rewrap --limit 50000 -q      # a slice now, the rest later
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn

    with operator_container(ctx) as container:
        service = container.key_service()
        total = service.outdated(OPERATOR)
        if limit is not None:
            total = min(total, limit)
        columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with progress_bar(columns, quiet) as progress:
            task = progress.add_task("re-wrap", total=total)
            report = service.rewrap(
                OPERATOR,
                batch_size=batch_size,
                limit=limit,
                on_batch=lambda done: progress.update(task, completed=done.rewrapped + done.failed),
            )
    for failed in report.failed:
        click.echo(f"failed\t{failed.id}\t{failed.key_id}\t{failed.problem}", err=True)
    retired = f"; retired {', '.join(report.retired)}" if report.retired else ""
    summary = {
        "active_key": report.active_key,
        "rewrapped": report.rewrapped,
        "batches": report.batches,
        "failed": [
            {"id": str(failed.id), "key_id": failed.key_id, "problem": failed.problem}
            for failed in report.failed
        ],
        "remaining": report.remaining,
        "retired": list(report.retired),
    }
    out.result(
        summary,
        f"re-wrapped {report.rewrapped} values under {report.active_key} in {report.batches} "
        f"batches; {len(report.failed)} failed; {report.remaining} left under other keys{retired}",
    )
    if report.failed:
        sys.exit(int(ExitCode.FAILED))


OPERATOR_COMMANDS = (init, admin, keys)
