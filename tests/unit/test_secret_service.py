"""SecretService on the in-memory fakes: what it stores, what it refuses, what it leaves behind,
and whom it lets do what."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.errors import (
    AuditUnavailable,
    BackendUnavailable,
    Conflict,
    Expired,
    Forbidden,
    InvalidInput,
    NotFound,
    NotYetValid,
    PreconditionFailed,
    ServiceError,
    ValueIntegrityError,
    ValueTooLarge,
    VersionUnavailable,
)
from core.domain.paging import PageRequest
from core.domain.secrets import CONSUMERS, Secret, SecretFilter, VersionState
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue, VersionKey
from core.policy import SecretPolicy, ValueChecksum
from core.reads import ReadService, ValueReader
from core.secrets import MetadataChanges, NewSecret, SecretService
from core.stored_values import MAX_WRITE_ATTEMPTS
from core.versions import VersionService
from core.writes import WriteService
from ports.storage import BackendCapabilities
from tests.fakes import (
    FakeDatabase,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
    make_audit_trail,
    recorded,
)

NOW = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
CHECKSUM_KEY = b"unit-test-checksum-key-of-32-byt"
# Outside the access-control tests, Alice administers every shared scope and Bob edits them.
ALICE = Principal("user:alice", "user")
BOB = Principal("user:bob", "user")
GLOBAL = ScopeRef.global_scope()
ORGANIZATION = ScopeRef(ScopeType.ORGANIZATION, "acme")
TEAM = ScopeRef(ScopeType.TEAM, "t-1")
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
NEW_PROJECT = ScopeRef(ScopeType.PROJECT, "p-7")  # not registered: created on first use
FIRST = b"sk-first-value-0001"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def db() -> FakeUnitOfWorkFactory:
    """Acme's organization, team and project, with Alice an admin and Bob an editor of all."""
    database = FakeDatabase()
    database.add_scope(ORGANIZATION, GLOBAL)
    database.add_scope(TEAM, ORGANIZATION)
    database.add_scope(PROJECT, TEAM)
    database.grant(ALICE.id, Role.ADMIN)
    database.grant(BOB.id, Role.EDITOR)
    return FakeUnitOfWorkFactory(database)


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend("memory")


def parts(
    db: FakeUnitOfWorkFactory,
    clock: FixedClock,
    *backends: InMemoryBackend,
    policy: SecretPolicy | None = None,
) -> tuple[Any, ...]:
    """What `SecretService` and `WriteService` are built with, over `backends`."""
    registry = BackendRegistry({b.name: b for b in backends}, default=backends[0].name)
    checksum = ValueChecksum(CHECKSUM_KEY)
    audit = make_audit_trail(db, clock)
    return db, registry, clock, checksum, policy or SecretPolicy(), audit


def make_service(
    db: FakeUnitOfWorkFactory,
    clock: FixedClock,
    *backends: InMemoryBackend,
    policy: SecretPolicy | None = None,
) -> SecretService:
    return SecretService(*parts(db, clock, *backends, policy=policy))


def make_writes(
    db: FakeUnitOfWorkFactory,
    clock: FixedClock,
    *backends: InMemoryBackend,
    policy: SecretPolicy | None = None,
) -> WriteService:
    return WriteService(*parts(db, clock, *backends, policy=policy))


@pytest.fixture
def service(
    db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend
) -> SecretService:
    return make_service(db, clock, backend)


@pytest.fixture
def writes(db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend) -> WriteService:
    return make_writes(db, clock, backend)


def make_reads(
    db: FakeUnitOfWorkFactory, clock: FixedClock, *backends: InMemoryBackend
) -> ReadService:
    registry = BackendRegistry({b.name: b for b in backends}, default=backends[0].name)
    reader = ValueReader(registry, clock, ValueChecksum(CHECKSUM_KEY))
    return ReadService(db, reader, clock, make_audit_trail(db, clock))


@pytest.fixture
def reads(db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend) -> ReadService:
    return make_reads(db, clock, backend)


@pytest.fixture
def versions(
    db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend
) -> VersionService:
    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    return VersionService(db, registry, clock, make_audit_trail(db, clock))


@dataclass(frozen=True)
class UseCases:
    """The use cases on secrets the tables below call, over one database and clock."""

    secrets: SecretService
    writes: WriteService
    reads: ReadService
    versions: VersionService


@pytest.fixture
def use_cases(
    service: SecretService, writes: WriteService, reads: ReadService, versions: VersionService
) -> UseCases:
    return UseCases(service, writes, reads, versions)


def create(
    service: SecretService,
    value: bytes = FIRST,
    *,
    actor: Principal = ALICE,
    **draft: Any,
) -> Secret:
    draft.setdefault("scope", PROJECT)
    draft.setdefault("name", "OPENAI_API_KEY")
    return service.create_secret(actor, NewSecret(**draft), SecretValue(value))


def read(reads: ReadService, secret_id: UUID, version: int | None = None) -> bytes:
    return reads.read_value(ALICE, secret_id, version).value.reveal()


def interleave(backend: InMemoryBackend, action: Callable[[], object]) -> None:
    """Run `action` (another writer, say) once, in the middle of the next put."""

    def hook(_key: object) -> None:
        backend.on_put = None
        action()

    backend.on_put = hook


def assert_no_orphans(db: FakeUnitOfWorkFactory, *backends: InMemoryBackend) -> None:
    """Every stored value has a committed version row, and every row a stored value."""
    rows = {(row.backend, row.locator) for row in db.database.all_versions()}
    stored = {(b.name, locator) for b in backends for locator in b.values}
    assert stored == rows


def stored_values(backend: InMemoryBackend) -> set[bytes]:
    return {stored.data for stored in backend.values.values()}


def audited(db: FakeUnitOfWorkFactory) -> list[tuple[str, str, str | None]]:
    """Action, outcome and reason of every committed audit event, in order."""
    return [(event.action, event.outcome, event.reason) for event in db.database.audit_events()]


# -- create ---------------------------------------------------------------------------------


def test_create_stores_metadata_and_a_first_version(
    service: SecretService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    reads: ReadService,
    versions: VersionService,
) -> None:
    secret = create(
        service,
        environment="production",
        type="api_key",
        description="OpenAI key of the summariser",
        tags={"team": "ml"},
        consumer="llm_model",
        max_versions=10,
    )

    # the secret, its first version and the audit event of its creation, in one transaction
    assert db.committed == 1
    assert audited(db) == [("secret.create", "success", None)]
    assert secret.current_version == 1
    assert secret.revision == 1
    assert secret.backend == "memory"
    assert (secret.created_at, secret.created_by) == (NOW, "user:alice")
    assert service.get_secret(ALICE, secret.id) == secret
    assert service.find_secret(ALICE, PROJECT, "OPENAI_API_KEY", "production") == secret
    [version] = versions.list_versions(ALICE, secret.id)
    assert (version.version, version.state, version.backend) == (1, VersionState.ENABLED, "memory")
    assert (version.created_at, version.created_by) == (NOW, "user:alice")
    assert read(reads, secret.id) == FIRST
    assert_no_orphans(db, backend)


def test_create_keeps_a_keyed_checksum_never_a_plain_hash(
    service: SecretService, versions: VersionService
) -> None:
    secret = create(service)

    checksum = versions.get_version(ALICE, secret.id, 1).checksum
    assert checksum == ValueChecksum(CHECKSUM_KEY).of(SecretValue(FIRST))
    assert checksum != ValueChecksum(b"another key").of(SecretValue(FIRST))
    assert hashlib.sha256(FIRST).hexdigest() not in checksum


def test_create_registers_a_new_scope_under_the_parent_it_names(
    service: SecretService, db: FakeUnitOfWorkFactory
) -> None:
    first = create(service, name="ONE", scope=NEW_PROJECT, parent=TEAM)
    create(service, name="TWO", scope=NEW_PROJECT)  # it exists now: no parent needed

    with db() as uow:
        team = uow.scopes.get(TEAM)
        project = uow.scopes.get(NEW_PROJECT)
    assert team is not None and project is not None
    assert project.parent_pk == team.pk
    assert project.path == f"{team.path}{project.pk}/"
    assert first.scope_path == project.path
    assert service.get_secret(ALICE, first.id) == first


def test_create_in_an_unknown_scope_without_a_parent_is_refused(
    service: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend
) -> None:
    with pytest.raises(NotFound, match="name its parent"):
        create(service, scope=NEW_PROJECT)

    assert backend.values == {}
    assert db.database.tables.secrets == {}
    assert audited(db) == [("secret.create", "not_found", "not_found")]


def test_create_in_the_global_scope(service: SecretService) -> None:
    secret = create(service, scope=GLOBAL)

    assert service.find_secret(ALICE, GLOBAL, "OPENAI_API_KEY", None).id == secret.id


