"""Resolution on the fakes: the most specific secret wins each name, the answer says what it
shadows, and a caller sees (and reads) only what it may."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.access import Role
from core.backends import BackendRegistry
from core.model import Secret, VersionState
from core.policy import SecretPolicy, ValueChecksum
from core.resolution import ResolveContext, ResolvedSecret, ResolveService
from core.services import NewSecret, SecretService, ValueReader
from ports.values import Principal, ScopeRef, ScopeType, SecretValue
from tests.fakes import (
    FakeDatabase,
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
)

NOW = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
CHECKSUM = ValueChecksum(b"k" * 32)
ROOT = Principal("root", "root", is_root=True)
ALICE = Principal("user:alice", "user")
BOB = Principal("user:bob", "user")
GLOBAL = ScopeRef.global_scope()
ORGANIZATION = ScopeRef(ScopeType.ORGANIZATION, "acme")
TEAM = ScopeRef(ScopeType.TEAM, "t-1")
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
SIBLING_TEAM = ScopeRef(ScopeType.TEAM, "t-2")
OTHER_PROJECT = ScopeRef(ScopeType.PROJECT, "p-43")
ALICES = ScopeRef(ScopeType.USER, "alice")
BOBS = ScopeRef(ScopeType.USER, "bob")
CONTEXT = ResolveContext(scope=PROJECT, user_id="alice", environment="production")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def db() -> FakeUnitOfWorkFactory:
    database = FakeDatabase()
    database.add_scope(ORGANIZATION, GLOBAL)
    database.add_scope(TEAM, ORGANIZATION)
    database.add_scope(SIBLING_TEAM, ORGANIZATION)
    database.add_scope(PROJECT, TEAM)
    database.add_scope(OTHER_PROJECT, TEAM)
    return FakeUnitOfWorkFactory(database)


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend("memory")


@pytest.fixture
def secrets(
    db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend
) -> SecretService:
    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    return SecretService(db, registry, clock, CHECKSUM, SecretPolicy())


@pytest.fixture
def resolver(
    db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend
) -> ResolveService:
    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    return ResolveService(db, ValueReader(registry, clock, CHECKSUM), clock)


def put(
    secrets: SecretService,
    scope: ScopeRef,
    name: str,
    environment: str | None = None,
    **fields: Any,
) -> Secret:
    owner = Principal(f"user:{scope.id}", "user") if scope.type is ScopeType.USER else ROOT
    value = f"{name}@{scope}:{environment or '*'}".encode()
    draft = NewSecret(scope, name, environment=environment, **fields)
    return secrets.create_secret(owner, draft, SecretValue(value))


@pytest.fixture
def layers(secrets: SecretService) -> dict[str, Secret]:
    """Overrides at every level of alice's context, and secrets outside it."""
    return {
        # API_KEY at all five levels; the team's is production-specific
        "key-global": put(secrets, GLOBAL, "API_KEY"),
        "key-org": put(secrets, ORGANIZATION, "API_KEY"),
        "key-team": put(secrets, TEAM, "API_KEY", "production"),
        "key-project": put(secrets, PROJECT, "API_KEY"),
        "key-user": put(secrets, ALICES, "API_KEY"),
        # DB_URL: within the project, the production one beats the agnostic one
        "db-project": put(secrets, PROJECT, "DB_URL"),
        "db-project-prod": put(secrets, PROJECT, "DB_URL", "production"),
        "db-team-staging": put(secrets, TEAM, "DB_URL", "staging"),
        "db-org-prod": put(secrets, ORGANIZATION, "DB_URL", "production"),
        # only at the top, and only below it
        "log-global": put(secrets, GLOBAL, "LOG_LEVEL"),
        "tracing-team": put(secrets, TEAM, "TRACING"),
        "tracing-team-prod": put(secrets, TEAM, "TRACING", "production"),
        # outside alice's context or environment
        "staging-only": put(secrets, PROJECT, "STAGING_ONLY", "staging"),
        "sibling": put(secrets, SIBLING_TEAM, "SIBLING_KEY"),
        "other-project": put(secrets, OTHER_PROJECT, "API_KEY", "production"),
        "bobs": put(secrets, BOBS, "API_KEY", "production"),
        "bobs-own": put(secrets, BOBS, "BOBS_KEY"),
    }


def summary(resolved: list[ResolvedSecret], layers: dict[str, Secret]) -> dict[str, list[str]]:
    """name -> [winner, *shadows], each by its key in `layers`."""
    key_of = {secret.id: key for key, secret in layers.items()}
    return {
        entry.secret.name: [key_of[entry.secret.id]] + [key_of[s.id] for s in entry.shadows]
        for entry in resolved
    }


