"""The SQL repositories and unit of work on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from adapters.db.engine import create_engine_from_url
from adapters.db.uow import SqlUnitOfWork
from core.domain.access import AccessQuery, Role
from core.domain.errors import Conflict, NotFound, PreconditionFailed
from core.domain.paging import PageRequest
from core.domain.scopes import Scope
from core.domain.secrets import Secret, SecretFilter, SecretVersion, VersionState
from core.domain.values import ScopeRef, ScopeType

NOW = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
GLOBAL = ScopeRef.global_scope()
GLOBAL_PATH = "/1/"  # the migrations' global scope is the first row
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
TEAM = ScopeRef(ScopeType.TEAM, "t-7")
# What the development root may see: every shared scope. Access rules have their own tests.
EVERYTHING = AccessQuery(
    identities=("root",), roles=frozenset(Role), now=NOW, unrestricted=True, user_id=None
)


def make_secret(
    name: str = "OPENAI_API_KEY", scope: ScopeRef = GLOBAL, scope_path: str = GLOBAL_PATH, **fields
) -> Secret:
    return Secret(
        id=uuid.uuid4(),
        scope=scope,
        scope_path=scope_path,
        name=name,
        backend="local",
        created_at=NOW,
        created_by="user:alice",
        current_version=1,
        **fields,
    )


def make_version(secret: Secret, number: int, **fields) -> SecretVersion:
    return SecretVersion(
        secret_id=secret.id,
        version=number,
        backend="local",
        locator=f"loc-{number}",
        checksum=f"hmac-sha256:{number:064x}",
        created_at=NOW + timedelta(minutes=number),
        created_by="user:alice",
        **fields,
    )


def add_scopes(engine: Engine, *refs: ScopeRef) -> dict[ScopeRef, Scope]:
    """Register scopes right below the global one (the repository does not check types)."""
    with SqlUnitOfWork(engine) as uow:
        root = uow.scopes.get(GLOBAL)
        added = {ref: uow.scopes.add(ref, root) for ref in refs}
        uow.commit()
    return added


def add_secrets(engine: Engine, *secrets: Secret) -> None:
    with SqlUnitOfWork(engine) as uow:
        for secret in secrets:
            uow.secrets.add(secret)
        uow.commit()


def test_a_fresh_database_holds_only_the_global_scope(engine):
    with SqlUnitOfWork(engine) as uow:
        root = uow.scopes.get(GLOBAL)
        assert root is not None and root.parent_pk is None
        assert (root.path, root.ref) == (GLOBAL_PATH, GLOBAL)
        assert uow.secrets.search(SecretFilter(), PageRequest(), EVERYTHING).total == 0
        assert uow.secrets.search(SecretFilter(deleted=True), PageRequest(), EVERYTHING).total == 0


# -- scopes --------------------------------------------------------------------------------


def test_scopes_are_added_under_a_parent_and_found_by_reference(engine):
    add_scopes(engine, TEAM)
    with SqlUnitOfWork(engine) as uow:
        team = uow.scopes.get(TEAM)
        project = uow.scopes.add(PROJECT, team)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.scopes.get(PROJECT) == project
        assert project.parent_pk == team.pk
        assert project.path == f"{team.path}{project.pk}/"
        assert team.path == f"{GLOBAL_PATH}{team.pk}/"
        assert project.created_at is not None and project.created_at.tzinfo is not None
        assert uow.scopes.get(ScopeRef(ScopeType.PROJECT, "p-unknown")) is None


def test_adding_an_existing_scope_is_a_conflict(engine):
    add_scopes(engine, PROJECT)
    with SqlUnitOfWork(engine) as uow, pytest.raises(Conflict, match="project/p-42"):
        uow.scopes.add(PROJECT, None)


# -- secrets -------------------------------------------------------------------------------


def test_a_secret_round_trips_every_field(engine):
    project = add_scopes(engine, PROJECT)[PROJECT]
    secret = make_secret(
        scope=PROJECT,
        scope_path=project.path,
        environment="production",
        type="api_key",
        description="the key of the summariser",
        tags={"team": "ml", "cost.center/id": "42"},
        consumer="llm_model",
        expires_at=NOW + timedelta(days=90),
        not_before=NOW - timedelta(days=1),
        max_versions=10,
        revision=3,
    )
    add_secrets(engine, secret)
    with SqlUnitOfWork(engine) as uow:
        assert uow.secrets.get(secret.id) == secret
        assert uow.secrets.get(uuid.uuid4()) is None


def test_datetimes_come_back_aware_and_in_utc(engine):
    paris = timezone(timedelta(hours=2))
    secret = make_secret(expires_at=datetime(2025, 6, 1, 14, 0, tzinfo=paris))
    add_secrets(engine, secret)
    with SqlUnitOfWork(engine) as uow:
        stored = uow.secrets.get(secret.id)
    assert stored.expires_at == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert stored.expires_at.utcoffset() == timedelta(0)
    assert stored.created_at == NOW and stored.created_at.tzinfo is not None


def test_get_by_name_tells_environments_apart(engine):
    shared = make_secret("DB_URL")
    production = make_secret("DB_URL", environment="production")
    add_secrets(engine, shared, production)
    with SqlUnitOfWork(engine) as uow:
        assert uow.secrets.get_by_name(GLOBAL, None, "DB_URL").id == shared.id
        assert uow.secrets.get_by_name(GLOBAL, "production", "DB_URL").id == production.id
        assert uow.secrets.get_by_name(GLOBAL, "staging", "DB_URL") is None
        assert uow.secrets.get_by_name(PROJECT, None, "DB_URL") is None


def test_a_name_is_unique_per_scope_and_environment(engine):
    add_scopes(engine, PROJECT)
    add_secrets(engine, make_secret("TOKEN"), make_secret("TOKEN", environment="staging"))
    add_secrets(engine, make_secret("TOKEN", scope=PROJECT))
    with SqlUnitOfWork(engine) as uow:
        assert {
            s.scope_path
            for s in uow.secrets.search(SecretFilter(), PageRequest(), EVERYTHING).items
        } == {GLOBAL_PATH, uow.scopes.get(PROJECT).path}
    for environment in (None, "staging"):
        with SqlUnitOfWork(engine) as uow:
            duplicate = make_secret("TOKEN", environment=environment)
            with pytest.raises(Conflict, match=r"'TOKEN'.* in scope global/global already exists"):
                uow.secrets.add(duplicate)


def test_a_soft_deleted_secret_keeps_its_name_reserved(engine):
    add_secrets(engine, make_secret("TOKEN", deleted_at=NOW, purge_after=NOW))
    with SqlUnitOfWork(engine) as uow, pytest.raises(Conflict):
        uow.secrets.add(make_secret("TOKEN"))


def test_a_secret_in_an_unknown_scope_is_refused(engine):
    with SqlUnitOfWork(engine) as uow, pytest.raises(NotFound, match="project/p-42"):
        uow.secrets.add(make_secret(scope=PROJECT))


def test_update_saves_every_mutable_field(engine):
    secret = make_secret()
    add_secrets(engine, secret)
    changed = replace(
        secret,
        description="rotated",
        tags={"owner": "bob"},
        consumer="cicd",
        backend="vault",
        current_version=2,
        expires_at=NOW + timedelta(days=1),
        not_before=NOW,
        max_versions=5,
        updated_at=NOW + timedelta(hours=1),
        updated_by="user:bob",
        deleted_at=NOW + timedelta(hours=2),
        purge_after=NOW + timedelta(days=30),
        revision=2,
    )
    with SqlUnitOfWork(engine) as uow:
        uow.secrets.update(changed, expected_revision=1)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.secrets.get(secret.id) == changed


def test_update_with_a_stale_revision_fails_and_reports_the_current_one(engine):
    secret = make_secret()
    add_secrets(engine, secret)
    with SqlUnitOfWork(engine) as first, SqlUnitOfWork(engine) as second:
        mine = first.secrets.get(secret.id)
        theirs = second.secrets.get(secret.id)
        first.secrets.update(replace(mine, description="mine", revision=2), expected_revision=1)
        first.commit()
        with pytest.raises(PreconditionFailed) as failure:
            second.secrets.update(
                replace(theirs, description="theirs", revision=2), expected_revision=1
            )
    assert failure.value.details == {"revision": 2}
    with SqlUnitOfWork(engine) as uow:
        assert uow.secrets.get(secret.id).description == "mine"


def test_update_of_a_missing_secret_fails_without_a_revision(engine):
    with SqlUnitOfWork(engine) as uow, pytest.raises(PreconditionFailed) as failure:
        uow.secrets.update(make_secret(revision=2), expected_revision=1)
    assert failure.value.details == {}


def test_concurrent_check_and_set_writers_never_lose_an_update(engine):
    secret = make_secret()
    add_secrets(engine, secret)
    writers, increments = 4, 5

    def increment() -> None:
        done = 0
        while done < increments:
            with SqlUnitOfWork(engine) as uow:
                current = uow.secrets.get(secret.id)
                try:
                    uow.secrets.update(
                        replace(
                            current,
                            current_version=current.current_version + 1,
                            revision=current.revision + 1,
                        ),
                        expected_revision=current.revision,
                    )
                except PreconditionFailed:
                    continue
                uow.commit()
                done += 1

    threads = [threading.Thread(target=increment) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with SqlUnitOfWork(engine) as uow:
        stored = uow.secrets.get(secret.id)
    assert stored.revision == 1 + writers * increments
    assert stored.current_version == 1 + writers * increments


def test_delete_removes_the_secret_and_its_versions(engine):
    kept, purged = make_secret("KEPT"), make_secret("PURGED")
    add_secrets(engine, kept, purged)
    with SqlUnitOfWork(engine) as uow:
        for secret in (kept, purged):
            uow.secrets.add_version(make_version(secret, 1))
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        uow.secrets.delete(purged.id)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.secrets.get(purged.id) is None
        assert uow.secrets.list_versions(purged.id) == []
        assert [v.version for v in uow.secrets.list_versions(kept.id)] == [1]


# -- listing -------------------------------------------------------------------------------


@pytest.fixture
def catalogue(engine) -> dict[str, Secret]:
    """A spread of secrets over scopes, environments, types and tags."""
    add_scopes(engine, PROJECT, TEAM)
    secrets = {
        "global": make_secret("SENTRY_DSN", tags={"team": "ops"}),
        "team": make_secret("GITHUB_TOKEN", scope=TEAM, type="api_key", tags={"team": "ml"}),
        "project-prod": make_secret(
            "DB_URL",
            scope=PROJECT,
            environment="production",
            type="connection_string",
            tags={"team": "ml", "tier": "gold"},
        ),
        "project-staging": make_secret(
            "DB_URL",
            scope=PROJECT,
            environment="staging",
            type="connection_string",
            tags={"team": "ml", "tier": "silver"},
        ),
        "project-any": make_secret("DB_POOL", scope=PROJECT, tags={"team": "ml"}),
        "deleted": make_secret("DB_OLD", scope=PROJECT, deleted_at=NOW, purge_after=NOW),
    }
    add_secrets(engine, *secrets.values())
    return secrets


def listed(engine, criteria: SecretFilter, page: PageRequest | None = None) -> list[str]:
    with SqlUnitOfWork(engine) as uow:
        result = uow.secrets.search(criteria, page or PageRequest(), EVERYTHING)
    return [f"{s.scope}:{s.name}:{s.environment or '*'}" for s in result.items]


def test_list_orders_live_secrets_by_scope_name_and_environment(engine, catalogue):
    assert listed(engine, SecretFilter()) == [
        "global/global:SENTRY_DSN:*",
        "project/p-42:DB_POOL:*",
        "project/p-42:DB_URL:production",
        "project/p-42:DB_URL:staging",
        "team/t-7:GITHUB_TOKEN:*",
    ]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (SecretFilter(scope=TEAM), ["team/t-7:GITHUB_TOKEN:*"]),
        (SecretFilter(scope_type="global"), ["global/global:SENTRY_DSN:*"]),
        (SecretFilter(environment="staging"), ["project/p-42:DB_URL:staging"]),
        (SecretFilter(type="api_key"), ["team/t-7:GITHUB_TOKEN:*"]),
        (SecretFilter(tags={"team": "ops"}), ["global/global:SENTRY_DSN:*"]),
        (
            SecretFilter(tags={"team": "ml", "tier": "gold"}),
            ["project/p-42:DB_URL:production"],
        ),
        (SecretFilter(tags={"team": "ml", "tier": "bronze"}), []),
        (SecretFilter(tags={"missing": "x"}), []),
        (
            SecretFilter(prefix="DB_"),
            [
                "project/p-42:DB_POOL:*",
                "project/p-42:DB_URL:production",
                "project/p-42:DB_URL:staging",
            ],
        ),
        (SecretFilter(deleted=True), ["project/p-42:DB_OLD:*"]),
        (
            SecretFilter(scope=PROJECT, type="connection_string", tags={"team": "ml"}),
            ["project/p-42:DB_URL:production", "project/p-42:DB_URL:staging"],
        ),
    ],
)
def test_list_filters(engine, catalogue, criteria, expected):
    assert listed(engine, criteria) == expected


def test_prefix_is_literal_and_case_sensitive(engine):
    add_secrets(engine, make_secret("DB_URL"), make_secret("db_url"), make_secret("DBX_%"))
    for prefix, expected in [("DB_", {"DB_URL"}), ("db", {"db_url"}), ("DBX_%", {"DBX_%"})]:
        with SqlUnitOfWork(engine) as uow:
            page = uow.secrets.search(SecretFilter(prefix=prefix), PageRequest(), EVERYTHING)
        assert {secret.name for secret in page.items} == expected


def test_list_paginates_and_counts_every_match(engine, catalogue):
    pages = []
    for number in (1, 2, 3):
        with SqlUnitOfWork(engine) as uow:
            page = uow.secrets.search(
                SecretFilter(), PageRequest(page=number, page_size=3), EVERYTHING
            )
        assert (page.total, page.page, page.page_size) == (5, number, 3)
        pages.append([s.name for s in page.items])
    assert [len(names) for names in pages] == [3, 2, 0]
    every_name = [name for names in pages for name in names]
    assert every_name == [entry.split(":")[1] for entry in listed(engine, SecretFilter())]


def test_a_page_past_the_end_is_empty_but_still_counts(engine, catalogue):
    with SqlUnitOfWork(engine) as uow:
        page = uow.secrets.search(
            SecretFilter(scope=PROJECT), PageRequest(page=9, page_size=10), EVERYTHING
        )
    assert page.items == [] and page.total == 3


# -- versions ------------------------------------------------------------------------------


def test_versions_round_trip_oldest_first(engine):
    secret = make_secret()
    add_secrets(engine, secret)
    second = make_version(secret, 2, state=VersionState.DISABLED, expires_at=NOW)
    first = make_version(secret, 1)
    with SqlUnitOfWork(engine) as uow:
        uow.secrets.add_version(second)
        uow.secrets.add_version(first)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.secrets.list_versions(secret.id) == [first, second]
        assert uow.secrets.get_version(secret.id, 2) == second
        assert uow.secrets.get_version(secret.id, 3) is None


def test_a_version_number_is_taken_once(engine):
    secret = make_secret()
    add_secrets(engine, secret)
    with SqlUnitOfWork(engine) as uow:
        uow.secrets.add_version(make_version(secret, 1))
        uow.commit()
    with SqlUnitOfWork(engine) as uow, pytest.raises(Conflict, match="version 1"):
        uow.secrets.add_version(make_version(secret, 1))


# -- unit of work --------------------------------------------------------------------------


def test_leaving_without_commit_rolls_back(engine):
    secret = make_secret()
    with SqlUnitOfWork(engine) as uow:
        uow.secrets.add(secret)
    with SqlUnitOfWork(engine) as uow:
        assert uow.secrets.get(secret.id) is None


def test_an_exception_rolls_back(engine):
    secret = make_secret()
    with pytest.raises(RuntimeError), SqlUnitOfWork(engine) as uow:
        uow.secrets.add(secret)
        raise RuntimeError("boom")
    with SqlUnitOfWork(engine) as uow:
        assert uow.secrets.get(secret.id) is None


def test_rollback_after_commit_keeps_the_commit(engine):
    secret = make_secret()
    with SqlUnitOfWork(engine) as uow:
        uow.secrets.add(secret)
        uow.commit()
        uow.rollback()
    with SqlUnitOfWork(engine) as uow:
        assert uow.secrets.get(secret.id) is not None


# -- engine --------------------------------------------------------------------------------


def test_errors_never_show_bound_parameters(engine):
    with engine.connect() as connection, pytest.raises(DBAPIError) as failure:
        connection.execute(
            text("SELECT CAST(:value AS INTEGER) / 0 FROM nowhere"), {"value": "s3cr3t-value"}
        )
    assert "s3cr3t-value" not in str(failure.value)


def test_sqlite_files_get_their_directory_and_pragmas(tmp_path):
    engine = create_engine_from_url(f"sqlite:///{tmp_path / 'new' / 'dir' / 'secrets.db'}")
    try:
        with engine.connect() as connection:
            pragmas = [
                connection.execute(text(f"PRAGMA {name}")).scalar_one()
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            ]
    finally:
        engine.dispose()
    assert pragmas == ["wal", 10000, 1]


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_urls_use_psycopg_3(scheme):
    engine = create_engine_from_url(f"{scheme}://user@db.example:5432/platform")
    assert engine.url.drivername == "postgresql+psycopg"
    assert engine.url.database == "platform"