INVALID_DRAFTS = [
    pytest.param({"name": ""}, "name", id="empty-name"),
    pytest.param({"name": "1KEY"}, "name", id="name-starts-with-digit"),
    pytest.param({"name": "MY KEY"}, "name", id="name-with-space"),
    pytest.param({"name": "KEY\n"}, "name", id="name-with-newline"),
    pytest.param({"name": "path/KEY"}, "name", id="name-with-slash"),
    pytest.param({"name": "K" * 256}, "name", id="name-too-long"),
    pytest.param({"environment": "Production"}, "environment", id="env-uppercase"),
    pytest.param({"environment": ""}, "environment", id="env-empty"),
    pytest.param({"environment": "-prod"}, "environment", id="env-leading-dash"),
    pytest.param({"environment": "e" * 65}, "environment", id="env-too-long"),
    pytest.param({"consumer": "robot"}, "consumer", id="unknown-consumer"),
    pytest.param({"tags": {"bad key": "x"}}, "tags", id="tag-key-with-space"),
    pytest.param({"tags": {"": "x"}}, "tags", id="tag-key-empty"),
    pytest.param({"tags": {"k" * 129: "x"}}, "tags", id="tag-key-too-long"),
    pytest.param({"tags": {"k": "v" * 257}}, "tags", id="tag-value-too-long"),
    pytest.param({"tags": {f"k{i}": "v" for i in range(51)}}, "tags", id="too-many-tags"),
    pytest.param({"description": "d" * 1025}, "description", id="description-too-long"),
    pytest.param({"max_versions": 0}, "max_versions", id="max-versions-zero"),
    pytest.param({"max_versions": 1001}, "max_versions", id="max-versions-above-limit"),
    pytest.param(
        {"not_before": NOW + timedelta(days=1), "expires_at": NOW + timedelta(days=1)},
        "not_before",
        id="not-before-not-earlier-than-expiry",
    ),
    pytest.param({"expires_at": datetime(2030, 1, 1)}, "expires_at", id="naive-expires-at"),
    pytest.param({"not_before": datetime(2020, 1, 1)}, "not_before", id="naive-not-before"),
    pytest.param({"scope": ScopeRef(ScopeType.PROJECT, "")}, "scope", id="empty-scope-id"),
    pytest.param({"scope": ScopeRef(ScopeType.PROJECT, "-p")}, "scope", id="scope-id-dash"),
    pytest.param({"scope": ScopeRef(ScopeType.PROJECT, "p 42")}, "scope", id="scope-id-space"),
    pytest.param({"scope": ScopeRef(ScopeType.TEAM, "t" * 129)}, "scope", id="scope-id-long"),
    pytest.param({"scope": ScopeRef(ScopeType.GLOBAL, "other")}, "scope", id="second-global"),
    pytest.param({"backend": "nowhere"}, "backend", id="unknown-backend"),
]


