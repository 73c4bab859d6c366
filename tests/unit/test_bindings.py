"""Role bindings on the fakes: who may grant them, where, how they are listed and removed, and
who can read a secret because of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from core.backends import BackendRegistry
from core.bindings import NewBinding, RoleBindingService
from core.domain.access import Role
from core.domain.errors import Forbidden, InvalidInput, NotFound
from core.domain.paging import PageRequest
from core.domain.secrets import Secret
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.policy import SecretPolicy, ValueChecksum
from core.reads import ReadService, ValueReader
from core.secrets import NewSecret, SecretService
from core.writes import WriteService
from tests.fakes import (
    FakeDatabase,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
    make_audit_trail,
    recorded,
)

NOW = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
ROOT = Principal("root", "root", is_root=True)
ALICE = Principal("user:alice", "user")  # admin of the organization
BOB = Principal("user:bob", "user", groups=("group:ml",))
CAROL = Principal("user:carol", "user")
GLOBAL = ScopeRef.global_scope()
ORGANIZATION = ScopeRef(ScopeType.ORGANIZATION, "acme")
TEAM = ScopeRef(ScopeType.TEAM, "t-1")
SIBLING = ScopeRef(ScopeType.TEAM, "t-2")
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def db() -> FakeUnitOfWorkFactory:
    database = FakeDatabase()
    database.add_scope(ORGANIZATION, GLOBAL)
    database.add_scope(TEAM, ORGANIZATION)
    database.add_scope(SIBLING, ORGANIZATION)
    database.add_scope(PROJECT, TEAM)
    database.grant(ALICE.id, Role.ADMIN, ORGANIZATION)
    return FakeUnitOfWorkFactory(database)


@pytest.fixture
def bindings(db: FakeUnitOfWorkFactory, clock: FixedClock) -> RoleBindingService:
    return RoleBindingService(db, clock, make_audit_trail(db, clock))


@pytest.fixture
def registry() -> BackendRegistry:
    backend = InMemoryBackend("memory")
    return BackendRegistry({backend.name: backend}, default=backend.name)


@pytest.fixture
def secrets(
    db: FakeUnitOfWorkFactory, clock: FixedClock, registry: BackendRegistry
) -> SecretService:
    return SecretService(
        db, registry, clock, ValueChecksum(b"k" * 32), SecretPolicy(), make_audit_trail(db, clock)
    )


@pytest.fixture
def writes(db: FakeUnitOfWorkFactory, clock: FixedClock, registry: BackendRegistry) -> WriteService:
    return WriteService(
        db, registry, clock, ValueChecksum(b"k" * 32), SecretPolicy(), make_audit_trail(db, clock)
    )


@pytest.fixture
def reads(db: FakeUnitOfWorkFactory, clock: FixedClock, registry: BackendRegistry) -> ReadService:
    reader = ValueReader(registry, clock, ValueChecksum(b"k" * 32))
    return ReadService(db, reader, clock, make_audit_trail(db, clock))


def create_secret(
    secrets: SecretService, scope: ScopeRef = PROJECT, name: str = "DB_URL"
) -> Secret:
    return secrets.create_secret(ROOT, NewSecret(scope, name), SecretValue(b"value"))


def grant(
    bindings: RoleBindingService,
    principal: str,
    role: Role,
    scope: ScopeRef = TEAM,
    actor: Principal = ALICE,
    **narrowing: object,
):
    return bindings.create(actor, NewBinding(principal, role, scope, **narrowing))  # type: ignore[arg-type]


# -- create ---------------------------------------------------------------------------------


def test_an_admin_grants_a_role_at_their_scope_or_below(
    bindings: RoleBindingService,
    secrets: SecretService,
    db: FakeUnitOfWorkFactory,
    reads: ReadService,
) -> None:
    secret = create_secret(secrets)
    with pytest.raises(NotFound):
        reads.read_value(BOB, secret.id)

    binding = grant(bindings, BOB.id, Role.READER, TEAM, expires_at=NOW + timedelta(days=1))

    assert (binding.principal, binding.role, binding.scope) == (BOB.id, Role.READER, TEAM)
    assert (binding.created_by, binding.created_at) == (ALICE.id, NOW)
    with db() as uow:
        team = uow.scopes.get(TEAM)
        assert team is not None and binding.scope_path == team.path
        assert uow.bindings.get(binding.id) == binding
    assert reads.read_value(BOB, secret.id).value.reveal() == b"value"


def test_granting_needs_admin_at_the_scope(
    bindings: RoleBindingService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.grant(BOB.id, Role.EDITOR, ORGANIZATION)

    with pytest.raises(Forbidden):
        grant(bindings, CAROL.id, Role.VIEWER, TEAM, actor=BOB)
    with pytest.raises(NotFound):
        grant(bindings, CAROL.id, Role.VIEWER, TEAM, actor=CAROL)
    with pytest.raises(NotFound):  # above her own binding
        grant(bindings, CAROL.id, Role.VIEWER, GLOBAL)
    with pytest.raises(Forbidden):  # bob cannot grant himself more
        grant(bindings, BOB.id, Role.ADMIN, ORGANIZATION, actor=BOB)
    grant(bindings, CAROL.id, Role.VIEWER, GLOBAL, actor=ROOT)
    with db() as uow:
        assert len(uow.bindings.for_identities([CAROL.id], NOW)) == 1


def test_a_personal_scope_takes_no_bindings(
    bindings: RoleBindingService, secrets: SecretService
) -> None:
    alices = ScopeRef(ScopeType.USER, "alice")
    secrets.create_secret(ALICE, NewSecret(alices, "MINE"), SecretValue(b"mine"))

    for actor in (ALICE, ROOT):
        with pytest.raises(InvalidInput) as caught:
            grant(bindings, BOB.id, Role.READER, alices, actor=actor)
        assert caught.value.details == {"field": "scope"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"principal": "bob"}, "principal"),
        ({"principal": "role:admin"}, "principal"),
        ({"name_pattern": "DB_%"}, "name_pattern"),
        ({"name_pattern": ""}, "name_pattern"),
        ({"expires_at": NOW}, "expires_at"),
        ({"expires_at": NOW - timedelta(days=1)}, "expires_at"),
        ({"scope": ScopeRef(ScopeType.TEAM, "-t")}, "scope"),
    ],
)
def test_invalid_bindings_are_refused(
    bindings: RoleBindingService, db: FakeUnitOfWorkFactory, fields: dict, field: str
) -> None:
    draft = {"principal": BOB.id, "role": Role.READER, "scope": TEAM, **fields}

    with pytest.raises(InvalidInput) as caught:
        bindings.create(ALICE, NewBinding(**draft))

    assert caught.value.details == {"field": field}
    assert [binding.principal for binding in db.database.tables.bindings.values()] == [ALICE.id]
    assert [(e.action, e.outcome, e.reason) for e in db.database.audit_events()] == [
        ("binding.create", "error", "validation_error")
    ]


def test_a_binding_to_an_unknown_scope(bindings: RoleBindingService) -> None:
    with pytest.raises(NotFound):
        grant(bindings, BOB.id, Role.READER, ScopeRef(ScopeType.TEAM, "t-404"), actor=ROOT)


def test_a_binding_narrowed_to_a_secret_needs_that_secret_in_the_scopes_subtree(
    bindings: RoleBindingService, secrets: SecretService, reads: ReadService
) -> None:
    in_project = create_secret(secrets, PROJECT)
    in_sibling = create_secret(secrets, SIBLING)
    in_organization = create_secret(secrets, ORGANIZATION)

    assert grant(bindings, BOB.id, Role.READER, TEAM, secret_id=in_project.id).secret_id == (
        in_project.id
    )
    assert grant(bindings, BOB.id, Role.READER, PROJECT, secret_id=in_project.id)
    for secret_id in (in_sibling.id, in_organization.id, uuid4()):
        with pytest.raises(InvalidInput) as caught:
            grant(bindings, BOB.id, Role.READER, TEAM, secret_id=secret_id)
        assert caught.value.details == {"field": "secret_id"}
    assert reads.read_value(BOB, in_project.id)
    with pytest.raises(NotFound):
        reads.read_value(BOB, in_sibling.id)


def test_a_binding_narrowed_to_a_glob_grants_matching_names_only(
    bindings: RoleBindingService, secrets: SecretService, writes: WriteService, reads: ReadService
) -> None:
    matching = create_secret(secrets, PROJECT, "DB_URL")
    other = create_secret(secrets, PROJECT, "API_KEY")

    grant(bindings, BOB.id, Role.EDITOR, TEAM, name_pattern="DB_*")

    writes.write_value(BOB, matching.id, SecretValue(b"bob's"))
    with pytest.raises(NotFound):
        reads.read_value(BOB, other.id)
    created = secrets.create_secret(BOB, NewSecret(PROJECT, "DB_HOST"), SecretValue(b"h"))
    assert created.created_by == BOB.id


# -- list -----------------------------------------------------------------------------------


@pytest.fixture
def granted(bindings: RoleBindingService) -> dict[str, object]:
    return {
        "bob-team": grant(bindings, BOB.id, Role.READER, TEAM),
        "bob-project": grant(bindings, BOB.id, Role.EDITOR, PROJECT),
        "ml-team": grant(bindings, "group:ml", Role.VIEWER, TEAM),
        "carol-team": grant(bindings, CAROL.id, Role.VIEWER, TEAM),
    }


def listed(bindings: RoleBindingService, actor: Principal, **query: object) -> set[tuple]:
    query = {"scope": None, "principal": None, **query}
    page = bindings.list_bindings(actor, query["scope"], query["principal"], PageRequest())  # type: ignore[arg-type]
    assert page.total == len(page.items)
    return {(b.principal, b.role.value, str(b.scope)) for b in page.items}


@pytest.mark.usefixtures("granted")
def test_admins_list_the_bindings_at_their_scope(bindings: RoleBindingService) -> None:
    assert listed(bindings, ALICE, scope=TEAM) == {
        (BOB.id, "reader", "team/t-1"),
        ("group:ml", "viewer", "team/t-1"),
        (CAROL.id, "viewer", "team/t-1"),
    }
    assert listed(bindings, ALICE, scope=TEAM, principal=BOB.id) == {(BOB.id, "reader", "team/t-1")}
    assert listed(bindings, ALICE, scope=ORGANIZATION) == {(ALICE.id, "admin", "organization/acme")}
    with pytest.raises(Forbidden):
        listed(bindings, BOB, scope=TEAM)
    with pytest.raises(NotFound):
        listed(bindings, BOB, scope=SIBLING)


@pytest.mark.usefixtures("granted")
def test_anyone_lists_their_own_bindings_and_their_groups(bindings: RoleBindingService) -> None:
    assert listed(bindings, BOB, principal=BOB.id) == {
        (BOB.id, "reader", "team/t-1"),
        (BOB.id, "editor", "project/p-42"),
    }
    assert listed(bindings, BOB, principal="group:ml") == {("group:ml", "viewer", "team/t-1")}
    for query in ({"principal": CAROL.id}, {}):
        with pytest.raises(InvalidInput):
            listed(bindings, BOB, **query)
    assert len(listed(bindings, ROOT)) == 5


# -- delete ---------------------------------------------------------------------------------


def test_an_admin_removes_a_binding(
    bindings: RoleBindingService, secrets: SecretService, granted: dict, reads: ReadService
) -> None:
    secret = create_secret(secrets)
    assert reads.read_value(BOB, secret.id)

    bindings.delete(ALICE, granted["bob-team"].id)
    bindings.delete(ALICE, granted["bob-project"].id)

    with pytest.raises(Forbidden):  # what his group still grants: listing only
        reads.read_value(BOB, secret.id)
    secrets.get_secret(BOB, secret.id)
    with pytest.raises(NotFound):
        bindings.delete(ALICE, granted["bob-team"].id)


def test_removing_a_binding_needs_admin_at_its_scope(
    bindings: RoleBindingService, db: FakeUnitOfWorkFactory, granted: dict
) -> None:
    binding_id = granted["carol-team"].id

    with pytest.raises(Forbidden):  # bob sees the team, but administers nothing
        bindings.delete(BOB, binding_id)
    with pytest.raises(NotFound, match=f"no role binding {binding_id}"):
        bindings.delete(Principal("user:dave", "user"), binding_id)
    with pytest.raises(NotFound):
        bindings.delete(ALICE, uuid4())
    with db() as uow:
        assert uow.bindings.get(binding_id) is not None


# -- readers --------------------------------------------------------------------------------


def test_readers_are_exactly_those_who_can_read_the_value(
    bindings: RoleBindingService,
    secrets: SecretService,
    db: FakeUnitOfWorkFactory,
    reads: ReadService,
) -> None:
    secret = create_secret(secrets, PROJECT, "DB_URL")
    other = create_secret(secrets, PROJECT, "OTHER")
    expected = {
        (ALICE.id, "admin", "admin at organization/acme"),
        (BOB.id, "reader", "reader at team/t-1"),
        ("group:ml", "editor", "editor at project/p-42"),
        ("user:dave", "reader", "reader at project/p-42"),
        ("user:erin", "reader", "reader at team/t-1"),
    }
    grant(bindings, BOB.id, Role.READER, TEAM)
    grant(bindings, "group:ml", Role.EDITOR, PROJECT, name_pattern="DB_*")
    grant(bindings, "user:dave", Role.READER, PROJECT, secret_id=secret.id)
    grant(bindings, "user:erin", Role.READER, TEAM, expires_at=NOW + timedelta(days=1))
    # and those who cannot read it
    grant(bindings, CAROL.id, Role.VIEWER, GLOBAL, actor=ROOT)
    grant(bindings, "user:frank", Role.AUDITOR, ORGANIZATION)
    grant(bindings, "user:grace", Role.ADMIN, SIBLING)
    grant(bindings, "user:heidi", Role.READER, PROJECT, name_pattern="API_*")
    grant(bindings, "user:ivan", Role.READER, PROJECT, secret_id=other.id)
    db.database.grant("user:judy", Role.READER, TEAM, expires_at=NOW)

    readers = bindings.readers(ALICE, secret.id)

    assert {(r.principal, r.role.value, r.via) for r in readers} == expected
    assert all(r.binding is not None and r.binding.role == r.role for r in readers)
    for principal, _role, _via in expected:
        reader = Principal(principal, "group" if principal.startswith("group") else "user")
        if reader.kind == "group":  # a member of the group
            reader = Principal("user:member", "user", groups=(principal,))
        assert reads.read_value(reader, secret.id).value.reveal() == b"value"
    for outsider in ("user:carol", "user:frank", "user:grace", "user:heidi", "user:ivan"):
        with pytest.raises((NotFound, Forbidden)):
            reads.read_value(Principal(outsider, "user"), secret.id)


def test_readers_of_a_personal_secret_is_its_owner(
    bindings: RoleBindingService, secrets: SecretService
) -> None:
    secret = secrets.create_secret(
        ALICE, NewSecret(ScopeRef(ScopeType.USER, "alice"), "MINE"), SecretValue(b"mine")
    )

    [reader] = bindings.readers(ALICE, secret.id)

    assert (reader.principal, reader.role, reader.binding) == (ALICE.id, None, None)
    with pytest.raises(NotFound):
        bindings.readers(ROOT, secret.id)


def test_asking_who_reads_a_secret_needs_audit_access(
    bindings: RoleBindingService, secrets: SecretService
) -> None:
    secret = create_secret(secrets)
    grant(bindings, BOB.id, Role.AUDITOR, TEAM)
    grant(bindings, CAROL.id, Role.READER, TEAM)

    assert [r.principal for r in bindings.readers(BOB, secret.id)] == [ALICE.id, CAROL.id]
    with pytest.raises(Forbidden):
        bindings.readers(CAROL, secret.id)
    with pytest.raises(NotFound):
        bindings.readers(Principal("user:dave", "user"), secret.id)
    with pytest.raises(NotFound):
        bindings.readers(ALICE, uuid4())


# -- the audit trail ------------------------------------------------------------------------


def test_each_binding_use_case_records_one_event(
    bindings: RoleBindingService, secrets: SecretService, db: FakeUnitOfWorkFactory
) -> None:
    secret = create_secret(secrets)
    team_path = db.database.tables.scopes[TEAM].path

    with recorded(db) as events:
        binding = grant(bindings, BOB.id, Role.READER, TEAM)
        bindings.list_bindings(ALICE, TEAM, None, PageRequest())
        bindings.readers(ALICE, secret.id)
        bindings.delete(ALICE, binding.id)

    assert [(e.action, e.resource, e.scope, e.outcome) for e in events] == [
        ("binding.create", f"binding:{binding.id}", "team/t-1", "success"),
        ("binding.list", "bindings", "team/t-1", "success"),
        ("secret.access_report", f"secret:{secret.id}", "project/p-42", "success"),
        ("binding.delete", f"binding:{binding.id}", "team/t-1", "success"),
    ]
    granted = {"principal": BOB.id, "role": "reader"}
    assert (events[0].scope_path, events[0].details) == (team_path, granted)
    assert (events[3].scope_path, events[3].details) == (team_path, granted)
    assert events[2].scope_path == secret.scope_path
    assert {e.actor for e in events} == {ALICE.id}


def test_refused_grants_are_recorded(
    bindings: RoleBindingService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.grant(BOB.id, Role.EDITOR, ORGANIZATION)

    with recorded(db) as events:
        with pytest.raises(Forbidden):  # bob cannot grant himself more
            grant(bindings, BOB.id, Role.ADMIN, ORGANIZATION, actor=BOB)
        with pytest.raises(NotFound):
            grant(bindings, CAROL.id, Role.ADMIN, TEAM, actor=CAROL)

    assert [(e.actor, e.action, e.outcome, e.reason, e.details) for e in events] == [
        (BOB.id, "binding.create", "denied", "forbidden", {"principal": BOB.id, "role": "admin"}),
        (
            CAROL.id,
            "binding.create",
            "not_found",
            "not_found",
            {"principal": CAROL.id, "role": "admin"},
        ),
    ]
