"""The access rules of core.access: what each role allows, what a binding covers, who is told
that a secret does not exist and who that it is forbidden."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from core.access import (
    access_query,
    allowed,
    authorize,
    check_name_pattern,
    check_principal,
    confirm_caller,
    require,
)
from core.domain.access import (
    ROLE_ACTIONS,
    AccessQuery,
    Action,
    Role,
    RoleBinding,
    Target,
    roles_granting,
)
from core.domain.accounts import ApiToken, ServiceAccount
from core.domain.callers import Caller
from core.domain.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from core.domain.values import Principal, ScopeRef, ScopeType
from tests.fakes import FakeDatabase, FakeUnitOfWork, visible

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
ALICE = Principal("user:alice", "user", groups=("group:ml", "group:eu"))
ROOT = Principal("root", "root", is_root=True)

# global /1/ → organization acme /1/2/ → team t-1 /1/2/3/ → project p-42 /1/2/3/4/,
# with a sibling team t-2 /1/2/5/ and alice's personal scope /1/6/.
GLOBAL = (ScopeRef.global_scope(), "/1/")
ORGANIZATION = (ScopeRef(ScopeType.ORGANIZATION, "acme"), "/1/2/")
TEAM = (ScopeRef(ScopeType.TEAM, "t-1"), "/1/2/3/")
PROJECT = (ScopeRef(ScopeType.PROJECT, "p-42"), "/1/2/3/4/")
SIBLING = (ScopeRef(ScopeType.TEAM, "t-2"), "/1/2/5/")
ALICES = (ScopeRef(ScopeType.USER, "alice"), "/1/6/")
HIERARCHY = {"global": GLOBAL, "organization": ORGANIZATION, "team": TEAM, "project": PROJECT}


def binding(
    role: Role = Role.READER,
    at: tuple[ScopeRef, str] = TEAM,
    principal: str = "user:alice",
    **narrowing: object,
) -> RoleBinding:
    scope, path = at
    return RoleBinding(
        id=uuid.uuid4(),
        principal=principal,
        role=role,
        scope=scope,
        scope_path=path,
        created_at=NOW - timedelta(days=1),
        created_by="user:admin",
        **narrowing,  # type: ignore[arg-type]
    )


def secret_in(
    at: tuple[ScopeRef, str], name: str = "OPENAI_API_KEY", secret_id: UUID | None = None
) -> Target:
    scope, path = at
    return Target(scope, path, secret_id=secret_id or uuid.uuid4(), name=name)


def scope_target(at: tuple[ScopeRef, str]) -> Target:
    return Target(*at)


# -- roles ----------------------------------------------------------------------------------

# SPEC §7: list + metadata | read values | write | purge, bindings, export, backends | audit
SPEC_TABLE = {
    Role.VIEWER: (True, False, False, False, False),
    Role.READER: (True, True, False, False, False),
    Role.EDITOR: (True, True, True, False, False),
    Role.ADMIN: (True, True, True, True, True),
    Role.AUDITOR: (True, False, False, False, True),
}
SPEC_COLUMNS = (Action.LIST, Action.READ_VALUE, Action.WRITE, Action.ADMIN, Action.AUDIT)


def test_the_role_matrix_is_the_specifications_table() -> None:
    assert set(ROLE_ACTIONS) == set(Role) == set(SPEC_TABLE)
    assert set(SPEC_COLUMNS) == set(Action)
    for role, row in SPEC_TABLE.items():
        assert ROLE_ACTIONS[role] == {a for a, yes in zip(SPEC_COLUMNS, row, strict=True) if yes}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", SPEC_COLUMNS)
def test_a_binding_allows_exactly_what_its_role_allows(role: Role, action: Action) -> None:
    expected = SPEC_TABLE[role][SPEC_COLUMNS.index(action)]

    assert allowed(ALICE, action, secret_in(PROJECT), [binding(role)], NOW) is expected
    assert (role in roles_granting(action)) is expected


def test_roles_granting_each_action() -> None:
    assert roles_granting(Action.LIST) == frozenset(Role)
    assert roles_granting(Action.READ_VALUE) == {Role.READER, Role.EDITOR, Role.ADMIN}
    assert roles_granting(Action.WRITE) == {Role.EDITOR, Role.ADMIN}
    assert roles_granting(Action.ADMIN) == {Role.ADMIN}
    assert roles_granting(Action.AUDIT) == {Role.ADMIN, Role.AUDITOR}


def test_deny_by_default() -> None:
    for action in Action:
        assert not allowed(ALICE, action, secret_in(PROJECT), [], NOW)
        assert not allowed(ALICE, action, scope_target(GLOBAL), [], NOW)


# -- where a binding applies ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bound_at", "covered"),
    [
        ("global", {"global", "organization", "team", "project"}),
        ("organization", {"organization", "team", "project"}),
        ("team", {"team", "project"}),
        ("project", {"project"}),
    ],
)
def test_a_binding_covers_its_scope_and_below_never_above(bound_at: str, covered: set[str]) -> None:
    grant = binding(at=HIERARCHY[bound_at])

    for name, at in HIERARCHY.items():
        assert grant.covers(secret_in(at)) is (name in covered), name
        assert grant.covers(scope_target(at)) is (name in covered), name


def test_a_binding_does_not_cover_a_sibling_or_a_key_that_merely_starts_alike() -> None:
    grant = binding(at=TEAM)  # /1/2/3/
    look_alike = (ScopeRef(ScopeType.TEAM, "t-33"), "/1/2/33/")

    assert not grant.covers(secret_in(SIBLING))
    assert not grant.covers(secret_in(look_alike))
    assert not allowed(ALICE, Action.LIST, secret_in(SIBLING), [grant], NOW)


def test_a_binding_narrowed_to_a_secret_covers_that_secret_only() -> None:
    secret_id = uuid.uuid4()
    grant = binding(at=TEAM, secret_id=secret_id)

    assert grant.narrowed
    assert grant.covers(secret_in(PROJECT, secret_id=secret_id))
    assert not grant.covers(secret_in(PROJECT))  # another secret in the same scope
    assert not grant.covers(scope_target(PROJECT))  # the scope itself
    assert not grant.covers(Target(PROJECT[0], PROJECT[1], name="OPENAI_API_KEY"))  # a new one


@pytest.mark.parametrize(
    ("pattern", "name", "covered"),
    [
        ("OPENAI_*", "OPENAI_API_KEY", True),
        ("OPENAI_*", "OPENAI_", True),  # * matches nothing too
        ("OPENAI_*", "openai_api_key", False),  # case-sensitive, as names are
        ("OPENAI_*", "MY_OPENAI_KEY", False),  # anchored at the start
        ("*_KEY", "OPENAI_API_KEY", True),
        ("*_KEY", "OPENAI_API_KEYS", False),  # and at the end
        ("DB_?", "DB_1", True),
        ("DB_?", "DB_12", False),  # ? is exactly one character
        ("DB_?", "DB_", False),
        ("DB?URL", "DB_URL", True),
        ("DB_URL", "DBXURL", False),  # _ is literal
        ("a.b-c", "a.b-c", True),
        ("a.b-c", "aXb-c", False),  # . is literal
        ("*", "ANYTHING", True),
    ],
)
def test_a_binding_narrowed_to_a_name_glob(pattern: str, name: str, covered: bool) -> None:
    grant = binding(at=TEAM, name_pattern=pattern)

    assert grant.covers(secret_in(PROJECT, name)) is covered
    assert grant.covers(Target(PROJECT[0], PROJECT[1], name=name)) is covered  # before creation
    assert not grant.covers(scope_target(PROJECT))
    assert not grant.covers(secret_in(SIBLING, name))


def test_a_binding_narrowed_both_ways_needs_both() -> None:
    secret_id = uuid.uuid4()
    grant = binding(secret_id=secret_id, name_pattern="DB_*")

    assert grant.covers(secret_in(PROJECT, "DB_URL", secret_id))
    assert not grant.covers(secret_in(PROJECT, "API_KEY", secret_id))
    assert not grant.covers(secret_in(PROJECT, "DB_URL"))


def test_a_binding_is_active_until_it_expires() -> None:
    expires_at = NOW + timedelta(hours=1)
    grant = binding(expires_at=expires_at)
    target = secret_in(PROJECT)

    assert grant.active(expires_at - timedelta(microseconds=1))
    assert allowed(ALICE, Action.READ_VALUE, target, [grant], expires_at - timedelta(seconds=1))
    assert not grant.active(expires_at)
    assert not allowed(ALICE, Action.READ_VALUE, target, [grant], expires_at)
    assert binding().active(datetime(9999, 1, 1, tzinfo=UTC))


def test_a_binding_counts_for_the_principal_it_names_and_its_groups_members() -> None:
    target = secret_in(PROJECT)
    to_group = binding(principal="group:ml")
    to_bob = binding(principal="user:bob")
    outsider = Principal("user:carol", "user", groups=("group:ops",))

    assert ALICE.identities == ("user:alice", "group:ml", "group:eu")
    assert allowed(ALICE, Action.READ_VALUE, target, [to_group], NOW)
    assert not allowed(ALICE, Action.READ_VALUE, target, [to_bob], NOW)
    assert not allowed(outsider, Action.LIST, target, [to_group, to_bob], NOW)
    # a user whose id looks like a group's is not its member
    assert not allowed(Principal("user:ml", "user"), Action.LIST, target, [to_group], NOW)


def test_the_strongest_of_several_bindings_decides() -> None:
    bindings = [binding(Role.VIEWER, GLOBAL), binding(Role.EDITOR, PROJECT, name_pattern="DB_*")]

    assert allowed(ALICE, Action.WRITE, secret_in(PROJECT, "DB_URL"), bindings, NOW)
    assert not allowed(ALICE, Action.WRITE, secret_in(PROJECT, "API_KEY"), bindings, NOW)
    assert allowed(ALICE, Action.LIST, secret_in(PROJECT, "API_KEY"), bindings, NOW)


# -- personal scopes and the development root -----------------------------------------------


@pytest.mark.parametrize("action", list(Action))
def test_a_personal_scope_is_its_owners_alone(action: Action) -> None:
    target = secret_in(ALICES)
    everything = [binding(Role.ADMIN, GLOBAL, principal=p) for p in ("user:bob", "user:alice")]

    assert allowed(ALICE, action, target, [], NOW)
    assert allowed(ALICE, action, scope_target(ALICES), [], NOW)
    assert not allowed(Principal("user:bob", "user"), action, target, everything, NOW)
    assert not allowed(ROOT, action, target, everything, NOW)
    assert not allowed(Principal("user:root", "user", is_root=True), action, target, [], NOW)
    # bindings never reach into it, even narrowed to the very secret
    narrowed = binding(Role.ADMIN, ALICES, principal="user:bob", secret_id=target.secret_id)
    assert not allowed(Principal("user:bob", "user"), action, target, [narrowed], NOW)


def test_a_service_account_has_no_personal_scope() -> None:
    service = Principal("service:ci", "service")

    assert service.user_id is None
    assert not allowed(
        service, Action.LIST, secret_in((ScopeRef(ScopeType.USER, "ci"), "/1/9/")), [], NOW
    )


@pytest.mark.parametrize("action", list(Action))
def test_the_root_may_do_everything_in_shared_scopes(action: Action) -> None:
    for at in (*HIERARCHY.values(), SIBLING):
        assert allowed(ROOT, action, secret_in(at), [], NOW)
        assert allowed(ROOT, action, scope_target(at), [], NOW)


# -- require: not found or forbidden ----------------------------------------------------------


def test_require_passes_what_is_allowed() -> None:
    require(ALICE, Action.WRITE, secret_in(PROJECT), [binding(Role.EDITOR)], NOW)


def test_require_says_not_found_to_a_caller_who_cannot_even_list() -> None:
    target = secret_in(PROJECT)
    unrelated = [binding(Role.ADMIN, SIBLING), binding(Role.ADMIN, PROJECT, principal="user:bob")]

    for action in Action:
        with pytest.raises(NotFound) as caught:
            require(ALICE, action, target, unrelated, NOW)
        assert caught.value.message == f"no secret {target.secret_id}"


def test_require_says_forbidden_to_a_caller_who_can_list_but_not_act() -> None:
    target = secret_in(PROJECT)

    with pytest.raises(Forbidden) as caught:
        require(ALICE, Action.READ_VALUE, target, [binding(Role.VIEWER)], NOW)
    assert caught.value.message == f"user:alice may not read value secret {target.secret_id}"
    for action in (Action.WRITE, Action.ADMIN):
        with pytest.raises(Forbidden):
            require(ALICE, action, target, [binding(Role.READER)], NOW)


def test_require_in_someone_elses_personal_scope_is_not_found() -> None:
    bob = Principal("user:bob", "user")
    with pytest.raises(NotFound):
        require(bob, Action.LIST, secret_in(ALICES), [binding(Role.ADMIN, GLOBAL, "user:bob")], NOW)


def test_what_a_target_is_called() -> None:
    secret_id = uuid.uuid4()
    assert str(Target(*PROJECT, secret_id=secret_id, name="K")) == f"secret {secret_id}"
    assert str(Target(*PROJECT, name="K")) == "secret 'K' in scope project/p-42"
    assert str(Target(*PROJECT)) == "scope project/p-42"


# -- access queries and authorize -------------------------------------------------------------


def test_an_access_query_carries_what_a_repository_filters_by() -> None:
    assert access_query(ALICE, Action.READ_VALUE, NOW) == AccessQuery(
        identities=("user:alice", "group:ml", "group:eu"),
        roles=frozenset({Role.READER, Role.EDITOR, Role.ADMIN}),
        now=NOW,
        unrestricted=False,
        user_id="alice",
    )
    root = access_query(ROOT, Action.LIST, NOW)
    assert (root.unrestricted, root.user_id) == (True, None)


def test_authorize_loads_the_callers_bindings() -> None:
    database = FakeDatabase()
    team = database.add_scope(ScopeRef(ScopeType.TEAM, "t-1"), ScopeRef.global_scope())
    database.grant("group:ml", Role.EDITOR, team.ref)
    database.grant("user:bob", Role.ADMIN)
    database.grant("user:alice", Role.ADMIN, expires_at=NOW)
    target = Target(team.ref, team.path, name="NEW_KEY")

    with FakeUnitOfWork(database) as uow:
        authorize(uow, ALICE, Action.WRITE, target, NOW)
        with pytest.raises(Forbidden):
            authorize(uow, ALICE, Action.ADMIN, target, NOW)
        with pytest.raises(NotFound):
            authorize(uow, ALICE, Action.LIST, Target(*GLOBAL), NOW)
        authorize(uow, ROOT, Action.ADMIN, Target(*GLOBAL), NOW)


def cached_caller(
    database: FakeDatabase, generation: int, expires_at: datetime | None = None
) -> tuple[Caller, UUID]:
    """An API token's caller as a worker's token cache gives it: the lookup's generation."""
    account = ServiceAccount(uuid.uuid4(), "ci", ScopeRef.global_scope(), "/1/", "", NOW, "root")
    token = ApiToken(
        uuid.uuid4(), account.id, "0" * 64, "smt_abcdef", NOW, "root", expires_at=expires_at
    )
    with FakeUnitOfWork(database) as uow:
        uow.service_accounts.add(account)
        uow.service_accounts.add_token(token)
        uow.commit()
    caller = Caller(account.principal, "service", token_id=token.id, generation=generation)
    return caller, token.id