@pytest.mark.parametrize(("draft", "field"), INVALID_DRAFTS)
def test_create_refuses_invalid_input_and_stores_nothing(
    service: SecretService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    draft: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        create(service, **draft)

    assert caught.value.details["field"] == field
    assert backend.values == {}
    assert db.database.tables.secrets == {}
    # refused before the attempt began (the draft's own fields) or recorded as refused
    assert set(audited(db)) <= {("secret.create", "error", "validation_error")}


VALID_DRAFTS = [
    pytest.param({"name": "_"}, id="underscore-name"),
    pytest.param({"name": "K" * 255}, id="longest-name"),
    pytest.param({"name": "a.b-c_D9"}, id="dots-and-dashes"),
    pytest.param({"environment": "production"}, id="production"),
    pytest.param({"environment": "qa-2_eu"}, id="custom-environment"),
    pytest.param({"environment": "e" * 64}, id="longest-environment"),
    pytest.param({"tags": {f"{i:0128d}": "v" * 256 for i in range(50)}}, id="largest-tags"),
    pytest.param({"tags": {"team/ml:owner.x-y_z": ""}}, id="tag-key-punctuation"),
    pytest.param({"description": "d" * 1024}, id="longest-description"),
    pytest.param({"max_versions": 1}, id="max-versions-one"),
    pytest.param({"max_versions": 1000}, id="max-versions-limit"),
    pytest.param({"scope": ScopeRef(ScopeType.USER, "alice@example.com")}, id="user-scope"),
    pytest.param(
        {"scope": ScopeRef(ScopeType.ORGANIZATION, "o" * 128), "parent": GLOBAL},
        id="longest-scope-id",
    ),
    *(pytest.param({"consumer": consumer}, id=f"consumer-{consumer}") for consumer in CONSUMERS),
]


@pytest.mark.parametrize("draft", VALID_DRAFTS)
def test_create_accepts_input_at_the_limits(service: SecretService, draft: dict[str, Any]) -> None:
    scope = draft.get("scope", PROJECT)
    # A personal scope is its user's alone (and created for them on first use).
    actor = Principal(f"user:{scope.id}", "user") if scope.type is ScopeType.USER else ALICE

    secret = create(service, actor=actor, **draft)

    assert service.get_secret(actor, secret.id) == secret
    for name, value in draft.items():
        if name != "parent":
            assert getattr(secret, name) == value


def test_a_configured_name_pattern_replaces_the_default(
    db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend
) -> None:
    service = make_service(db, clock, backend, policy=SecretPolicy(name_pattern=r"[a-z]+"))

    create(service, name="lowercase")
    with pytest.raises(InvalidInput):
        create(service, name="OPENAI_API_KEY")


@pytest.mark.parametrize(
    ("policy_limit", "backend_limit", "limit"),
    [(64 * 1024, 1024 * 1024, 64 * 1024), (64 * 1024, 100, 100), (50, 100, 50)],
    ids=["policy-default", "backend-smaller", "policy-smaller"],
)
def test_create_refuses_a_value_above_the_smaller_limit(
    db: FakeUnitOfWorkFactory,
    clock: FixedClock,
    policy_limit: int,
    backend_limit: int,
    limit: int,
) -> None:
    backend = InMemoryBackend("small", BackendCapabilities(max_value_bytes=backend_limit))
    service = make_service(db, clock, backend, policy=SecretPolicy(max_value_bytes=policy_limit))
    reads = make_reads(db, clock, backend)

    with pytest.raises(ValueTooLarge) as caught:
        create(service, b"x" * (limit + 1), name="TOO_BIG")

    # core refuses it before the backend is asked (whose own refusal would not name the field)
    assert caught.value.details == {"field": "value", "limit": limit, "size": limit + 1}
    assert backend.values == {}
    assert db.database.tables.secrets == {}
    assert audited(db) == [("secret.create", "error", "value_too_large")]
    assert read(reads, create(service, b"x" * limit, name="FITS").id) == b"x" * limit


def test_create_stores_in_the_backend_asked_for(
    db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend, versions: VersionService
) -> None:
    vault = InMemoryBackend("vault-prod")
    service = make_service(db, clock, backend, vault)
    reads = make_reads(db, clock, backend, vault)

    secret = create(service, backend="vault-prod")

    assert secret.backend == "vault-prod"
    assert versions.get_version(ALICE, secret.id, 1).backend == "vault-prod"
    assert backend.values == {}
    assert stored_values(vault) == {FIRST}
    assert read(reads, secret.id) == FIRST


def test_create_refuses_a_name_taken_in_the_same_scope_and_environment(
    service: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend, reads: ReadService
) -> None:
    first = create(service, environment="production")

    with pytest.raises(Conflict) as caught:
        create(service, b"second", environment="production")

    assert caught.value.details["id"] == str(first.id)
    assert stored_values(backend) == {FIRST}
    assert audited(db) == [
        ("secret.create", "success", None),
        ("secret.create", "error", "conflict"),
    ]
    assert read(reads, first.id) == FIRST


def test_the_same_name_is_free_in_another_environment_or_scope(
    service: SecretService, reads: ReadService
) -> None:
    secrets = [
        create(service, b"any"),
        create(service, b"prod", environment="production"),
        create(service, b"staging", environment="staging"),
        create(service, b"team", scope=TEAM),
        create(service, b"global", scope=GLOBAL),
    ]

    assert len({secret.id for secret in secrets}) == 5
    assert service.find_secret(ALICE, PROJECT, "OPENAI_API_KEY", None).id == secrets[0].id
    assert (
        read(reads, service.find_secret(ALICE, PROJECT, "OPENAI_API_KEY", "staging").id)
        == b"staging"
    )
    assert read(reads, secrets[4].id) == b"global"


def test_the_name_of_a_deleted_secret_stays_reserved_until_purged(
    service: SecretService, reads: ReadService
) -> None:
    first = create(service)
    service.delete_secret(ALICE, first.id)

    with pytest.raises(Conflict) as caught:
        create(service, b"second")
    assert caught.value.details == {"id": str(first.id), "deleted": True}

    service.purge_secret(ALICE, first.id)
    second = create(service, b"second")
    assert read(reads, second.id) == b"second"


def test_a_create_that_loses_the_race_for_a_name_leaves_no_value_behind(
    service: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend, reads: ReadService
) -> None:
    winner: list[Secret] = []
    interleave(backend, lambda: winner.append(create(service, b"bob's", actor=BOB)))

    with pytest.raises(Conflict):
        create(service, b"alice's")

    assert read(reads, winner[0].id) == b"bob's"
    assert stored_values(backend) == {b"bob's"}
    assert len(backend.destroyed) == 1
    assert_no_orphans(db, backend)


def test_two_first_creates_in_a_new_scope_both_succeed(
    service: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend, reads: ReadService
) -> None:
    db.database.grant(BOB.id, Role.ADMIN, TEAM)  # creating a scope takes an admin of its parent
    interleave(
        backend,
        lambda: create(
            service, b"bob's", name="BOBS_KEY", scope=NEW_PROJECT, parent=TEAM, actor=BOB
        ),
    )

    alices = create(service, name="ALICES_KEY", scope=NEW_PROJECT, parent=TEAM)

    assert read(reads, alices.id) == FIRST
    bobs = service.find_secret(ALICE, NEW_PROJECT, "BOBS_KEY", None)
    assert read(reads, bobs.id) == b"bob's"
    assert alices.scope_path == bobs.scope_path


def test_a_first_create_that_loses_its_scope_to_another_parent_stores_nothing(
    service: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend
) -> None:
    other_team = ScopeRef(ScopeType.TEAM, "t-2")
    db.database.add_scope(other_team, ORGANIZATION)
    interleave(
        backend,
        lambda: create(service, b"bob's", name="BOBS_KEY", scope=NEW_PROJECT, parent=other_team),
    )

    # Alice was authorized below t-1; the project now sits below t-2.
    with pytest.raises(Conflict, match="another parent"):
        create(service, name="ALICES_KEY", scope=NEW_PROJECT, parent=TEAM)

    assert stored_values(backend) == {b"bob's"}
    assert_no_orphans(db, backend)


@pytest.mark.parametrize("failure", ["fail_next_put", "down"])
def test_create_with_the_backend_unavailable_stores_no_metadata(
    service: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend, failure: str
) -> None:
    setattr(backend, failure, True)

    with pytest.raises(BackendUnavailable) as caught:
        create(service)

    assert caught.value.details == {"backend": "memory"}
    assert audited(db) == [("secret.create", "error", "backend_unavailable")]
    assert service.list_secrets(ALICE, SecretFilter(), PageRequest()).total == 0
    with db() as uow:
        assert uow.secrets.get_by_name(PROJECT, None, "OPENAI_API_KEY") is None


@pytest.mark.parametrize(
    "error",
    [ServiceError("database went away"), KeyboardInterrupt()],
    ids=["service-error", "interrupted"],
)
def test_create_whose_metadata_commit_fails_destroys_the_stored_value(
    service: SecretService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    error: BaseException,
) -> None:
    db.database.fail_next_commit(error)

    with pytest.raises(type(error)):
        create(service)

    assert backend.values == {}
    assert len(backend.destroyed) == 1
    assert db.database.tables.secrets == {}
    # the success went with the failed commit; an interrupt is not an attempt's outcome
    assert audited(db) == (
        []
        if isinstance(error, KeyboardInterrupt)
        else [("secret.create", "error", "internal_error")]
    )
    assert_no_orphans(db, backend)


def test_a_failed_cleanup_is_logged_and_the_original_error_raised(
    service: SecretService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db.database.fail_next_commit(ServiceError("database went away"))
    backend.fail_next_destroy = True

    with (
        caplog.at_level(logging.WARNING, logger="core.stored_values"),
        pytest.raises(ServiceError) as caught,
    ):
        create(service)

    assert caught.value.message == "database went away"
    [record] = caplog.records
    [stored] = backend.values.values()
    assert str(stored.key.secret_id) in record.getMessage()
    assert "'memory'" in record.getMessage()
    assert FIRST.decode() not in caplog.text


# -- read -----------------------------------------------------------------------------------


def test_read_value_serves_the_current_version_or_the_one_asked_for(
    service: SecretService,
    writes: WriteService,
    reads: ReadService,
) -> None:
    secret = create(service, b"v1")
    writes.write_value(ALICE, secret.id, SecretValue(b"v2"))
    writes.write_value(ALICE, secret.id, SecretValue(b"v3"))

    current = reads.read_value(ALICE, secret.id)
    assert (current.value.reveal(), current.version.version, current.secret.current_version) == (
        b"v3",
        3,
        3,
    )
    assert [read(reads, secret.id, number) for number in (1, 2, 3)] == [b"v1", b"v2", b"v3"]
    assert reads.read_value(ALICE, secret.id, 1).version.version == 1


@pytest.mark.parametrize("number", [0, -1, 2])
def test_read_value_of_a_version_that_does_not_exist(
    service: SecretService, number: int, reads: ReadService
) -> None:
    secret = create(service)

    with pytest.raises(NotFound):
        reads.read_value(ALICE, secret.id, number)


def test_reading_an_unknown_secret(
    service: SecretService, reads: ReadService, versions: VersionService
) -> None:
    unknown = uuid4()
    for call in (
        lambda: reads.read_value(ALICE, unknown),
        lambda: service.get_secret(ALICE, unknown),
        lambda: service.get_secret(ALICE, unknown, include_deleted=True),
        lambda: versions.list_versions(ALICE, unknown),
        lambda: versions.get_version(ALICE, unknown, 1),
        lambda: service.find_secret(ALICE, PROJECT, "NOPE", None),
    ):
        with pytest.raises(NotFound):
            call()


def test_an_expired_secret_is_not_served_but_its_metadata_is(
    service: SecretService, clock: FixedClock, reads: ReadService, versions: VersionService
) -> None:
    expires_at = NOW + timedelta(hours=1)
    secret = create(service, expires_at=expires_at)
    clock.set(expires_at - timedelta(microseconds=1))
    assert read(reads, secret.id) == FIRST

    clock.set(expires_at)
    with pytest.raises(Expired) as caught:
        reads.read_value(ALICE, secret.id)

    assert caught.value.details == {"expires_at": expires_at.isoformat()}
    assert expires_at.isoformat() in caught.value.message
    assert service.get_secret(ALICE, secret.id).expires_at == expires_at
    assert [v.version for v in versions.list_versions(ALICE, secret.id)] == [1]


def test_a_secret_created_already_expired_is_not_served(
    service: SecretService, reads: ReadService
) -> None:
    secret = create(service, expires_at=NOW - timedelta(days=1))

    with pytest.raises(Expired):
        reads.read_value(ALICE, secret.id, 1)
    assert service.get_secret(ALICE, secret.id).id == secret.id


def test_a_secret_is_not_served_before_not_before(
    service: SecretService, clock: FixedClock, reads: ReadService
) -> None:
    not_before = NOW + timedelta(days=2)
    secret = create(service, not_before=not_before)

    with pytest.raises(NotYetValid) as caught:
        reads.read_value(ALICE, secret.id)

    assert caught.value.details == {"not_before": not_before.isoformat()}
    assert service.get_secret(ALICE, secret.id).not_before == not_before
    clock.set(not_before)
    assert read(reads, secret.id) == FIRST


def test_an_expired_version_is_not_served(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    clock: FixedClock,
    reads: ReadService,
) -> None:
    secret = create(service, b"v1")
    writes.write_value(ALICE, secret.id, SecretValue(b"v2"))
    db.database.replace_version(secret.id, 1, expires_at=NOW + timedelta(minutes=5))
    clock.advance(timedelta(minutes=5))

    with pytest.raises(Expired):
        reads.read_value(ALICE, secret.id, 1)
    assert read(reads, secret.id) == b"v2"


@pytest.mark.parametrize("state", [VersionState.DISABLED, VersionState.DESTROYED])
def test_a_version_that_is_not_enabled_is_not_served(
    service: SecretService, db: FakeUnitOfWorkFactory, state: VersionState, reads: ReadService
) -> None:
    secret = create(service)
    db.database.replace_version(secret.id, 1, state=state)

    with pytest.raises(VersionUnavailable) as caught:
        reads.read_value(ALICE, secret.id)

    assert caught.value.details == {"version": 1, "state": state.value}


def test_a_tampered_value_fails_its_checksum(
    service: SecretService, backend: InMemoryBackend, reads: ReadService
) -> None:
    secret = create(service)
    [locator] = backend.values
    backend.tamper(locator, b"sk-attacker-value")

    with pytest.raises(ValueIntegrityError) as caught:
        reads.read_value(ALICE, secret.id)

    assert b"sk-attacker-value".decode() not in str(caught.value)
    assert FIRST.decode() not in str(caught.value)


def test_a_value_read_for_another_version_is_refused(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    reads: ReadService,
    versions: VersionService,
) -> None:
    secret = create(service, b"v1")
    writes.write_value(ALICE, secret.id, SecretValue(b"v2"))
    db.database.replace_version(
        secret.id, 2, locator=versions.get_version(ALICE, secret.id, 1).locator
    )

    with pytest.raises(ValueIntegrityError):
        reads.read_value(ALICE, secret.id, 2)


def test_reading_with_the_backend_down(
    service: SecretService, backend: InMemoryBackend, reads: ReadService
) -> None:
    secret = create(service)
    backend.down = True

    with pytest.raises(BackendUnavailable):
        reads.read_value(ALICE, secret.id)


# -- write ----------------------------------------------------------------------------------


def test_writes_make_gapless_versions(
    service: SecretService,
    writes: WriteService,
    clock: FixedClock,
    reads: ReadService,
    versions: VersionService,
) -> None:
    secret = create(service, b"v1")
    clock.advance(timedelta(minutes=1))
    second = writes.write_value(BOB, secret.id, SecretValue(b"v2"))
    clock.advance(timedelta(minutes=1))
    third = writes.write_value(ALICE, secret.id, SecretValue(b"v3"), expected_revision=2)

    assert (second.current_version, second.revision) == (2, 2)
    assert (second.updated_by, second.updated_at) == ("user:bob", NOW + timedelta(minutes=1))
    assert (third.current_version, third.revision) == (3, 3)
    assert service.get_secret(ALICE, secret.id) == third
    listed = versions.list_versions(ALICE, secret.id)
    assert [v.version for v in listed] == [1, 2, 3]
    assert [v.created_by for v in listed] == ["user:alice", "user:bob", "user:alice"]
    assert [read(reads, secret.id, n) for n in (1, 2, 3)] == [b"v1", b"v2", b"v3"]


def test_a_write_with_a_stale_revision_stores_nothing(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
) -> None:
    secret = create(service, b"v1")
    writes.write_value(BOB, secret.id, SecretValue(b"v2"))

    with pytest.raises(PreconditionFailed) as caught:
        writes.write_value(ALICE, secret.id, SecretValue(b"alice's"), expected_revision=1)

    assert caught.value.details == {"revision": 2}
    assert service.get_secret(ALICE, secret.id).current_version == 2
    assert b"alice's" not in stored_values(backend)
    assert_no_orphans(db, backend)


def test_a_check_and_set_that_loses_a_race_destroys_its_value(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    reads: ReadService,
    versions: VersionService,
) -> None:
    secret = create(service, b"v1")
    interleave(backend, lambda: writes.write_value(BOB, secret.id, SecretValue(b"bob's")))

    with pytest.raises(PreconditionFailed):
        writes.write_value(ALICE, secret.id, SecretValue(b"alice's"), expected_revision=1)

    assert [v.version for v in versions.list_versions(ALICE, secret.id)] == [1, 2]
    assert read(reads, secret.id) == b"bob's"
    assert b"alice's" not in stored_values(backend)
    assert len(backend.destroyed) == 1
    assert_no_orphans(db, backend)


def test_a_write_without_revision_retries_after_losing_a_race(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    reads: ReadService,
    versions: VersionService,
) -> None:
    secret = create(service, b"v1")
    interleave(backend, lambda: writes.write_value(BOB, secret.id, SecretValue(b"bob's")))

    updated = writes.write_value(ALICE, secret.id, SecretValue(b"alice's"))

    assert (updated.current_version, updated.revision) == (3, 3)
    assert [v.version for v in versions.list_versions(ALICE, secret.id)] == [1, 2, 3]
    assert [read(reads, secret.id, n) for n in (1, 2, 3)] == [b"v1", b"bob's", b"alice's"]
    assert len(backend.destroyed) == 1
    assert_no_orphans(db, backend)


def test_a_write_retries_when_the_conditional_update_fails(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    reads: ReadService,
    versions: VersionService,
) -> None:
    secret = create(service, b"v1")
    db.database.fail_next_update(PreconditionFailed("another writer got there first"))

    updated = writes.write_value(ALICE, secret.id, SecretValue(b"v2"))

    assert updated.current_version == 2
    assert [v.version for v in versions.list_versions(ALICE, secret.id)] == [1, 2]
    assert read(reads, secret.id) == b"v2"
    assert len(backend.destroyed) == 1
    assert_no_orphans(db, backend)


def test_a_write_gives_up_after_too_many_lost_races(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
) -> None:
    secret = create(service, b"v1")
    db.database.fail_next_update(PreconditionFailed("busy"), times=MAX_WRITE_ATTEMPTS)

    with pytest.raises(Conflict):
        writes.write_value(ALICE, secret.id, SecretValue(b"v2"))

    assert service.get_secret(ALICE, secret.id).current_version == 1
    assert len(backend.destroyed) == MAX_WRITE_ATTEMPTS
    assert_no_orphans(db, backend)


@pytest.mark.parametrize("failure", ["fail_next_put", "down"])
def test_a_write_with_the_backend_unavailable_changes_nothing(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    failure: str,
    versions: VersionService,
) -> None:
    secret = create(service, b"v1")
    setattr(backend, failure, True)

    with pytest.raises(BackendUnavailable):
        writes.write_value(ALICE, secret.id, SecretValue(b"v2"))

    backend.down = False
    assert service.get_secret(ALICE, secret.id) == secret
    assert [v.version for v in versions.list_versions(ALICE, secret.id)] == [1]
    assert_no_orphans(db, backend)


def test_a_write_whose_commit_fails_destroys_its_value(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
) -> None:
    secret = create(service, b"v1")
    db.database.fail_next_commit(ServiceError("database went away"))

    with pytest.raises(ServiceError, match="database went away"):
        writes.write_value(ALICE, secret.id, SecretValue(b"v2"))

    assert service.get_secret(ALICE, secret.id) == secret
    assert stored_values(backend) == {b"v1"}
    assert_no_orphans(db, backend)


def test_a_write_above_the_size_limit_stores_nothing(
    db: FakeUnitOfWorkFactory, clock: FixedClock
) -> None:
    backend = InMemoryBackend("small", BackendCapabilities(max_value_bytes=16))
    service = make_service(db, clock, backend)
    writes = make_writes(db, clock, backend)
    secret = create(service, b"v1")

    with pytest.raises(ValueTooLarge) as caught:
        writes.write_value(ALICE, secret.id, SecretValue(b"x" * 17))

    assert caught.value.details == {"field": "value", "limit": 16, "size": 17}
    assert service.get_secret(ALICE, secret.id).current_version == 1
    assert_no_orphans(db, backend)


def test_a_write_to_a_deleted_or_unknown_secret(
    service: SecretService, writes: WriteService, backend: InMemoryBackend
) -> None:
    secret = create(service)
    service.delete_secret(ALICE, secret.id)

    for secret_id in (secret.id, uuid4()):
        with pytest.raises(NotFound):
            writes.write_value(ALICE, secret_id, SecretValue(b"v2"))
    assert stored_values(backend) == {FIRST}


# -- metadata -------------------------------------------------------------------------------


def test_update_metadata_changes_what_is_given_and_nothing_else(
    service: SecretService, clock: FixedClock, reads: ReadService
) -> None:
    secret = create(service, description="old", tags={"a": "1"}, max_versions=5)
    clock.advance(timedelta(hours=1))
    changes = MetadataChanges(
        description="new",
        tags={"b": "2"},
        consumer="database",
        expires_at=NOW + timedelta(days=30),
        not_before=NOW,
    )

    updated = service.update_metadata(BOB, secret.id, changes, expected_revision=1)

    assert (updated.description, updated.tags, updated.consumer) == ("new", {"b": "2"}, "database")
    assert (updated.expires_at, updated.not_before) == (NOW + timedelta(days=30), NOW)
    assert updated.max_versions == 5
    assert (updated.name, updated.scope, updated.current_version) == (
        secret.name,
        secret.scope,
        1,
    )
    assert (updated.revision, updated.updated_by) == (2, "user:bob")
    assert updated.updated_at == NOW + timedelta(hours=1)
    assert service.get_secret(ALICE, secret.id) == updated
    assert read(reads, secret.id) == FIRST


def test_update_metadata_clears_fields(service: SecretService) -> None:
    secret = create(
        service,
        description="old",
        tags={"a": "1"},
        expires_at=NOW + timedelta(days=1),
        not_before=NOW - timedelta(days=1),
        max_versions=5,
    )
    changes = MetadataChanges(
        description="", tags={}, clear=frozenset({"expires_at", "not_before", "max_versions"})
    )

    updated = service.update_metadata(ALICE, secret.id, changes)

    assert (updated.description, updated.tags) == ("", {})
    assert (updated.expires_at, updated.not_before, updated.max_versions) == (None, None, None)
    assert service.get_secret(ALICE, secret.id) == updated


def test_update_metadata_refuses_to_clear_other_fields(service: SecretService) -> None:
    secret = create(service, description="kept")

    with pytest.raises(InvalidInput) as caught:
        service.update_metadata(ALICE, secret.id, MetadataChanges(clear=frozenset({"name"})))

    assert caught.value.details == {"field": "clear"}
    assert service.get_secret(ALICE, secret.id) == secret


@pytest.mark.parametrize(
    "changes",
    [
        MetadataChanges(consumer="robot"),
        MetadataChanges(tags={"bad key": "x"}),
        MetadataChanges(description="d" * 1025),
        MetadataChanges(max_versions=0),
        MetadataChanges(not_before=NOW + timedelta(days=2)),  # after the stored expires_at
        MetadataChanges(expires_at=datetime(2030, 1, 1)),
    ],
    ids=["consumer", "tags", "description", "max-versions", "not-before-after-expiry", "naive"],
)
def test_update_metadata_refuses_invalid_changes(
    service: SecretService, changes: MetadataChanges
) -> None:
    secret = create(service, expires_at=NOW + timedelta(days=1))

    with pytest.raises(InvalidInput):
        service.update_metadata(ALICE, secret.id, changes)

    assert service.get_secret(ALICE, secret.id) == secret


def test_update_metadata_with_a_stale_revision(service: SecretService) -> None:
    secret = create(service, description="old")
    service.update_metadata(BOB, secret.id, MetadataChanges(description="bob's"))

    with pytest.raises(PreconditionFailed) as caught:
        service.update_metadata(
            ALICE, secret.id, MetadataChanges(description="alice's"), expected_revision=1
        )

    assert caught.value.details == {"revision": 2}
    assert service.get_secret(ALICE, secret.id).description == "bob's"


def test_update_metadata_that_loses_a_race_changes_nothing(
    service: SecretService, db: FakeUnitOfWorkFactory
) -> None:
    secret = create(service, description="old")
    db.database.fail_next_update(PreconditionFailed("another writer got there first"))

    with pytest.raises(PreconditionFailed):
        service.update_metadata(ALICE, secret.id, MetadataChanges(description="new"))

    assert service.get_secret(ALICE, secret.id) == secret


def test_an_expiry_set_in_the_past_stops_the_value_being_served(
    service: SecretService, reads: ReadService
) -> None:
    secret = create(service)
    past = NOW - timedelta(seconds=1)

    service.update_metadata(ALICE, secret.id, MetadataChanges(expires_at=past))

    with pytest.raises(Expired) as caught:
        reads.read_value(ALICE, secret.id)
    assert caught.value.details == {"expires_at": past.isoformat()}


# -- delete, restore, purge -----------------------------------------------------------------


def test_delete_hides_the_secret_everywhere(
    service: SecretService, clock: FixedClock, reads: ReadService, versions: VersionService
) -> None:
    secret = create(service, environment="production")
    clock.advance(timedelta(hours=1))

    deleted = service.delete_secret(BOB, secret.id, expected_revision=1)

    deleted_at = NOW + timedelta(hours=1)
    assert (deleted.deleted_at, deleted.purge_after) == (
        deleted_at,
        deleted_at + timedelta(days=30),
    )
    assert (deleted.revision, deleted.updated_by) == (2, "user:bob")
    assert service.get_secret(ALICE, secret.id, include_deleted=True) == deleted
    for call in (
        lambda: service.get_secret(ALICE, secret.id),
        lambda: service.find_secret(ALICE, PROJECT, "OPENAI_API_KEY", "production"),
        lambda: reads.read_value(ALICE, secret.id),
        lambda: reads.read_value(ALICE, secret.id, 1),
        lambda: versions.list_versions(ALICE, secret.id),
        lambda: versions.get_version(ALICE, secret.id, 1),
        lambda: service.delete_secret(ALICE, secret.id),
    ):
        with pytest.raises(NotFound):
            call()
    assert service.list_secrets(ALICE, SecretFilter(), PageRequest()).items == []
    assert service.list_secrets(ALICE, SecretFilter(deleted=True), PageRequest()).items == [deleted]


def test_delete_keeps_the_values(
    service: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend
) -> None:
    secret = create(service)

    service.delete_secret(ALICE, secret.id)

    assert backend.destroyed == []
    assert stored_values(backend) == {FIRST}
    assert_no_orphans(db, backend)


def test_the_retention_window_comes_from_the_policy(
    db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend
) -> None:
    service = make_service(db, clock, backend, policy=SecretPolicy(retention_days=7))

    deleted = service.delete_secret(ALICE, create(service).id)

    assert deleted.purge_after == NOW + timedelta(days=7)


@pytest.mark.parametrize("days", [6, 91])
def test_a_retention_window_outside_7_to_90_days_is_refused(days: int) -> None:
    with pytest.raises(InvalidInput):
        SecretPolicy(retention_days=days)


def test_delete_with_a_stale_revision_keeps_the_secret(
    service: SecretService, writes: WriteService
) -> None:
    secret = create(service)
    writes.write_value(ALICE, secret.id, SecretValue(b"v2"))

    with pytest.raises(PreconditionFailed):
        service.delete_secret(ALICE, secret.id, expected_revision=1)

    assert service.get_secret(ALICE, secret.id).deleted_at is None


def test_restore_brings_back_every_version_intact(
    service: SecretService,
    writes: WriteService,
    clock: FixedClock,
    reads: ReadService,
    versions: VersionService,
) -> None:
    secret = create(service, b"v1", environment="staging")
    writes.write_value(ALICE, secret.id, SecretValue(b"v2"))
    before = versions.list_versions(ALICE, secret.id)
    service.delete_secret(ALICE, secret.id)
    clock.advance(timedelta(days=3))

    restored = service.restore_secret(BOB, secret.id)

    assert (restored.deleted_at, restored.purge_after) == (None, None)
    assert (restored.revision, restored.current_version, restored.updated_by) == (4, 2, "user:bob")
    assert service.find_secret(ALICE, PROJECT, "OPENAI_API_KEY", "staging") == restored
    assert versions.list_versions(ALICE, secret.id) == before
    assert [read(reads, secret.id, n) for n in (1, 2)] == [b"v1", b"v2"]
    assert read(reads, secret.id) == b"v2"


def test_restore_of_a_live_or_unknown_secret(service: SecretService) -> None:
    secret = create(service)

    with pytest.raises(Conflict):
        service.restore_secret(ALICE, secret.id)
    with pytest.raises(NotFound):
        service.restore_secret(ALICE, uuid4())
    assert service.get_secret(ALICE, secret.id) == secret


def test_purge_of_a_live_secret_is_refused_and_destroys_nothing(
    service: SecretService, backend: InMemoryBackend, reads: ReadService
) -> None:
    secret = create(service)

    with pytest.raises(Conflict) as caught:
        service.purge_secret(ALICE, secret.id)

    assert caught.value.details == {"state": "live"}
    assert (backend.destroyed, backend.purged) == ([], [])
    assert read(reads, secret.id) == FIRST


def test_purge_destroys_every_value_and_removes_the_rows(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    reads: ReadService,
    versions: VersionService,
) -> None:
    kept = create(service, b"kept", name="KEPT")
    secret = create(service, b"v1")
    writes.write_value(ALICE, secret.id, SecretValue(b"v2"))
    writes.write_value(ALICE, secret.id, SecretValue(b"v3"))
    locators = [v.locator for v in versions.list_versions(ALICE, secret.id)]
    service.delete_secret(ALICE, secret.id)

    service.purge_secret(ALICE, secret.id)

    assert sorted(backend.destroyed) == sorted(locators)
    assert backend.purged == [secret.id]
    assert stored_values(backend) == {b"kept"}
    with pytest.raises(NotFound):
        service.get_secret(ALICE, secret.id, include_deleted=True)
    with db() as uow:
        assert uow.secrets.list_versions(secret.id) == []
    assert read(reads, kept.id) == b"kept"
    assert_no_orphans(db, backend)


def test_purge_skips_versions_already_destroyed(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    versions: VersionService,
) -> None:
    secret = create(service, b"v1")
    writes.write_value(ALICE, secret.id, SecretValue(b"v2"))
    db.database.replace_version(secret.id, 1, state=VersionState.DESTROYED)
    second = versions.get_version(ALICE, secret.id, 2).locator
    service.delete_secret(ALICE, secret.id)

    service.purge_secret(ALICE, secret.id)

    assert backend.destroyed == [second]
    assert backend.values == {}


def test_a_purge_with_the_backend_down_keeps_the_rows_and_can_be_finished(
    service: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend
) -> None:
    secret = create(service)
    service.delete_secret(ALICE, secret.id)
    backend.down = True

    with pytest.raises(BackendUnavailable):
        service.purge_secret(ALICE, secret.id)

    assert service.get_secret(ALICE, secret.id, include_deleted=True).is_deleted
    backend.down = False
    service.purge_secret(ALICE, secret.id)
    assert backend.values == {}
    with pytest.raises(NotFound):
        service.get_secret(ALICE, secret.id, include_deleted=True)


def test_a_restore_that_loses_the_race_with_a_purge_is_refused(
    service: SecretService, backend: InMemoryBackend
) -> None:
    secret = create(service)
    service.delete_secret(ALICE, secret.id)
    backend.fail_next_destroy = True  # the purge stops after closing the retention window

    with pytest.raises(BackendUnavailable):
        service.purge_secret(ALICE, secret.id)
    with pytest.raises(Conflict) as caught:
        service.restore_secret(BOB, secret.id)

    assert "purge_after" in caught.value.details
    service.purge_secret(ALICE, secret.id)
    assert backend.values == {}


def test_a_restore_that_wins_the_race_makes_the_purge_fail_and_keeps_the_values(
    service: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend, reads: ReadService
) -> None:
    secret = create(service)
    service.delete_secret(ALICE, secret.id)
    db.database.fail_next_update(PreconditionFailed("moved on"))  # a restore got in first

    with pytest.raises(PreconditionFailed):
        service.purge_secret(ALICE, secret.id)

    assert (backend.destroyed, backend.purged) == ([], [])
    assert service.get_secret(ALICE, secret.id, include_deleted=True).is_deleted
    assert stored_values(backend) == {FIRST}
    service.restore_secret(BOB, secret.id)
    assert read(reads, secret.id) == FIRST


def test_a_restore_after_the_retention_window_is_refused(
    service: SecretService, clock: FixedClock
) -> None:
    secret = create(service)
    service.delete_secret(ALICE, secret.id)
    clock.advance(timedelta(days=31))

    with pytest.raises(Conflict):
        service.restore_secret(ALICE, secret.id)


@pytest.mark.parametrize(("page", "size"), [(0, 10), (1, 0), (1, 501), (-3, 10)])
def test_list_refuses_a_bad_page(service: SecretService, page: int, size: int) -> None:
    with pytest.raises(InvalidInput):
        service.list_secrets(ALICE, SecretFilter(), PageRequest(page=page, page_size=size))


def test_purge_of_an_unknown_secret(service: SecretService) -> None:
    with pytest.raises(NotFound):
        service.purge_secret(ALICE, uuid4())


# -- list -----------------------------------------------------------------------------------


@pytest.fixture
def catalogue(service: SecretService) -> dict[str, Secret]:
    """Six secrets in three scopes, one of them deleted."""
    secrets = {
        "global": create(service, name="Z_KEY", scope=GLOBAL),
        "project-any": create(service, name="A_KEY", tags={"team": "ml"}),
        "project-prod": create(
            service,
            name="B_KEY",
            environment="production",
            type="api_key",
            tags={"team": "ml", "tier": "gold"},
        ),
        "project-staging": create(service, name="B_KEY", environment="staging", type="api_key"),
        "team": create(service, name="A_KEY", scope=TEAM, tags={"tier": "gold"}),
    }
    deleted = create(service, name="B_OLD")
    secrets["deleted"] = service.delete_secret(ALICE, deleted.id)
    return secrets


def listed(service: SecretService, **criteria: Any) -> list[str]:
    page = service.list_secrets(ALICE, SecretFilter(**criteria), PageRequest(page_size=100))
    return [f"{s.scope}:{s.name}:{s.environment}" for s in page.items]


def test_list_orders_live_secrets_by_scope_name_and_environment(
    service: SecretService, catalogue: dict[str, Secret]
) -> None:
    assert listed(service) == [
        "global/global:Z_KEY:None",
        "project/p-42:A_KEY:None",
        "project/p-42:B_KEY:production",
        "project/p-42:B_KEY:staging",
        "team/t-1:A_KEY:None",
    ]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"scope": PROJECT}, ["A_KEY", "B_KEY", "B_KEY"]),
        ({"scope": TEAM}, ["A_KEY"]),
        ({"scope_type": "global"}, ["Z_KEY"]),
        ({"scope_type": ScopeType.TEAM}, ["A_KEY"]),
        ({"environment": "production"}, ["B_KEY"]),
        ({"type": "api_key"}, ["B_KEY", "B_KEY"]),
        ({"tags": {"team": "ml"}}, ["A_KEY", "B_KEY"]),
        ({"tags": {"team": "ml", "tier": "gold"}}, ["B_KEY"]),
        ({"tags": {"tier": "silver"}}, []),
        ({"prefix": "B_"}, ["B_KEY", "B_KEY"]),
        ({"prefix": "B_", "deleted": True}, ["B_OLD"]),
        ({"scope": PROJECT, "environment": "staging", "type": "api_key"}, ["B_KEY"]),
    ],
)
def test_list_filters(
    service: SecretService,
    catalogue: dict[str, Secret],
    criteria: dict[str, Any],
    expected: list[str],
) -> None:
    page = service.list_secrets(ALICE, SecretFilter(**criteria), PageRequest())

    assert [secret.name for secret in page.items] == expected
    assert page.total == len(expected)