def test_the_most_specific_secret_wins_and_shadows_the_rest(
    resolver: ResolveService, db: FakeUnitOfWorkFactory, layers: dict[str, Secret]
) -> None:
    db.database.grant(ALICE.id, Role.READER)

    resolved = resolver.resolve(ALICE, CONTEXT)

    assert [entry.secret.name for entry in resolved] == [
        "API_KEY",
        "DB_URL",
        "LOG_LEVEL",
        "TRACING",
    ]
    assert summary(resolved, layers) == {
        "API_KEY": ["key-user", "key-project", "key-team", "key-org", "key-global"],
        "DB_URL": ["db-project-prod", "db-project", "db-org-prod"],
        "LOG_LEVEL": ["log-global"],
        "TRACING": ["tracing-team-prod", "tracing-team"],
    }
    for entry in resolved:  # where each came from, and the version that would be served
        assert entry.version.secret_id == entry.secret.id
        assert entry.version.version == entry.secret.current_version
        assert (entry.value, entry.value_error) == (None, None)
    assert resolved[0].secret.scope == ALICES


def test_without_a_user_or_an_environment(
    resolver: ResolveService, layers: dict[str, Secret]
) -> None:
    assert summary(resolver.resolve(ROOT, ResolveContext(scope=PROJECT)), layers) == {
        "API_KEY": ["key-project", "key-org", "key-global"],
        "DB_URL": ["db-project"],
        "LOG_LEVEL": ["log-global"],
        "TRACING": ["tracing-team"],
    }
    assert summary(
        resolver.resolve(ROOT, ResolveContext(scope=TEAM, environment="staging")), layers
    ) == {
        "API_KEY": ["key-org", "key-global"],
        "DB_URL": ["db-team-staging"],
        "LOG_LEVEL": ["log-global"],
        "TRACING": ["tracing-team"],
    }
    assert summary(resolver.resolve(ALICE, ResolveContext(user_id="alice")), layers) == {
        "API_KEY": ["key-user"]
    }


def test_the_latest_version_of_the_winner_is_served(
    resolver: ResolveService,
    secrets: SecretService,
    db: FakeUnitOfWorkFactory,
    layers: dict[str, Secret],
) -> None:
    db.database.grant(ALICE.id, Role.READER)
    secrets.write_value(ALICE, layers["key-user"].id, SecretValue(b"rotated"))

    [entry] = [
        e
        for e in resolver.resolve(ALICE, CONTEXT, include_values=True)
        if e.secret.name == "API_KEY"
    ]
    assert entry.version.version == 2
    assert entry.value is not None and entry.value.reveal() == b"rotated"


def test_a_deleted_secret_takes_no_part(
    resolver: ResolveService,
    secrets: SecretService,
    db: FakeUnitOfWorkFactory,
    layers: dict[str, Secret],
) -> None:
    db.database.grant(ALICE.id, Role.READER)
    secrets.delete_secret(ALICE, layers["key-user"].id)
    secrets.delete_secret(ROOT, layers["key-org"].id)

    assert summary(resolver.resolve(ALICE, CONTEXT), layers)["API_KEY"] == [
        "key-project",
        "key-team",
        "key-global",
    ]


# -- what the caller may see ----------------------------------------------------------------


def test_a_caller_sees_only_what_it_may_not_even_as_a_shadow(
    resolver: ResolveService, db: FakeUnitOfWorkFactory, layers: dict[str, Secret]
) -> None:
    db.database.grant(ALICE.id, Role.READER, TEAM)

    assert summary(resolver.resolve(ALICE, CONTEXT), layers) == {
        "API_KEY": ["key-user", "key-project", "key-team"],
        "DB_URL": ["db-project-prod", "db-project"],
        "TRACING": ["tracing-team-prod", "tracing-team"],
    }


def test_someone_elses_personal_secrets_are_never_seen(
    resolver: ResolveService, db: FakeUnitOfWorkFactory, layers: dict[str, Secret]
) -> None:
    db.database.grant(BOB.id, Role.ADMIN)
    everything_shared = {
        "API_KEY": ["key-project", "key-team", "key-org", "key-global"],
        "DB_URL": ["db-project-prod", "db-project", "db-org-prod"],
        "LOG_LEVEL": ["log-global"],
        "TRACING": ["tracing-team-prod", "tracing-team"],
    }

    for caller in (BOB, ROOT):  # asking for alice's context
        assert summary(resolver.resolve(caller, CONTEXT), layers) == everything_shared
    bobs_context = ResolveContext(user_id="bob", environment="production")
    assert summary(resolver.resolve(BOB, bobs_context), layers) == {
        "API_KEY": ["bobs", "key-global"],
        "BOBS_KEY": ["bobs-own"],
        "LOG_LEVEL": ["log-global"],
    }
    assert "bobs" not in str(summary(resolver.resolve(ROOT, bobs_context), layers))


