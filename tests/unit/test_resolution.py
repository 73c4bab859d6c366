"""Resolution on the fakes: the most specific secret wins each name, the answer says what it
shadows, and a caller sees (and reads) only what it may."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.errors import AuditUnavailable
from core.domain.secrets import Secret, VersionState
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.policy import SecretPolicy, ValueChecksum
from core.reads import ValueReader
from core.resolution import (
    ResolveContext,
    ResolvedSecret,
    ResolveService,
    Selection,
    environment_of,
    variable_name,
)
from core.secrets import NewSecret, SecretService
from core.types import TypeRegistry
from core.writes import WriteService
from plugins.types_basic import GenericType, UsernamePasswordType
from plugins.types_cloud import AwsCredentialsType
from tests.fakes import (
    FakeDatabase,
    FakeSecretRepository,
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
    make_audit_trail,
    recorded,
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
    return SecretService(db, registry, clock, CHECKSUM, SecretPolicy(), make_audit_trail(db, clock))


@pytest.fixture
def writes(db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend) -> WriteService:
    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    return WriteService(db, registry, clock, CHECKSUM, SecretPolicy(), make_audit_trail(db, clock))


@pytest.fixture
def resolver(
    db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend
) -> ResolveService:
    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    return ResolveService(
        db, ValueReader(registry, clock, CHECKSUM), clock, make_audit_trail(db, clock)
    )


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
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    layers: dict[str, Secret],
) -> None:
    db.database.grant(ALICE.id, Role.READER)
    writes.write_value(ALICE, layers["key-user"].id, SecretValue(b"rotated"))

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


class CountingSecrets:
    """A secret repository that notes each query made of it."""

    def __init__(self, repository: FakeSecretRepository, queries: list[str]) -> None:
        self._repository = repository
        self._queries = queries

    def __getattr__(self, name: str) -> Any:
        self._queries.append(name)
        return getattr(self._repository, name)


def test_resolution_reads_the_database_once(
    db: FakeUnitOfWorkFactory,
    clock: FixedClock,
    backend: InMemoryBackend,
    layers: dict[str, Secret],
) -> None:
    queries: list[str] = []

    def counting(*, read_only: bool = False) -> FakeUnitOfWork:
        uow = db(read_only=read_only)
        uow.secrets = CountingSecrets(uow.secrets, queries)
        return uow

    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    resolver = ResolveService(
        counting, ValueReader(registry, clock, CHECKSUM), clock, make_audit_trail(db, clock)
    )
    committed = db.committed

    assert len(resolver.resolve(ROOT, CONTEXT, include_values=True)) == 4
    assert queries == ["resolve"]
    assert db.committed == committed + 1  # the audit events of the resolution and its reads


# -- the audit trail ------------------------------------------------------------------------


def test_each_value_served_is_recorded_with_the_resolution_in_one_transaction(
    resolver: ResolveService, db: FakeUnitOfWorkFactory, layers: dict[str, Secret]
) -> None:
    db.database.grant(ALICE.id, Role.VIEWER)
    db.database.grant(ALICE.id, Role.READER, PROJECT)
    committed = db.committed

    with recorded(db) as events:
        resolved = resolver.resolve(ALICE, ResolveContext(scope=PROJECT), include_values=True)

    assert db.committed == committed + 1
    resolution, *reads = events
    assert (resolution.action, resolution.resource, resolution.scope, resolution.outcome) == (
        "secret.resolve",
        "scope:project/p-42",
        "project/p-42",
        "success",
    )
    assert resolution.details == {"environment": None, "count": 4, "values": 2}
    served = [entry for entry in resolved if entry.value is not None]  # not the forbidden ones
    assert [(e.action, e.resource, e.version, e.scope, e.scope_path, e.outcome) for e in reads] == [
        (
            "secret.read_value",
            f"secret:{entry.secret.id}",
            entry.version.version,
            str(entry.secret.scope),
            entry.secret.scope_path,
            "success",
        )
        for entry in served
    ]
    assert {(e.actor, e.time) for e in events} == {(ALICE.id, NOW)}
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 3))


def test_a_value_that_is_not_served_is_not_recorded_as_read(
    resolver: ResolveService,
    secrets: SecretService,
    db: FakeUnitOfWorkFactory,
    layers: dict[str, Secret],
) -> None:
    put(secrets, PROJECT, "EXPIRED", expires_at=NOW - timedelta(seconds=1))

    with recorded(db) as events:
        resolved = resolver.resolve(ROOT, ResolveContext(scope=PROJECT), include_values=True)

    expired = next(entry for entry in resolved if entry.secret.name == "EXPIRED")
    assert expired.value_error == "secret_expired"
    assert f"secret:{expired.secret.id}" not in {event.resource for event in events}
    assert [event.action for event in events] == ["secret.resolve"] + ["secret.read_value"] * 4


def test_a_resolution_without_values_records_no_reads(
    resolver: ResolveService, db: FakeUnitOfWorkFactory, layers: dict[str, Secret]
) -> None:
    with recorded(db) as events:
        resolver.resolve(ROOT, CONTEXT)

    [event] = events
    assert (event.action, event.details) == (
        "secret.resolve",
        {"environment": "production", "count": 4, "values": 0},
    )


@pytest.mark.parametrize("failure", ["down", "next-append"])
def test_no_value_is_returned_unless_its_read_is_recorded(
    resolver: ResolveService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    layers: dict[str, Secret],
    failure: str,
) -> None:
    if failure == "down":
        db.database.audit_down = True
    else:
        db.database.fail_next_audit_append()

    with recorded(db) as events, pytest.raises(AuditUnavailable):
        resolver.resolve(ROOT, CONTEXT, include_values=True)

    assert len(backend.read) == 4  # read, and never returned
    # neither the resolution nor any read: at most its failure, if that could be recorded
    expected = [] if failure == "down" else [("secret.resolve", "error", "audit_unavailable")]
    assert [(e.action, e.outcome, e.reason) for e in events] == expected


def test_no_value_reaches_an_audit_event(
    resolver: ResolveService, db: FakeUnitOfWorkFactory, layers: dict[str, Secret]
) -> None:
    db.database.grant(ALICE.id, Role.READER)

    resolved = resolver.resolve(ALICE, CONTEXT, include_values=True)

    served = [entry.value.reveal().decode() for entry in resolved if entry.value is not None]
    assert len(served) == 4
    for event in db.database.audit_events():
        for text in (repr(event), json.dumps(event.content())):
            assert not any(value in text for value in served), event


# -- selection and environment variables ------------------------------------------------------

AWS_KEY = {
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "region": "eu-west-1",
}
TYPES = TypeRegistry(
    {t.name: t for t in (GenericType(), AwsCredentialsType(), UsernamePasswordType())}
)


def put_value(
    secrets: SecretService, scope: ScopeRef, name: str, value: bytes, **fields: Any
) -> Secret:
    return secrets.create_secret(ROOT, NewSecret(scope, name, **fields), SecretValue(value))


def variables_of(
    resolved: list[ResolvedSecret], types: TypeRegistry = TYPES
) -> dict[str, tuple[dict[str, str] | None, str | None, list[tuple[str, str, tuple[str, ...]]]]]:
    """name -> (variables, error, unset) as text."""
    return {
        entry.secret.name: (
            None
            if found.variables is None
            else {name: value.reveal().decode() for name, value in found.variables.items()},
            found.error,
            [(unset.name, unset.reason, unset.by) for unset in found.unset],
        )
        for entry, found in zip(resolved, environment_of(resolved, types), strict=True)
    }


def test_a_selection_resolves_and_reads_only_the_names_it_selects(
    resolver: ResolveService, db: FakeUnitOfWorkFactory, layers: dict[str, Secret]
) -> None:
    db.database.grant(ALICE.id, Role.READER)
    only = Selection(frozenset({"API_KEY", "TRACING", "MISSING"}))
    with recorded(db) as events:
        resolved = resolver.resolve(ALICE, CONTEXT, include_values=True, selection=only)

    assert summary(resolved, layers) == {
        "API_KEY": ["key-user", "key-project", "key-team", "key-org", "key-global"],
        "TRACING": ["tracing-team-prod", "tracing-team"],
    }
    assert [event.action for event in events] == ["secret.resolve"] + ["secret.read_value"] * 2
    by_prefix = resolver.resolve(ROOT, CONTEXT, selection=Selection(prefix="DB_"))
    assert [entry.secret.name for entry in by_prefix] == ["DB_URL"]
    both = Selection(frozenset({"API_KEY", "DB_URL"}), prefix="DB")
    assert [entry.secret.name for entry in resolver.resolve(ROOT, CONTEXT, selection=both)] == [
        "DB_URL"
    ]


def test_a_typed_secret_becomes_the_variables_its_type_documents(
    resolver: ResolveService, secrets: SecretService
) -> None:
    put_value(secrets, PROJECT, "AWS", json.dumps(AWS_KEY).encode(), type="aws_credentials")
    login = {"username": "app", "password": "pw-1"}
    put_value(secrets, PROJECT, "db.login", json.dumps(login).encode(), type="username_password")
    put_value(secrets, PROJECT, "API-URL", b"https://api.example")

    resolved = resolver.resolve(ROOT, ResolveContext(scope=PROJECT), include_values=True)

    assert variables_of(resolved) == {
        "API-URL": ({"API_URL": "https://api.example"}, None, []),
        "AWS": (
            {
                "AWS_ACCESS_KEY_ID": AWS_KEY["access_key_id"],
                "AWS_SECRET_ACCESS_KEY": AWS_KEY["secret_access_key"],
                "AWS_DEFAULT_REGION": "eu-west-1",
            },
            None,
            [],
        ),
        "db.login": ({"db_login_USERNAME": "app", "db_login_PASSWORD": "pw-1"}, None, []),
    }


def test_the_more_specific_secret_sets_a_variable_two_give(
    resolver: ResolveService, secrets: SecretService
) -> None:
    put_value(secrets, PROJECT, "AWS", json.dumps(AWS_KEY).encode(), type="aws_credentials")
    put_value(secrets, GLOBAL, "AWS_ACCESS_KEY_ID", b"AKIAGLOBALGLOBAL0000")
    put_value(secrets, ORGANIZATION, "AWS_DEFAULT_REGION", b"us-east-1", environment="production")

    resolved = resolver.resolve(ROOT, CONTEXT, include_values=True)

    found = variables_of(resolved)
    assert found["AWS"][0] == {
        "AWS_ACCESS_KEY_ID": AWS_KEY["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": AWS_KEY["secret_access_key"],
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    assert found["AWS_ACCESS_KEY_ID"] == ({}, None, [("AWS_ACCESS_KEY_ID", "shadowed", ("AWS",))])
    # a project beats an organization, even one specific to the environment
    assert found["AWS_DEFAULT_REGION"] == (
        {},
        None,
        [("AWS_DEFAULT_REGION", "shadowed", ("AWS",))],
    )


def test_two_as_specific_secrets_giving_one_variable_set_neither(
    resolver: ResolveService, secrets: SecretService
) -> None:
    put_value(secrets, PROJECT, "A-B", b"1")
    put_value(secrets, PROJECT, "A_B", b"2")
    put_value(secrets, PROJECT, "A.B", b"3", environment="production")  # more specific
    put_value(secrets, PROJECT, "C-D", b"4")
    put_value(secrets, PROJECT, "C_D", b"5")

    resolved = resolver.resolve(ROOT, CONTEXT, include_values=True)

    assert variables_of(resolved) == {
        "A-B": ({}, None, [("A_B", "shadowed", ("A.B",))]),
        "A.B": ({"A_B": "3"}, None, []),
        "A_B": ({}, None, [("A_B", "shadowed", ("A.B",))]),
        "C-D": ({}, None, [("C_D", "ambiguous", ("C_D",))]),
        "C_D": ({}, None, [("C_D", "ambiguous", ("C-D",))]),
    }


class BrokenType(GenericType):
    """A plugin whose rendering fails, or names what cannot be a variable."""

    name = "broken"

    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        if value.reveal() == b"raise":
            raise RuntimeError(f"cannot render {value.reveal().decode()}")
        return {"NOT A NAME": "x"} if value.reveal() == b"bad-name" else {variable: "x\x00y"}


def test_a_value_that_makes_no_variable_says_why_and_shadows_nothing(
    resolver: ResolveService,
    secrets: SecretService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    put_value(secrets, PROJECT, "BINARY", b"\xff\xfe")
    put_value(secrets, PROJECT, "HAS_NUL", b"a\x00b")
    put_value(secrets, PROJECT, "AWS", b'{"access_key_id": "nope"}', type="aws_credentials")
    put_value(secrets, GLOBAL, "AWS_ACCESS_KEY_ID", b"AKIAGLOBALGLOBAL0000")
    for name, value in (("RAISES", b"raise"), ("BAD_NAME", b"bad-name"), ("NUL_OUT", b"n")):
        put_value(secrets, PROJECT, name, value, type="broken")
    put_value(secrets, PROJECT, "EXPIRED", b"e", expires_at=NOW - timedelta(seconds=1))
    types = TypeRegistry({t.name: t for t in (GenericType(), AwsCredentialsType(), BrokenType())})

    resolved = resolver.resolve(ROOT, ResolveContext(scope=PROJECT), include_values=True)

    assert variables_of(resolved, types) == {
        "AWS": (None, "invalid_value", []),
        "AWS_ACCESS_KEY_ID": ({"AWS_ACCESS_KEY_ID": "AKIAGLOBALGLOBAL0000"}, None, []),
        "BAD_NAME": (None, "invalid_value", []),
        "BINARY": (None, "not_text", []),
        "EXPIRED": (None, None, []),  # no value: its value_error says why
        "HAS_NUL": (None, "not_text", []),
        "NUL_OUT": (None, "invalid_value", []),
        "RAISES": (None, "invalid_value", []),
    }
    assert "cannot render" not in caplog.text and "raise" not in caplog.text
    assert "RuntimeError" in caplog.text


def test_without_types_every_value_is_its_own_variable(
    resolver: ResolveService, secrets: SecretService
) -> None:
    put_value(secrets, PROJECT, "AWS", json.dumps(AWS_KEY).encode(), type="aws_credentials")

    resolved = resolver.resolve(ROOT, ResolveContext(scope=PROJECT), include_values=True)

    assert variables_of(resolved, TypeRegistry()) == {
        "AWS": ({"AWS": json.dumps(AWS_KEY)}, None, [])
    }
    assert variable_name("db.url-2") == "db_url_2"
    assert variable_name("9LIVES") is None