def test_a_cached_token_is_confirmed_in_the_unit_of_work_that_uses_it() -> None:
    database = FakeDatabase()
    caller, token_id = cached_caller(database, generation=0)
    database.grant(caller.id, Role.ADMIN)
    with FakeUnitOfWork(database) as uow:  # revoked by another worker since the lookup
        uow.service_accounts.revoke_token(token_id, NOW)
        uow.commit()

    for action in Action:
        with FakeUnitOfWork(database) as uow, pytest.raises(Unauthenticated):
            authorize(uow, caller, action, Target(*GLOBAL), NOW)


def test_a_cached_token_of_the_current_generation_needs_no_second_look() -> None:
    """Nothing committed since the lookup: the token is not read again (here it could not be:
    its row went without moving the generation, which no real change does)."""
    database = FakeDatabase()
    caller, token_id = cached_caller(database, generation=0)
    with FakeUnitOfWork(database) as uow:
        generation = uow.audit.generation()
    current = Caller(caller.id, "service", token_id=token_id, generation=generation)
    del database.tables.tokens[token_id]

    with FakeUnitOfWork(database) as uow:
        confirm_caller(uow, current, NOW)
        with pytest.raises(Unauthenticated):  # an older lookup is read again, and refused
            confirm_caller(uow, caller, NOW)


