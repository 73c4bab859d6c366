"""The scope hierarchy on the fakes: registering, listing and deleting scopes, and scopes
created on first use when a secret is written to them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.errors import BackendUnavailable, Conflict, Forbidden, InvalidInput, NotFound
from core.domain.paging import PageRequest
from core.domain.scopes import Scope
from core.domain.secrets import Secret, SecretFilter
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.policy import SecretPolicy, ValueChecksum
from core.scopes import ScopeService
from core.secrets import NewSecret, SecretService
from core.service_accounts import ServiceAccountService
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
ALICE = Principal("user:alice", "user")
BOB = Principal("user:bob", "user")
GLOBAL = ScopeRef.global_scope()
ORGANIZATION = ScopeRef(ScopeType.ORGANIZATION, "acme")
TEAM = ScopeRef(ScopeType.TEAM, "t-1")
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
ALICES = ScopeRef(ScopeType.USER, "alice")


def ref(scope_type: str, scope_id: str) -> ScopeRef:
    return ScopeRef(ScopeType(scope_type), scope_id)


@pytest.fixture
def db() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory(FakeDatabase())


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def scopes(db: FakeUnitOfWorkFactory, clock: FixedClock) -> ScopeService:
    return ScopeService(db, clock, make_audit_trail(db, clock))


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend("memory")


@pytest.fixture
def secrets(
    db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend
) -> SecretService:
    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    return SecretService(
        db, registry, clock, ValueChecksum(b"k" * 32), SecretPolicy(), make_audit_trail(db, clock)
    )


@pytest.fixture
def acme(scopes: ScopeService) -> dict[str, Scope]:
    """global → organization acme → team t-1 → project p-42, registered by the root."""
    return {
        "organization": scopes.register(ROOT, ORGANIZATION, GLOBAL),
        "team": scopes.register(ROOT, TEAM, ORGANIZATION),
        "project": scopes.register(ROOT, PROJECT, TEAM),
    }


def write(
    secrets: SecretService,
    actor: Principal,
    scope: ScopeRef,
    name: str = "KEY",
    parent: ScopeRef | None = None,
) -> Secret:
    return secrets.create_secret(actor, NewSecret(scope, name, parent=parent), SecretValue(b"v"))


# -- the hierarchy --------------------------------------------------------------------------

VALID_PARENTS = [
    (("organization", "o"), ("global", "global")),
    (("team", "t"), ("organization", "acme")),
    (("project", "p"), ("team", "t-1")),
    (("project", "p"), ("organization", "acme")),
    (("user", "u"), ("global", "global")),
]
INVALID_PARENTS = [
    (("organization", "o"), ("organization", "acme")),
    (("organization", "o"), ("team", "t-1")),
    (("team", "t"), ("global", "global")),
    (("team", "t"), ("team", "t-1")),
    (("team", "t"), ("project", "p-42")),
    (("project", "p"), ("global", "global")),
    (("project", "p"), ("project", "p-42")),
    (("user", "u"), ("organization", "acme")),
    (("user", "u"), ("project", "p-42")),
    (("global", "global"), ("global", "global")),
]


@pytest.mark.parametrize(("child", "parent"), VALID_PARENTS)
@pytest.mark.usefixtures("acme")
def test_a_scope_is_registered_below_a_parent_of_the_right_type(
    scopes: ScopeService, child: tuple[str, str], parent: tuple[str, str]
) -> None:
    actor = Principal("user:u", "user") if child[0] == "user" else ROOT
    parent_scope = scopes.get(ROOT, ref(*parent))

    scope = scopes.register(actor, ref(*child), ref(*parent))

    assert scope.parent_pk == parent_scope.pk
    assert scope.path == f"{parent_scope.path}{scope.pk}/"
    assert scopes.get(actor, ref(*child)) == scope


@pytest.mark.parametrize(("child", "parent"), INVALID_PARENTS)
@pytest.mark.usefixtures("acme")
def test_a_scope_below_a_parent_of_the_wrong_type_is_refused(
    scopes: ScopeService, db: FakeUnitOfWorkFactory, child: tuple[str, str], parent: tuple[str, str]
) -> None:
    committed = db.committed

    with pytest.raises(InvalidInput) as caught:
        scopes.register(ROOT, ref(*child), ref(*parent))

    assert caught.value.details == {"field": "parent"}
    assert db.committed == committed


def test_the_global_scope_is_the_root_of_every_path(
    scopes: ScopeService, acme: dict[str, Scope]
) -> None:
    root = scopes.get(ROOT, GLOBAL)

    assert (root.pk, root.path, root.parent_pk) == (1, "/1/", None)
    organization, team, project = acme["organization"], acme["team"], acme["project"]
    assert organization.path == f"/1/{organization.pk}/"
    assert team.path == f"{organization.path}{team.pk}/"
    assert project.path == f"{team.path}{project.pk}/"


def test_registering_an_existing_scope_is_a_conflict(
    scopes: ScopeService, acme: dict[str, Scope]
) -> None:
    with pytest.raises(Conflict):
        scopes.register(ROOT, TEAM, ORGANIZATION)
    assert scopes.get(ROOT, TEAM) == acme["team"]


def test_registering_below_an_unknown_parent(scopes: ScopeService) -> None:
    with pytest.raises(NotFound, match="organization/nowhere"):
        scopes.register(ROOT, TEAM, ref("organization", "nowhere"))


@pytest.mark.parametrize(
    ("scope", "parent"),
    [(ref("team", "-bad"), ORGANIZATION), (TEAM, ref("organization", "a b"))],
)
def test_registering_with_an_invalid_id(
    scopes: ScopeService, scope: ScopeRef, parent: ScopeRef
) -> None:
    with pytest.raises(InvalidInput):
        scopes.register(ROOT, scope, parent)


# -- who may register -----------------------------------------------------------------------


@pytest.mark.usefixtures("acme")
def test_registering_needs_admin_at_the_parent_or_above(
    scopes: ScopeService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.grant(ALICE.id, Role.ADMIN, ORGANIZATION)
    db.database.grant(BOB.id, Role.EDITOR, ORGANIZATION)
    carol = Principal("user:carol", "user")

    scopes.register(ALICE, ref("team", "t-2"), ORGANIZATION)
    scopes.register(ALICE, ref("project", "p-9"), TEAM)  # admin at the grandparent
    with pytest.raises(Forbidden):
        scopes.register(BOB, ref("team", "t-3"), ORGANIZATION)
    with pytest.raises(NotFound, match="organization/acme"):  # as if there were no parent
        scopes.register(carol, ref("team", "t-3"), ORGANIZATION)
    with pytest.raises(NotFound):  # nor may Alice go above her binding
        scopes.register(ALICE, ref("organization", "other"), GLOBAL)


@pytest.mark.usefixtures("acme")
def test_a_user_registers_their_own_personal_scope_only(scopes: ScopeService) -> None:
    mine = scopes.register(ALICE, ALICES, GLOBAL)

    assert mine.path == f"/1/{mine.pk}/"
    for other in (BOB, ROOT):
        with pytest.raises(NotFound):
            scopes.register(other, ref("user", "carol"), GLOBAL)
        with pytest.raises(NotFound):
            scopes.get(other, ALICES)


# -- get and list ---------------------------------------------------------------------------


@pytest.mark.usefixtures("acme")
def test_getting_a_scope_needs_access_to_it(
    scopes: ScopeService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.grant(ALICE.id, Role.VIEWER, TEAM)
    db.database.grant(BOB.id, Role.ADMIN, TEAM, name_pattern="*")

    assert scopes.get(ALICE, PROJECT).ref == PROJECT
    for actor, scope in [(ALICE, ORGANIZATION), (BOB, TEAM), (BOB, PROJECT)]:
        # a binding narrowed to secrets does not reveal the scope
        with pytest.raises(NotFound, match=f"no scope {scope}"):
            scopes.get(actor, scope)
    with pytest.raises(NotFound, match="no scope team/t-404"):
        scopes.get(ROOT, ref("team", "t-404"))


@pytest.mark.usefixtures("acme")
def test_listing_scopes_shows_what_the_caller_may_see(
    scopes: ScopeService, db: FakeUnitOfWorkFactory
) -> None:
    scopes.register(ALICE, ALICES, GLOBAL)
    scopes.register(BOB, ref("user", "bob"), GLOBAL)
    scopes.register(ROOT, ref("team", "t-2"), ORGANIZATION)
    db.database.grant(ALICE.id, Role.VIEWER, TEAM)
    db.database.grant(ALICE.id, Role.ADMIN, GLOBAL, expires_at=NOW)

    def listed(actor: Principal, scope_type: ScopeType | None = None) -> list[str]:
        page = scopes.list_scopes(actor, scope_type, PageRequest())
        assert page.total == len(page.items)
        return [str(scope.ref) for scope in page.items]

    assert listed(ALICE) == ["project/p-42", "team/t-1", "user/alice"]
    assert listed(ALICE, ScopeType.TEAM) == ["team/t-1"]
    assert listed(ROOT) == [
        "global/global",
        "organization/acme",
        "project/p-42",
        "team/t-1",
        "team/t-2",
    ]
    assert listed(Principal("user:carol", "user")) == []


@pytest.mark.usefixtures("acme")
def test_listing_scopes_paginates(scopes: ScopeService) -> None:
    pages = [scopes.list_scopes(ROOT, None, PageRequest(page=n, page_size=3)) for n in (1, 2)]

    assert [len(page.items) for page in pages] == [3, 1]
    assert {page.total for page in pages} == {4}


# -- delete ---------------------------------------------------------------------------------


def test_an_empty_scope_is_deleted_with_its_bindings(
    scopes: ScopeService, db: FakeUnitOfWorkFactory, acme: dict[str, Scope]
) -> None:
    db.database.grant(ALICE.id, Role.ADMIN, TEAM)
    db.database.grant(BOB.id, Role.READER, PROJECT)

    scopes.delete(ALICE, PROJECT)

    with pytest.raises(NotFound):
        scopes.get(ROOT, PROJECT)
    with db() as uow:
        assert [b.principal for b in uow.bindings.search(None, None, PageRequest()).items] == [
            ALICE.id
        ]
        assert uow.scopes.usage(acme["team"]).children == 0


def test_a_scope_with_child_scopes_is_not_deleted(
    scopes: ScopeService, acme: dict[str, Scope]
) -> None:
    with pytest.raises(Conflict) as caught:
        scopes.delete(ROOT, TEAM)

    assert caught.value.details == {"children": 1, "secrets": 0, "service_accounts": 0}
    assert scopes.get(ROOT, TEAM) == acme["team"]


@pytest.mark.usefixtures("acme")
def test_a_scope_with_secrets_is_not_deleted_even_soft_deleted_ones(
    scopes: ScopeService, secrets: SecretService
) -> None:
    live, gone = write(secrets, ROOT, PROJECT, "LIVE"), write(secrets, ROOT, PROJECT, "GONE")
    secrets.delete_secret(ROOT, gone.id)

    with pytest.raises(Conflict) as caught:
        scopes.delete(ROOT, PROJECT)
    assert caught.value.details == {"children": 0, "secrets": 2, "service_accounts": 0}

    secrets.delete_secret(ROOT, live.id)
    with pytest.raises(Conflict) as caught:
        scopes.delete(ROOT, PROJECT)
    assert caught.value.details["secrets"] == 2

    for secret in (live, gone):
        secrets.purge_secret(ROOT, secret.id)
    scopes.delete(ROOT, PROJECT)
    with pytest.raises(NotFound):
        scopes.get(ROOT, PROJECT)


@pytest.mark.usefixtures("acme")
def test_a_scope_with_service_accounts_is_not_deleted(
    scopes: ScopeService, db: FakeUnitOfWorkFactory, clock: FixedClock
) -> None:
    accounts = ServiceAccountService(db, clock, make_audit_trail(db, clock))
    account = accounts.create(ROOT, "deployer", PROJECT)

    with pytest.raises(Conflict) as caught:
        scopes.delete(ROOT, PROJECT)

    assert caught.value.details == {"children": 0, "secrets": 0, "service_accounts": 1}
    accounts.delete(ROOT, account.id)
    scopes.delete(ROOT, PROJECT)


@pytest.mark.usefixtures("acme")
def test_deleting_needs_admin_at_the_scope(scopes: ScopeService, db: FakeUnitOfWorkFactory) -> None:
    db.database.grant(ALICE.id, Role.EDITOR, TEAM)

    with pytest.raises(Forbidden):
        scopes.delete(ALICE, PROJECT)
    with pytest.raises(NotFound):
        scopes.delete(BOB, PROJECT)
    with pytest.raises(NotFound):
        scopes.delete(ROOT, ref("project", "p-404"))
    assert scopes.get(ROOT, PROJECT).ref == PROJECT


def test_the_global_scope_cannot_be_deleted(scopes: ScopeService) -> None:
    with pytest.raises(Conflict):
        scopes.delete(ROOT, GLOBAL)
    assert scopes.get(ROOT, GLOBAL).path == "/1/"


def test_a_user_deletes_their_own_empty_personal_scope(scopes: ScopeService) -> None:
    scopes.register(ALICE, ALICES, GLOBAL)

    with pytest.raises(NotFound):
        scopes.delete(ROOT, ALICES)
    scopes.delete(ALICE, ALICES)
    with pytest.raises(NotFound):
        scopes.get(ALICE, ALICES)


# -- created on first use -------------------------------------------------------------------


@pytest.mark.usefixtures("acme")
def test_a_secret_written_to_a_new_scope_creates_it_below_the_parent_named(
    secrets: SecretService, scopes: ScopeService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.grant(ALICE.id, Role.ADMIN, TEAM)
    new_project = ref("project", "p-new")

    write(secrets, ALICE, new_project, parent=TEAM)

    created = scopes.get(ALICE, new_project)
    assert created.parent_pk == scopes.get(ROOT, TEAM).pk
    assert secrets.find_secret(ALICE, new_project, "KEY", None).scope_path == created.path


@pytest.mark.usefixtures("acme")
def test_a_new_scope_needs_a_valid_existing_parent(
    secrets: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend
) -> None:
    new_project = ref("project", "p-new")
    with pytest.raises(NotFound, match="name its parent"):
        write(secrets, ROOT, new_project)
    with pytest.raises(InvalidInput):
        write(secrets, ROOT, new_project, parent=GLOBAL)
    with pytest.raises(NotFound, match="team/t-404"):
        write(secrets, ROOT, new_project, parent=ref("team", "t-404"))

    assert backend.values == {}
    with db() as uow:
        assert uow.scopes.get(new_project) is None


@pytest.mark.usefixtures("acme")
@pytest.mark.parametrize("role", [Role.VIEWER, Role.READER, Role.EDITOR])
def test_a_new_scope_takes_an_admin_of_the_parent_whatever_the_path(
    secrets: SecretService, scopes: ScopeService, db: FakeUnitOfWorkFactory, role: Role
) -> None:
    """An editor writes secrets where it may, but claims no scope id: on first use as on
    registration, creating a scope takes the admin role at its parent."""
    db.database.grant(ALICE.id, role, TEAM)
    db.database.grant(ALICE.id, Role.ADMIN, TEAM, name_pattern="*")  # narrowed: not the scope

    for attempt in (
        lambda: write(secrets, ALICE, ref("project", "p-new"), parent=TEAM),
        lambda: scopes.register(ALICE, ref("project", "p-new"), TEAM),
    ):
        with pytest.raises(Forbidden, match="may not create scope project/p-new below team/t-1"):
            attempt()
    with pytest.raises(NotFound, match="no scope organization/acme"):  # it cannot see the org
        write(secrets, ALICE, ref("team", "t-new"), parent=ORGANIZATION)
    with db() as uow:
        assert uow.scopes.get(ref("project", "p-new")) is None
        assert uow.scopes.get(ref("team", "t-new")) is None


def test_an_id_taken_where_the_caller_cannot_see_is_answered_as_a_scope_it_may_not_create(
    secrets: SecretService, scopes: ScopeService, db: FakeUnitOfWorkFactory
) -> None:
    """Tenant B may create below its organization; p-99 exists below tenant A's. Whatever
    path B takes, the answer is the one it gets for a scope it may not create: no 409 that
    confirms the id, no secret of B's in A's project."""
    tenant_a, tenant_b = ref("organization", "tenant-a"), ref("organization", "tenant-b")
    for tenant in (tenant_a, tenant_b):
        scopes.register(ROOT, tenant, GLOBAL)
    scopes.register(ROOT, ref("project", "p-99"), tenant_a)
    db.database.grant(BOB.id, Role.ADMIN, tenant_b)
    refused = "may not create scope project/p-99 below organization/tenant-b"

    with pytest.raises(Forbidden, match=refused):
        scopes.register(BOB, ref("project", "p-99"), tenant_b)
    with pytest.raises(Forbidden, match=refused):
        write(secrets, BOB, ref("project", "p-99"), parent=tenant_b)
    with pytest.raises(NotFound, match="no scope project/p-99; name its parent"):
        write(secrets, BOB, ref("project", "p-99"))  # as for an id that is free
    with pytest.raises(NotFound, match="no scope project/p-free; name its parent"):
        write(secrets, BOB, ref("project", "p-free"))
    # whoever sees the scope is told the truth
    with pytest.raises(Conflict, match="exists already"):
        scopes.register(ROOT, ref("project", "p-99"), tenant_b)
    with pytest.raises(Conflict, match="below another parent"):
        write(secrets, ROOT, ref("project", "p-99"), parent=tenant_b)
    assert secrets.list_secrets(ROOT, SecretFilter(), PageRequest()).total == 0


def test_a_users_personal_scope_is_created_on_their_first_secret(
    secrets: SecretService, scopes: ScopeService
) -> None:
    write(secrets, ALICE, ALICES)  # no parent named, no binding needed

    mine = scopes.get(ALICE, ALICES)
    assert mine.parent_pk == scopes.get(ROOT, GLOBAL).pk
    assert [s.name for s in secrets.list_secrets(ALICE, SecretFilter(), PageRequest()).items] == [
        "KEY"
    ]


def test_nobody_creates_someone_elses_personal_scope(
    secrets: SecretService, db: FakeUnitOfWorkFactory
) -> None:
    for actor in (BOB, ROOT):
        with pytest.raises(NotFound):
            write(secrets, actor, ALICES)
        with pytest.raises(NotFound):
            write(secrets, actor, ALICES, parent=GLOBAL)
    with db() as uow:
        assert uow.scopes.get(ALICES) is None


def test_a_failed_first_write_creates_no_scope(
    secrets: SecretService, db: FakeUnitOfWorkFactory, backend: InMemoryBackend
) -> None:
    backend.down = True

    with pytest.raises(BackendUnavailable):
        write(secrets, ALICE, ALICES)

    with db() as uow:
        assert uow.scopes.get(ALICES) is None


# -- the audit trail ------------------------------------------------------------------------


def test_each_scope_use_case_records_one_event(
    scopes: ScopeService, db: FakeUnitOfWorkFactory, acme: dict[str, Scope]
) -> None:
    new = ref("project", "p-new")
    with recorded(db) as events:
        created = scopes.register(ROOT, new, TEAM)
        scopes.get(ROOT, new)
        scopes.list_scopes(ROOT, ScopeType.PROJECT, PageRequest())
        scopes.delete(ROOT, new)

    assert [(e.action, e.resource, e.scope, e.scope_path, e.outcome) for e in events] == [
        ("scope.create", "scope:project/p-new", "project/p-new", created.path, "success"),
        ("scope.read", "scope:project/p-new", "project/p-new", created.path, "success"),
        ("scope.list", "scopes", None, None, "success"),
        ("scope.delete", "scope:project/p-new", "project/p-new", created.path, "success"),
    ]
    assert events[0].details == {"parent": "team/t-1"}
    assert events[2].details == {"total": 2}
    assert {(e.actor, e.actor_type) for e in events} == {("root", "root")}


@pytest.mark.usefixtures("acme")
def test_refused_scope_changes_are_recorded(
    scopes: ScopeService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.grant(BOB.id, Role.EDITOR, ORGANIZATION)

    with recorded(db) as events:
        with pytest.raises(Forbidden):
            scopes.register(BOB, ref("team", "t-3"), ORGANIZATION)
        with pytest.raises(Forbidden):
            scopes.delete(BOB, PROJECT)
        with pytest.raises(NotFound):
            scopes.delete(ALICE, PROJECT)
        with pytest.raises(Conflict):
            scopes.delete(ROOT, TEAM)

    assert [(e.actor, e.action, e.outcome, e.reason) for e in events] == [
        (BOB.id, "scope.create", "denied", "forbidden"),
        (BOB.id, "scope.delete", "denied", "forbidden"),
        (ALICE.id, "scope.delete", "not_found", "not_found"),
        (ROOT.id, "scope.delete", "error", "conflict"),
    ]
    assert db.database.tables.scopes.keys() == {GLOBAL, ORGANIZATION, TEAM, PROJECT}