def test_a_narrowed_binding_shows_its_secrets_only(
    resolver: ResolveService, db: FakeUnitOfWorkFactory, layers: dict[str, Secret]
) -> None:
    db.database.grant(BOB.id, Role.READER, ORGANIZATION, name_pattern="DB_*")
    db.database.grant(BOB.id, Role.READER, GLOBAL, secret_id=layers["log-global"].id)

    assert summary(
        resolver.resolve(BOB, ResolveContext(scope=PROJECT, environment="production")), layers
    ) == {
        "DB_URL": ["db-project-prod", "db-project", "db-org-prod"],
        "LOG_LEVEL": ["log-global"],
    }


def test_a_caller_without_any_access_resolves_nothing(
    resolver: ResolveService, layers: dict[str, Secret]
) -> None:
    assert resolver.resolve(BOB, CONTEXT, include_values=True) == []


def test_an_expired_binding_shows_nothing(
    resolver: ResolveService,
    db: FakeUnitOfWorkFactory,
    clock: FixedClock,
    layers: dict[str, Secret],
) -> None:
    db.database.grant(BOB.id, Role.READER, expires_at=NOW + timedelta(minutes=5))
    assert resolver.resolve(BOB, ResolveContext(scope=PROJECT))

    clock.advance(timedelta(minutes=5))

    assert resolver.resolve(BOB, ResolveContext(scope=PROJECT)) == []


# -- values ---------------------------------------------------------------------------------


def values(resolved: list[ResolvedSecret]) -> dict[str, bytes | str | None]:
    return {
        entry.secret.name: entry.value.reveal() if entry.value else entry.value_error
        for entry in resolved
    }


def test_values_come_with_the_winners_when_asked_for(
    resolver: ResolveService, db: FakeUnitOfWorkFactory, layers: dict[str, Secret]
) -> None:
    db.database.grant(ALICE.id, Role.READER)

    assert values(resolver.resolve(ALICE, CONTEXT, include_values=True)) == {
        "API_KEY": b"API_KEY@user/alice:*",
        "DB_URL": b"DB_URL@project/p-42:production",
        "LOG_LEVEL": b"LOG_LEVEL@global/global:*",
        "TRACING": b"TRACING@team/t-1:production",
    }


def test_a_viewer_gets_forbidden_instead_of_a_value(
    resolver: ResolveService, db: FakeUnitOfWorkFactory, layers: dict[str, Secret]
) -> None:
    db.database.grant(ALICE.id, Role.VIEWER)
    db.database.grant(ALICE.id, Role.READER, PROJECT)

    resolved = resolver.resolve(ALICE, ResolveContext(scope=PROJECT), include_values=True)

    assert values(resolved) == {
        "API_KEY": b"API_KEY@project/p-42:*",
        "DB_URL": b"DB_URL@project/p-42:*",
        "LOG_LEVEL": "forbidden",
        "TRACING": "forbidden",
    }
    assert [entry.value for entry in resolved if entry.value_error] == [None, None]
    # asked without values, nothing is refused
    assert {e.value_error for e in resolver.resolve(ALICE, ResolveContext(scope=PROJECT))} == {None}


def test_a_value_that_may_not_be_served_says_why(
    resolver: ResolveService,
    secrets: SecretService,
    db: FakeUnitOfWorkFactory,
    layers: dict[str, Secret],
) -> None:
    put(secrets, PROJECT, "EXPIRED", expires_at=NOW - timedelta(seconds=1))
    put(secrets, PROJECT, "NOT_YET", not_before=NOW + timedelta(days=1))
    disabled = put(secrets, PROJECT, "DISABLED")
    db.database.replace_version(disabled.id, 1, state=VersionState.DISABLED)

    resolved = values(resolver.resolve(ROOT, ResolveContext(scope=PROJECT), include_values=True))

    assert resolved["EXPIRED"] == "secret_expired"
    assert resolved["NOT_YET"] == "secret_not_yet_valid"
    assert resolved["DISABLED"] == "version_unavailable"
    assert resolved["API_KEY"] == b"API_KEY@project/p-42:*"


def test_resolution_reads_the_database_once(
    db: FakeUnitOfWorkFactory,
    clock: FixedClock,
    backend: InMemoryBackend,
    layers: dict[str, Secret],
) -> None:
    opened: list[FakeUnitOfWork] = []

    def counting() -> FakeUnitOfWork:
        opened.append(db())
        return opened[-1]

    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    resolver = ResolveService(counting, ValueReader(registry, clock, CHECKSUM), clock)

    assert len(resolver.resolve(ROOT, CONTEXT, include_values=True)) == 4
    assert len(opened) == 1