def test_a_cached_token_still_good_after_other_changes_is_accepted_until_it_expires() -> None:
    database = FakeDatabase()
    caller, _ = cached_caller(database, generation=0, expires_at=NOW + timedelta(hours=1))
    database.grant(caller.id, Role.ADMIN)

    with FakeUnitOfWork(database) as uow:
        authorize(uow, caller, Action.ADMIN, Target(*GLOBAL), NOW)
        with pytest.raises(Unauthenticated):
            authorize(uow, caller, Action.ADMIN, Target(*GLOBAL), NOW + timedelta(hours=1))


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "principal", ["user:alice", "group:ml-eu", "service:ci.deploy", "user:alice@example.com"]
)
def test_principals_that_bindings_may_name(principal: str) -> None:
    check_principal(principal)


@pytest.mark.parametrize(
    "principal", ["alice", "admin:alice", "user:", "user:-x", "group:a b", "user:" + "a" * 256]
)
def test_principals_refused(principal: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_principal(principal)
    assert caught.value.details == {"field": "principal"}


@pytest.mark.parametrize("pattern", ["OPENAI_*", "DB_?", "*", "a.b-c"])
def test_name_globs_accepted(pattern: str) -> None:
    check_name_pattern(pattern)


@pytest.mark.parametrize("pattern", ["", "DB_%", "[AB]*", "a/b", "a b", "x" * 256])
def test_name_globs_refused(pattern: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_name_pattern(pattern)
    assert caught.value.details == {"field": "name_pattern"}


def test_the_fake_repositories_filter_with_the_same_rule() -> None:
    """tests.fakes.visible is what the fakes filter queries with, as the SQL adapters do with
    adapters/db/visibility.py: both must agree with `allowed` (the SQL is checked in
    tests/integration/test_access_repositories.py)."""
    secret_id = uuid.uuid4()
    bindings = [
        binding(Role.READER, TEAM),
        binding(Role.VIEWER, GLOBAL, name_pattern="DB_*"),
        binding(Role.EDITOR, ORGANIZATION, secret_id=secret_id),
        binding(Role.ADMIN, SIBLING, principal="group:ml", expires_at=NOW),
        binding(Role.AUDITOR, PROJECT, principal="group:eu"),
        binding(Role.ADMIN, GLOBAL, principal="user:bob"),
    ]
    targets = [
        *(scope_target(at) for at in (*HIERARCHY.values(), SIBLING, ALICES)),
        *(
            secret_in(at, name)
            for at in (*HIERARCHY.values(), SIBLING, ALICES)
            for name in ("DB_URL", "KEY")
        ),
        secret_in(PROJECT, "KEY", secret_id),
        secret_in(SIBLING, "DB_URL"),
    ]
    callers = [ALICE, ROOT, Principal("user:bob", "user"), Principal("user:carol", "user")]

    for caller, action, target in itertools.product(callers, Action, targets):
        query = access_query(caller, action, NOW)
        assert visible(query, target, bindings) is allowed(caller, action, target, bindings, NOW)