def test_list_paginates(service: SecretService, catalogue: dict[str, Secret]) -> None:
    pages = [
        service.list_secrets(ALICE, SecretFilter(), PageRequest(page=n, page_size=2))
        for n in (1, 2, 3, 4)
    ]

    assert [[s.id for s in page.items] for page in pages] == [
        [catalogue["global"].id, catalogue["project-any"].id],
        [catalogue["project-prod"].id, catalogue["project-staging"].id],
        [catalogue["team"].id],
        [],
    ]
    assert {page.total for page in pages} == {5}
    assert [(page.page, page.page_size) for page in pages] == [(1, 2), (2, 2), (3, 2), (4, 2)]


# -- values never leave in logs --------------------------------------------------------------


def test_no_value_reaches_a_log_line(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    caplog: pytest.LogCaptureFixture,
    reads: ReadService,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = create(service, b"sk-first-secret")
    db.database.fail_next_commit(ServiceError("database went away"))
    backend.fail_next_destroy = True  # the cleanup fails too, and is logged with its traceback
    with pytest.raises(ServiceError):
        writes.write_value(ALICE, secret.id, SecretValue(b"sk-second-secret"))
    reads.read_value(ALICE, secret.id)
    service.delete_secret(ALICE, secret.id)
    service.purge_secret(ALICE, secret.id)

    assert len(caplog.records) == 1  # the failed cleanup
    assert "sk-first-secret" not in caplog.text
    assert "sk-second-secret" not in caplog.text


# -- access control -------------------------------------------------------------------------

CAROL = Principal("user:carol", "user")  # no bindings but those a test gives her
ROOT = Principal("root", "root", is_root=True)


def denied_everything(use_cases: UseCases, actor: Principal, secret_id: UUID) -> list[str]:
    """The messages of every refusal `actor` gets on the secret; each must be a NotFound."""
    service, reads, versions = use_cases.secrets, use_cases.reads, use_cases.versions
    calls: list[Callable[[], object]] = [
        lambda: service.get_secret(actor, secret_id),
        lambda: service.get_secret(actor, secret_id, include_deleted=True),
        lambda: versions.list_versions(actor, secret_id),
        lambda: versions.get_version(actor, secret_id, 1),
        lambda: reads.read_value(actor, secret_id),
        lambda: use_cases.writes.write_value(actor, secret_id, SecretValue(b"theirs")),
        lambda: service.update_metadata(actor, secret_id, MetadataChanges(description="x")),
        lambda: service.delete_secret(actor, secret_id),
    ]
    messages = []
    for call in calls:
        with pytest.raises(NotFound) as caught:
            call()
        messages.append(caught.value.message)
    return messages


def test_a_caller_without_access_is_told_the_secret_does_not_exist(
    service: SecretService, backend: InMemoryBackend, use_cases: UseCases
) -> None:
    secret = create(service, environment="production")

    unknown = uuid4()

    # the very answers a secret that does not exist gets
    assert denied_everything(use_cases, CAROL, secret.id) == [f"no secret {secret.id}"] * 8
    assert denied_everything(use_cases, CAROL, unknown) == [f"no secret {unknown}"] * 8
    with pytest.raises(NotFound) as hidden:
        service.find_secret(CAROL, PROJECT, "OPENAI_API_KEY", "production")
    with pytest.raises(NotFound) as missing:
        service.find_secret(CAROL, PROJECT, "NO_SUCH_KEY", "production")
    assert hidden.value.message == missing.value.message.replace("NO_SUCH_KEY", "OPENAI_API_KEY")
    assert str(secret.id) not in hidden.value.message
    assert service.list_secrets(CAROL, SecretFilter(), PageRequest()).total == 0
    assert stored_values(backend) == {FIRST}


def test_deleted_secrets_are_hidden_the_same_way(service: SecretService) -> None:
    secret = create(service)
    service.delete_secret(ALICE, secret.id)

    for call in (
        lambda: service.restore_secret(CAROL, secret.id),
        lambda: service.purge_secret(CAROL, secret.id),
        lambda: service.get_secret(CAROL, secret.id, include_deleted=True),
    ):
        with pytest.raises(NotFound, match=f"no secret {secret.id}"):
            call()
    assert service.list_secrets(CAROL, SecretFilter(deleted=True), PageRequest()).total == 0


OPERATIONS: dict[str, Callable[[UseCases, Principal, UUID], object]] = {
    "list": lambda use_cases, actor, secret_id: use_cases.versions.list_versions(actor, secret_id),
    "read": lambda use_cases, actor, secret_id: use_cases.reads.read_value(actor, secret_id),
    "write": lambda use_cases, actor, secret_id: use_cases.writes.write_value(
        actor, secret_id, SecretValue(b"v2")
    ),
    "delete": lambda use_cases, actor, secret_id: use_cases.secrets.delete_secret(actor, secret_id),
    "purge": lambda use_cases, actor, secret_id: (
        use_cases.secrets.delete_secret(ALICE, secret_id),
        use_cases.secrets.purge_secret(actor, secret_id),
    ),
}


@pytest.mark.parametrize(
    ("role", "permitted"),
    [
        (Role.VIEWER, {"list"}),
        (Role.READER, {"list", "read"}),
        (Role.EDITOR, {"list", "read", "write", "delete"}),
        (Role.ADMIN, {"list", "read", "write", "delete", "purge"}),
        (Role.AUDITOR, {"list"}),
    ],
)
def test_what_each_role_may_do_to_a_secret(
    service: SecretService,
    db: FakeUnitOfWorkFactory,
    role: Role,
    permitted: set[str],
    use_cases: UseCases,
) -> None:
    db.database.grant(CAROL.id, role, TEAM)  # the secret is in a project below the team
    for operation, call in OPERATIONS.items():
        secret = create(service, name=f"KEY_{operation.upper()}")
        if operation in permitted:
            call(use_cases, CAROL, secret.id)
        else:
            with pytest.raises(Forbidden):
                call(use_cases, CAROL, secret.id)


def test_a_refused_write_stores_no_value(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
) -> None:
    db.database.grant(CAROL.id, Role.READER, PROJECT)
    secret = create(service)

    with pytest.raises(Forbidden):
        writes.write_value(CAROL, secret.id, SecretValue(b"carol's"))
    with pytest.raises(Forbidden):
        create(service, b"carol's", name="CAROLS_KEY", actor=CAROL)

    assert stored_values(backend) == {FIRST}
    assert service.get_secret(ALICE, secret.id) == secret


def test_creating_needs_write_access_where_the_secret_goes(
    service: SecretService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.grant(CAROL.id, Role.EDITOR, TEAM)

    in_project = create(service, name="IN_PROJECT", actor=CAROL)
    with pytest.raises(Forbidden):  # creating the project takes an admin of the team
        create(service, name="NEW", scope=NEW_PROJECT, parent=TEAM, actor=CAROL)
    db.database.grant(CAROL.id, Role.ADMIN, TEAM)
    in_new_project = create(service, name="NEW", scope=NEW_PROJECT, parent=TEAM, actor=CAROL)
    with pytest.raises(NotFound):  # she cannot even see the organization
        create(service, name="IN_ORG", scope=ORGANIZATION, actor=CAROL)
    with pytest.raises(NotFound):  # nor create a scope below it
        create(
            service,
            name="NEW",
            scope=ScopeRef(ScopeType.TEAM, "t-9"),
            parent=ORGANIZATION,
            actor=CAROL,
        )

    assert in_project.created_by == in_new_project.created_by == CAROL.id
    assert service.get_secret(CAROL, in_new_project.id) == in_new_project


def test_a_listing_shows_only_what_the_caller_may_see(
    service: SecretService, db: FakeUnitOfWorkFactory
) -> None:
    create(service, name="GLOBAL_KEY", scope=GLOBAL)
    create(service, name="ORG_KEY", scope=ORGANIZATION)
    create(service, name="TEAM_KEY", scope=TEAM)
    create(service, name="PROJECT_KEY")
    create(service, name="CI_TOKEN", scope=ORGANIZATION)
    db.database.grant(CAROL.id, Role.VIEWER, TEAM)
    db.database.grant(CAROL.id, Role.READER, ORGANIZATION, name_pattern="CI_*")

    def names(actor: Principal) -> list[str]:
        page = service.list_secrets(actor, SecretFilter(), PageRequest())
        assert page.total == len(page.items)
        return [secret.name for secret in page.items]

    assert names(CAROL) == ["CI_TOKEN", "PROJECT_KEY", "TEAM_KEY"]
    assert (
        names(ALICE)
        == names(ROOT)
        == [
            "GLOBAL_KEY",
            "CI_TOKEN",
            "ORG_KEY",
            "PROJECT_KEY",
            "TEAM_KEY",
        ]
    )


def test_group_bindings_apply_to_their_members(
    service: SecretService, db: FakeUnitOfWorkFactory, reads: ReadService
) -> None:
    secret = create(service)
    db.database.grant("group:ml", Role.READER, PROJECT)
    member = Principal("user:dave", "user", groups=("group:ml",))

    assert read(reads, secret.id) == reads.read_value(member, secret.id).value.reveal()
    with pytest.raises(NotFound):
        reads.read_value(Principal("user:erin", "user", groups=("group:ops",)), secret.id)


def test_an_expired_binding_grants_nothing(
    service: SecretService, db: FakeUnitOfWorkFactory, clock: FixedClock, reads: ReadService
) -> None:
    secret = create(service)
    db.database.grant(CAROL.id, Role.READER, PROJECT, expires_at=NOW + timedelta(hours=1))
    assert reads.read_value(CAROL, secret.id).value.reveal() == FIRST

    clock.set(NOW + timedelta(hours=1))

    with pytest.raises(NotFound):
        reads.read_value(CAROL, secret.id)
    assert service.list_secrets(CAROL, SecretFilter(), PageRequest()).total == 0


def test_a_personal_scope_is_its_owners_alone(
    service: SecretService, writes: WriteService, reads: ReadService, use_cases: UseCases
) -> None:
    mine = ScopeRef(ScopeType.USER, "alice")
    secret = create(service, b"alice's", scope=mine)  # her scope is created on first use

    assert reads.read_value(ALICE, secret.id).value.reveal() == b"alice's"
    writes.write_value(ALICE, secret.id, SecretValue(b"alice's too"))
    for other in (BOB, ROOT):  # an editor of everything shared, and the development root
        denied_everything(use_cases, other, secret.id)
        assert service.list_secrets(other, SecretFilter(scope=mine), PageRequest()).total == 0
        with pytest.raises(NotFound):
            create(service, scope=mine, name="PLANTED", actor=other)
    assert [s.id for s in service.list_secrets(ALICE, SecretFilter(), PageRequest()).items] == [
        secret.id
    ]


# -- the audit trail ------------------------------------------------------------------------

CANARY = b"sk-canary-6f1d0c2a9b8e7d65"  # a value to look for wherever it must not be


@pytest.fixture
def written(service: SecretService, writes: WriteService) -> Secret:
    """A secret in the project with two versions, the second current."""
    secret = create(service, b"v1", environment="production")
    return writes.write_value(ALICE, secret.id, SecretValue(b"v2"))


def project_path(db: FakeUnitOfWorkFactory) -> str:
    return db.database.tables.scopes[PROJECT].path


# use case -> (the call, its audit action, the version the event names)
USE_CASES: dict[str, tuple[Callable[[UseCases, Secret], object], str, int | None]] = {
    "get_secret": (lambda s, x: s.secrets.get_secret(ALICE, x.id), "secret.read_metadata", None),
    "find_secret": (
        lambda s, x: s.secrets.find_secret(ALICE, PROJECT, x.name, x.environment),
        "secret.read_metadata",
        None,
    ),
    "list_versions": (
        lambda s, x: s.versions.list_versions(ALICE, x.id),
        "secret.list_versions",
        None,
    ),
    "get_version": (lambda s, x: s.versions.get_version(ALICE, x.id, 1), "secret.read_version", 1),
    "read_value": (lambda s, x: s.reads.read_value(ALICE, x.id), "secret.read_value", 2),
    "read_value_of_a_version": (
        lambda s, x: s.reads.read_value(ALICE, x.id, 1),
        "secret.read_value",
        1,
    ),
    "write_value": (
        lambda s, x: s.writes.write_value(ALICE, x.id, SecretValue(b"v3")),
        "secret.write_value",
        3,
    ),
    "update_metadata": (
        lambda s, x: s.secrets.update_metadata(ALICE, x.id, MetadataChanges(description="d")),
        "secret.update",
        None,
    ),
    "delete_secret": (lambda s, x: s.secrets.delete_secret(ALICE, x.id), "secret.delete", None),
    "restore_secret": (lambda s, x: s.secrets.restore_secret(ALICE, x.id), "secret.restore", None),
    "purge_secret": (lambda s, x: s.secrets.purge_secret(ALICE, x.id), "secret.purge", None),
}


@pytest.mark.parametrize("use_case", USE_CASES)
def test_each_use_case_records_one_event_of_its_success(
    service: SecretService,
    db: FakeUnitOfWorkFactory,
    written: Secret,
    use_case: str,
    use_cases: UseCases,
) -> None:
    call, action, version = USE_CASES[use_case]
    if use_case in {"restore_secret", "purge_secret"}:
        service.delete_secret(ALICE, written.id)

    with recorded(db) as events:
        call(use_cases, written)

    [event] = events
    assert (event.actor, event.actor_type, event.action, event.resource) == (
        ALICE.id,
        "user",
        action,
        f"secret:{written.id}",
    )
    assert (event.scope, event.scope_path, event.version) == (
        str(PROJECT),
        project_path(db),
        version,
    )
    assert (event.outcome, event.reason, event.time) == ("success", None, NOW)


def test_a_create_records_where_the_secret_went_and_its_keyed_checksum(
    service: SecretService, db: FakeUnitOfWorkFactory, versions: VersionService
) -> None:
    with recorded(db) as events:
        secret = create(service, name="NEW_KEY", scope=NEW_PROJECT, parent=TEAM)

    [event] = events
    assert (event.action, event.resource, event.outcome, event.version) == (
        "secret.create",
        f"secret:{secret.id}",
        "success",
        1,
    )
    assert (event.scope, event.scope_path) == (str(NEW_PROJECT), secret.scope_path)
    assert event.details == {
        "name": "NEW_KEY",
        "environment": None,
        "value_hmac": versions.get_version(ALICE, secret.id, 1).checksum,
    }


def test_a_listing_records_the_scope_asked_for_and_the_count(
    service: SecretService, db: FakeUnitOfWorkFactory, written: Secret
) -> None:
    with recorded(db) as events:
        service.list_secrets(ALICE, SecretFilter(scope=PROJECT), PageRequest())

    [event] = events
    assert (event.action, event.resource, event.scope, event.outcome) == (
        "secret.list",
        "secrets",
        str(PROJECT),
        "success",
    )
    assert event.details == {"total": 1, "page": 1}


def failing_backend_put(key: VersionKey) -> None:
    raise RuntimeError("the backend's client crashed")


@pytest.mark.parametrize(
    ("actor", "call", "error", "outcome", "reason"),
    [
        pytest.param(
            "viewer",
            lambda s, x: s.reads.read_value(CAROL, x.id),
            Forbidden,
            "denied",
            "forbidden",
            id="forbidden",
        ),
        pytest.param(
            "nobody",
            lambda s, x: s.reads.read_value(CAROL, x.id),
            NotFound,
            "not_found",
            "not_found",
            id="hidden-from-the-caller",
        ),
        pytest.param(
            "nobody",
            lambda s, x: s.writes.write_value(CAROL, x.id, SecretValue(b"carol's")),
            NotFound,
            "not_found",
            "not_found",
            id="write-hidden-from-the-caller",
        ),
        pytest.param(
            "viewer",
            lambda s, x: s.secrets.delete_secret(CAROL, x.id),
            Forbidden,
            "denied",
            "forbidden",
            id="delete-forbidden",
        ),
        pytest.param(
            "admin",
            lambda s, x: s.writes.write_value(ALICE, x.id, SecretValue(b"v3"), expected_revision=1),
            PreconditionFailed,
            "error",
            "precondition_failed",
            id="stale-revision",
        ),
        pytest.param(
            "admin",
            lambda s, x: s.secrets.purge_secret(ALICE, x.id),
            Conflict,
            "error",
            "conflict",
            id="purge-of-a-live-secret",
        ),
    ],
)
def test_a_refused_attempt_records_its_outcome_and_why(
    service: SecretService,
    db: FakeUnitOfWorkFactory,
    written: Secret,
    actor: str,
    call: Callable[[UseCases, Secret], object],
    error: type[Exception],
    outcome: str,
    reason: str,
    use_cases: UseCases,
) -> None:
    if actor == "viewer":
        db.database.grant(CAROL.id, Role.VIEWER, PROJECT)

    with recorded(db) as events, pytest.raises(error):
        call(use_cases, written)

    [event] = events
    assert (event.resource, event.outcome, event.reason) == (
        f"secret:{written.id}",
        outcome,
        reason,
    )
    # where the secret is, for that scope's auditors, even when the caller was not told
    assert (event.scope, event.scope_path) == (str(PROJECT), project_path(db))


def test_an_attempt_on_an_unknown_secret_is_recorded_as_not_found(
    service: SecretService, db: FakeUnitOfWorkFactory, reads: ReadService
) -> None:
    unknown = uuid4()

    with recorded(db) as events, pytest.raises(NotFound):
        reads.read_value(ALICE, unknown)

    [event] = events
    assert (event.action, event.resource, event.outcome) == (
        "secret.read_value",
        f"secret:{unknown}",
        "not_found",
    )
    assert (event.scope, event.scope_path) == (None, None)


def test_a_failure_that_is_not_a_refusal_is_recorded_as_an_error(
    service: SecretService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    clock: FixedClock,
    written: Secret,
    reads: ReadService,
) -> None:
    backend.down = True
    with recorded(db) as unavailable, pytest.raises(BackendUnavailable):
        reads.read_value(ALICE, written.id)
    backend.down = False
    clock.set(NOW + timedelta(days=1))
    service.update_metadata(ALICE, written.id, MetadataChanges(expires_at=NOW))
    with recorded(db) as expired, pytest.raises(Expired):
        reads.read_value(ALICE, written.id)
    backend.on_put = failing_backend_put
    with recorded(db) as crashed, pytest.raises(RuntimeError):
        create(service, name="CRASHES")

    assert [(e.action, e.outcome, e.reason, e.version) for e in unavailable + expired] == [
        ("secret.read_value", "error", "backend_unavailable", 2),
        ("secret.read_value", "error", "secret_expired", 2),
    ]
    assert [(e.action, e.outcome, e.reason) for e in crashed] == [
        ("secret.create", "error", "RuntimeError")
    ]


def test_a_failed_write_leaves_no_success_event(
    service: SecretService, writes: WriteService, db: FakeUnitOfWorkFactory, written: Secret
) -> None:
    db.database.fail_next_commit(ServiceError("database went away"))

    with recorded(db) as events, pytest.raises(ServiceError):
        writes.write_value(ALICE, written.id, SecretValue(b"v3"))

    assert [(e.action, e.outcome, e.reason) for e in events] == [
        ("secret.write_value", "error", "internal_error")
    ]
    assert service.get_secret(ALICE, written.id).current_version == 2


def test_a_write_that_retries_records_one_success_for_the_version_it_made(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    written: Secret,
) -> None:
    interleave(backend, lambda: writes.write_value(BOB, written.id, SecretValue(b"bob's")))

    with recorded(db) as events:
        writes.write_value(ALICE, written.id, SecretValue(b"alice's"))

    # Bob's write, in the middle of Alice's first try, then Alice's second try
    assert [(e.actor, e.outcome, e.version) for e in events] == [
        (BOB.id, "success", 3),
        (ALICE.id, "success", 4),
    ]


def test_a_value_is_not_returned_unless_its_read_is_recorded(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    written: Secret,
    caplog: pytest.LogCaptureFixture,
    reads: ReadService,
) -> None:
    writes.write_value(ALICE, written.id, SecretValue(CANARY))
    db.database.audit_down = True

    with (
        caplog.at_level(logging.DEBUG),
        recorded(db) as events,
        pytest.raises(AuditUnavailable) as caught,
    ):
        reads.read_value(ALICE, written.id)

    # the value came from the backend, and went no further
    assert backend.read[-1] == VersionKey(written.id, 3)
    assert events == []
    [record] = caplog.records
    assert "could not record audit event secret.read_value" in record.getMessage()
    assert CANARY.decode() not in caplog.text
    assert CANARY.decode() not in str(caught.value)


def test_a_read_that_could_not_be_recorded_is_recorded_as_an_error_if_it_can_be(
    service: SecretService, db: FakeUnitOfWorkFactory, written: Secret, reads: ReadService
) -> None:
    db.database.fail_next_audit_append()

    with recorded(db) as events, pytest.raises(AuditUnavailable):
        reads.read_value(ALICE, written.id)

    assert [(e.action, e.outcome, e.reason, e.version) for e in events] == [
        ("secret.read_value", "error", "audit_unavailable", 2)
    ]


# A purge destroys the values before its last transaction, which records it (and is refused):
# as after any interruption there, purging again finishes it.
@pytest.mark.parametrize("use_case", sorted(set(USE_CASES) - {"purge_secret"}))
def test_with_the_audit_trail_down_nothing_happens(
    service: SecretService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    written: Secret,
    use_case: str,
    use_cases: UseCases,
) -> None:
    call, _action, _version = USE_CASES[use_case]
    if use_case in {"restore_secret", "purge_secret"}:
        service.delete_secret(ALICE, written.id)
    before = db.database.snapshot()
    db.database.audit_down = True

    with pytest.raises(AuditUnavailable):
        call(use_cases, written)

    after = db.database.tables
    assert (after.secrets, after.versions) == (before.secrets, before.versions)
    assert_no_orphans(db, backend)


def test_with_the_audit_trail_down_nothing_is_created(
    service: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend
) -> None:
    db.database.audit_down = True

    with pytest.raises(AuditUnavailable):
        create(service, name="NEW_KEY", scope=NEW_PROJECT, parent=TEAM)

    assert (db.database.tables.secrets, backend.values) == ({}, {})
    assert NEW_PROJECT not in db.database.tables.scopes
    assert db.database.audit_events() == []


def test_no_value_reaches_an_audit_event(
    service: SecretService,
    writes: WriteService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    clock: FixedClock,
    reads: ReadService,
) -> None:
    db.database.grant(CAROL.id, Role.VIEWER, PROJECT)
    secret = create(service, CANARY, name="CANARY")
    reads.read_value(ALICE, secret.id)
    writes.write_value(ALICE, secret.id, SecretValue(CANARY + b"-2"))
    db.database.fail_next_commit(ServiceError("database went away"))
    with pytest.raises(ServiceError):
        writes.write_value(ALICE, secret.id, SecretValue(CANARY + b"-3"))
    with pytest.raises(ValueTooLarge):
        writes.write_value(ALICE, secret.id, SecretValue(CANARY * 4096))
    with pytest.raises(Forbidden):
        reads.read_value(CAROL, secret.id)
    with pytest.raises(Conflict):
        create(service, CANARY + b"-4", name="CANARY")
    [locator] = [loc for loc, stored in backend.values.items() if stored.data == CANARY]
    backend.tamper(locator, CANARY + b"-tampered")
    with pytest.raises(ValueIntegrityError):
        reads.read_value(ALICE, secret.id, 1)
    service.delete_secret(ALICE, secret.id)
    service.purge_secret(ALICE, secret.id)

    events = db.database.audit_events()
    assert len(events) == 10
    forms = [CANARY.decode(), CANARY.hex(), hashlib.sha256(CANARY).hexdigest()]
    for event in events:
        for text in (repr(event), json.dumps(event.content())):
            assert not any(form in text for form in forms), event


def test_a_lookup_of_the_longest_path_is_recorded(
    service: SecretService, db: FakeUnitOfWorkFactory
) -> None:
    scope = ScopeRef(ScopeType.ORGANIZATION, "o" * 128)
    name, environment = "K" * 255, "e" * 64

    with recorded(db) as events, pytest.raises(NotFound):
        service.find_secret(ALICE, scope, name, environment)

    [event] = events
    assert (event.resource, event.outcome) == (
        f"secret:{scope}/{name}@{environment}",
        "not_found",
    )
