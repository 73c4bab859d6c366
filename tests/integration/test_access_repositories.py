"""The access-control repositories on real SQLite and PostgreSQL databases, and the access rules
in SQL (adapters/db/visibility.py) checked against the same rules in Python (core.access)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from adapters.db.uow import SqlUnitOfWork
from core.access import access_query, allowed
from core.domain.access import Action, Role, RoleBinding, Target
from core.domain.accounts import ApiToken, ServiceAccount
from core.domain.errors import Conflict, NotFound
from core.domain.paging import PageRequest
from core.domain.scopes import Scope, ScopeUsage
from core.domain.secrets import Secret, SecretFilter, SecretVersion
from core.domain.values import Principal, ScopeRef, ScopeType
from core.secret_access import secret_target

NOW = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
EVERY_ROW = PageRequest(page_size=1000)
GLOBAL = ScopeRef.global_scope()


def ref(scope_type: str, scope_id: str) -> ScopeRef:
    return ScopeRef(ScopeType(scope_type), scope_id)


def add_scope(engine: Engine, scope: ScopeRef, parent: ScopeRef) -> Scope:
    with SqlUnitOfWork(engine) as uow:
        added = uow.scopes.add(scope, uow.scopes.get(parent))
        uow.commit()
    return added


def make_secret(scope: ScopeRef, name: str, environment: str | None = None, **fields) -> Secret:
    return Secret(
        id=uuid.uuid4(),
        scope=scope,
        name=name,
        environment=environment,
        backend="local",
        created_at=NOW,
        created_by="user:setup",
        current_version=1,
        **fields,
    )


def make_binding(
    principal: str, role: Role, scope: ScopeRef, scope_path: str = "", **fields
) -> RoleBinding:
    return RoleBinding(
        id=uuid.uuid4(),
        principal=principal,
        role=role,
        scope=scope,
        scope_path=scope_path,
        created_at=NOW - timedelta(days=1),
        created_by="user:setup",
        **fields,
    )


def make_account(name: str, scope: ScopeRef) -> ServiceAccount:
    return ServiceAccount(
        id=uuid.uuid4(),
        name=name,
        scope=scope,
        scope_path="",
        description=f"the {name} account",
        created_at=NOW,
        created_by="user:setup",
    )


def make_token(account: ServiceAccount, n: int, **fields) -> ApiToken:
    return ApiToken(
        id=uuid.uuid4(),
        account_id=account.id,
        token_hash=f"{n:064x}",
        prefix=f"smt_{n:06d}",
        created_at=NOW + timedelta(minutes=n),
        created_by="user:setup",
        **fields,
    )


# -- scopes ---------------------------------------------------------------------------------


def test_scope_paths_follow_the_hierarchy(engine):
    organization = add_scope(engine, ref("organization", "acme"), GLOBAL)
    team = add_scope(engine, ref("team", "t-1"), organization.ref)
    project = add_scope(engine, ref("project", "p-42"), team.ref)
    personal = add_scope(engine, ref("user", "alice"), GLOBAL)

    assert organization.path == f"/1/{organization.pk}/"
    assert team.path == f"{organization.path}{team.pk}/"
    assert project.path == f"{team.path}{project.pk}/"
    assert personal.path == f"/1/{personal.pk}/"
    with SqlUnitOfWork(engine) as uow:
        for scope in (organization, team, project, personal):
            assert uow.scopes.get(scope.ref) == scope


def test_a_scope_added_in_a_rolled_back_unit_of_work_is_gone(engine):
    with SqlUnitOfWork(engine) as uow:
        uow.scopes.add(ref("organization", "acme"), uow.scopes.get(GLOBAL))
    with SqlUnitOfWork(engine) as uow:
        assert uow.scopes.get(ref("organization", "acme")) is None


def test_scope_usage_counts_what_lives_directly_in_it(engine):
    organization = add_scope(engine, ref("organization", "acme"), GLOBAL)
    team = add_scope(engine, ref("team", "t-1"), organization.ref)
    add_scope(engine, ref("team", "t-2"), organization.ref)
    add_scope(engine, ref("project", "p-42"), team.ref)
    with SqlUnitOfWork(engine) as uow:
        uow.secrets.add(make_secret(team.ref, "LIVE"))
        uow.secrets.add(make_secret(team.ref, "GONE", deleted_at=NOW, purge_after=NOW))
        uow.secrets.add(make_secret(ref("project", "p-42"), "BELOW"))
        uow.service_accounts.add(make_account("deployer", team.ref))
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        assert uow.scopes.usage(organization) == ScopeUsage(2, 0, 0)
        assert uow.scopes.usage(team) == ScopeUsage(1, 2, 1)
        assert uow.scopes.usage(uow.scopes.get(ref("team", "t-2"))) == ScopeUsage(0, 0, 0)


def test_deleting_a_scope_removes_the_bindings_held_at_it(engine):
    organization = add_scope(engine, ref("organization", "acme"), GLOBAL)
    team = add_scope(engine, ref("team", "t-1"), organization.ref)
    kept = make_binding("user:alice", Role.ADMIN, organization.ref)
    with SqlUnitOfWork(engine) as uow:
        uow.bindings.add(kept)
        uow.bindings.add(make_binding("user:bob", Role.READER, team.ref))
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        uow.scopes.delete(team)
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        assert uow.scopes.get(team.ref) is None
        assert [b.id for b in uow.bindings.search(None, None, EVERY_ROW).items] == [kept.id]
        assert uow.scopes.usage(organization).children == 0


@pytest.mark.parametrize("holds", ["child", "secret", "deleted-secret", "service-account"])
def test_deleting_a_scope_that_still_holds_something_is_a_conflict(engine, holds):
    team = add_scope(
        engine, ref("team", "t-1"), add_scope(engine, ref("organization", "o"), GLOBAL).ref
    )
    with SqlUnitOfWork(engine) as uow:
        if holds == "child":
            uow.scopes.add(ref("project", "p-1"), team)
        elif holds == "secret":
            uow.secrets.add(make_secret(team.ref, "KEY"))
        elif holds == "deleted-secret":
            uow.secrets.add(make_secret(team.ref, "KEY", deleted_at=NOW, purge_after=NOW))
        else:
            uow.service_accounts.add(make_account("ci", team.ref))
        uow.commit()

    with SqlUnitOfWork(engine) as uow, pytest.raises(Conflict, match="team/t-1"):
        uow.scopes.delete(team)
    with SqlUnitOfWork(engine) as uow:
        assert uow.scopes.get(team.ref) == team


def test_scope_search_filters_by_type_and_paginates(engine):
    organization = add_scope(engine, ref("organization", "acme"), GLOBAL)
    for team_id in ("t-3", "t-1", "t-2"):
        add_scope(engine, ref("team", team_id), organization.ref)
    root = access_query(Principal("root", "root", is_root=True), Action.LIST, NOW)

    with SqlUnitOfWork(engine) as uow:
        teams = uow.scopes.search("team", root, PageRequest(page=2, page_size=2))
        everything = uow.scopes.search(None, root, EVERY_ROW)
    assert [scope.ref.id for scope in teams.items] == ["t-3"]
    assert (teams.total, teams.page, teams.page_size) == (3, 2, 2)
    assert [str(s.ref) for s in everything.items] == [
        "global/global",
        "organization/acme",
        "team/t-1",
        "team/t-2",
        "team/t-3",
    ]


# -- role bindings --------------------------------------------------------------------------


@pytest.fixture
def hierarchy(engine) -> dict[str, Scope]:
    """global → acme → t-1 → p-42, with a sibling team t-2."""
    with SqlUnitOfWork(engine) as uow:
        scopes = {"global": uow.scopes.get(GLOBAL)}
        scopes["acme"] = uow.scopes.add(ref("organization", "acme"), scopes["global"])
        scopes["t-1"] = uow.scopes.add(ref("team", "t-1"), scopes["acme"])
        scopes["t-2"] = uow.scopes.add(ref("team", "t-2"), scopes["acme"])
        scopes["p-42"] = uow.scopes.add(ref("project", "p-42"), scopes["t-1"])
        uow.commit()
    return scopes


def test_a_binding_round_trips_every_field(engine, hierarchy):
    secret = make_secret(hierarchy["p-42"].ref, "DB_URL")
    binding = make_binding(
        "group:ml",
        Role.EDITOR,
        hierarchy["t-1"].ref,
        secret_id=secret.id,
        name_pattern="DB_*",
        expires_at=NOW + timedelta(days=7),
    )
    with SqlUnitOfWork(engine) as uow:
        uow.secrets.add(secret)
        uow.bindings.add(binding)
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        assert uow.bindings.get(binding.id) == replace(binding, scope_path=hierarchy["t-1"].path)
        assert uow.bindings.get(uuid.uuid4()) is None


def test_a_binding_at_an_unknown_scope_is_refused(engine):
    with SqlUnitOfWork(engine) as uow, pytest.raises(NotFound, match="team/t-404"):
        uow.bindings.add(make_binding("user:alice", Role.VIEWER, ref("team", "t-404")))


def test_deleting_a_binding(engine, hierarchy):
    gone, kept = (make_binding(p, Role.VIEWER, GLOBAL) for p in ("user:a", "user:b"))
    with SqlUnitOfWork(engine) as uow:
        uow.bindings.add(gone)
        uow.bindings.add(kept)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        uow.bindings.delete(gone.id)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.bindings.get(gone.id) is None
        assert uow.bindings.get(kept.id) is not None


@pytest.fixture
def granted(engine, hierarchy) -> dict[str, RoleBinding]:
    bindings = {
        "alice-global": make_binding("user:alice", Role.VIEWER, GLOBAL),
        "alice-t1": make_binding("user:alice", Role.READER, hierarchy["t-1"].ref),
        "ml-p42": make_binding("group:ml", Role.EDITOR, hierarchy["p-42"].ref),
        "bob-t2": make_binding("user:bob", Role.ADMIN, hierarchy["t-2"].ref),
        "bob-acme-expired": make_binding(
            "user:bob", Role.ADMIN, hierarchy["acme"].ref, expires_at=NOW
        ),
        "carol-acme-expiring": make_binding(
            "user:carol", Role.AUDITOR, hierarchy["acme"].ref, expires_at=NOW + timedelta(seconds=1)
        ),
    }
    with SqlUnitOfWork(engine) as uow:
        for binding in bindings.values():
            uow.bindings.add(binding)
        uow.commit()
    scope_paths = {scope.ref: scope.path for scope in hierarchy.values()}
    return {k: replace(b, scope_path=scope_paths[b.scope]) for k, b in bindings.items()}


def keys(found: list[RoleBinding], granted: dict[str, RoleBinding]) -> set[str]:
    key_of = {binding.id: key for key, binding in granted.items()}
    return {key_of[binding.id] for binding in found}


def test_the_bindings_of_a_caller_are_its_own_and_its_groups_unexpired_ones(engine, granted):
    with SqlUnitOfWork(engine) as uow:
        assert keys(uow.bindings.for_identities(["user:alice", "group:ml"], NOW), granted) == {
            "alice-global",
            "alice-t1",
            "ml-p42",
        }
        assert keys(uow.bindings.for_identities(["user:bob"], NOW), granted) == {"bob-t2"}
        assert keys(uow.bindings.for_identities(["user:carol"], NOW), granted) == {
            "carol-acme-expiring"
        }
        assert uow.bindings.for_identities(["user:carol"], NOW + timedelta(seconds=1)) == []
        assert uow.bindings.for_identities(["group:ops"], NOW) == []
        for binding in uow.bindings.for_identities(["user:alice", "user:bob"], NOW):
            assert binding == granted[keys([binding], granted).pop()]


def test_bindings_at_or_above_a_scope(engine, hierarchy, granted):
    with SqlUnitOfWork(engine) as uow:
        above_project = uow.bindings.at_or_above(hierarchy["p-42"].path, NOW)
        above_sibling = uow.bindings.at_or_above(hierarchy["t-2"].path, NOW)
        above_global = uow.bindings.at_or_above(hierarchy["global"].path, NOW)

    assert keys(above_project, granted) == {
        "alice-global",
        "alice-t1",
        "ml-p42",
        "carol-acme-expiring",
    }
    assert [b.scope_path for b in above_project] == sorted(b.scope_path for b in above_project)
    assert keys(above_sibling, granted) == {"alice-global", "bob-t2", "carol-acme-expiring"}
    assert keys(above_global, granted) == {"alice-global"}


def test_binding_search_by_scope_and_principal(engine, hierarchy, granted):
    with SqlUnitOfWork(engine) as uow:
        at_acme = uow.bindings.search(hierarchy["acme"].ref, None, EVERY_ROW)
        bobs = uow.bindings.search(None, "user:bob", EVERY_ROW)
        bob_at_t2 = uow.bindings.search(hierarchy["t-2"].ref, "user:bob", EVERY_ROW)
        every = uow.bindings.search(None, None, EVERY_ROW)
        second_page = uow.bindings.search(None, None, PageRequest(page=2, page_size=4))
        with pytest.raises(NotFound):
            uow.bindings.search(ref("team", "t-404"), None, EVERY_ROW)

    assert keys(at_acme.items, granted) == {"bob-acme-expired", "carol-acme-expiring"}
    assert keys(bobs.items, granted) == {"bob-t2", "bob-acme-expired"}  # expired ones too
    assert keys(bob_at_t2.items, granted) == {"bob-t2"}
    assert every.total == len(every.items) == 6
    assert (second_page.total, len(second_page.items)) == (6, 2)


# -- service accounts and tokens ------------------------------------------------------------


def test_a_service_account_round_trips(engine, hierarchy):
    account = make_account("deployer", hierarchy["p-42"].ref)
    with SqlUnitOfWork(engine) as uow:
        uow.service_accounts.add(account)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.service_accounts.get(account.id) == replace(
            account, scope_path=hierarchy["p-42"].path
        )
        assert uow.service_accounts.get(uuid.uuid4()) is None


def test_a_service_account_name_is_taken_once_in_a_scope(engine, hierarchy):
    with SqlUnitOfWork(engine) as uow:
        uow.service_accounts.add(make_account("ci", hierarchy["t-1"].ref))
        uow.service_accounts.add(make_account("ci", hierarchy["t-2"].ref))  # its own name
        uow.commit()
    with SqlUnitOfWork(engine) as uow, pytest.raises(Conflict, match=r"team/t-1 .*'ci'"):
        uow.service_accounts.add(make_account("ci", hierarchy["t-1"].ref))
    with SqlUnitOfWork(engine) as uow, pytest.raises(NotFound):
        uow.service_accounts.add(make_account("other", ref("team", "t-404")))


def test_service_accounts_are_searched_by_scope(engine, hierarchy):
    with SqlUnitOfWork(engine) as uow:
        for name, scope in [("zeta", "t-1"), ("alpha", "t-1"), ("beta", "t-2")]:
            uow.service_accounts.add(make_account(name, hierarchy[scope].ref))
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        in_t1 = uow.service_accounts.search(hierarchy["t-1"].ref, EVERY_ROW)
        every = uow.service_accounts.search(None, PageRequest(page=1, page_size=2))
        with pytest.raises(NotFound):
            uow.service_accounts.search(ref("team", "t-404"), EVERY_ROW)
    assert [a.name for a in in_t1.items] == ["alpha", "zeta"]
    assert ([a.name for a in every.items], every.total) == (["alpha", "beta"], 3)


def test_tokens_are_found_by_hash_revoked_and_touched(engine, hierarchy):
    account = make_account("deployer", hierarchy["p-42"].ref)
    second, first = make_token(account, 2), make_token(account, 1, expires_at=NOW)
    with SqlUnitOfWork(engine) as uow:
        uow.service_accounts.add(account)
        uow.service_accounts.add_token(second)
        uow.service_accounts.add_token(first)
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        assert uow.service_accounts.tokens(account.id) == [first, second]
        token, owner = uow.service_accounts.token_by_hash(second.token_hash)
        assert (token, owner.id, owner.scope_path) == (second, account.id, hierarchy["p-42"].path)
        assert uow.service_accounts.token_by_hash("0" * 64) is None
        uow.service_accounts.revoke_token(second.id, NOW)
        uow.service_accounts.revoke_token(second.id, NOW + timedelta(hours=1))  # stays the first
        uow.service_accounts.touch_token(second.id, NOW, NOW - timedelta(minutes=1))
        uow.commit()

    def last_used() -> datetime | None:
        with SqlUnitOfWork(engine) as uow:
            return uow.service_accounts.tokens(account.id)[1].last_used_at

    with SqlUnitOfWork(engine) as uow:
        assert uow.service_accounts.tokens(account.id)[1].revoked_at == NOW
    assert last_used() == NOW
    for at, expected in [(30, NOW), (60, NOW), (61, NOW + timedelta(seconds=61))]:
        moment = NOW + timedelta(seconds=at)
        with SqlUnitOfWork(engine) as uow:
            uow.service_accounts.touch_token(second.id, moment, moment - timedelta(minutes=1))
            uow.commit()
        assert last_used() == expected, at


def test_deleting_a_service_account_removes_its_tokens_and_bindings(engine, hierarchy):
    account, other = make_account("deployer", hierarchy["p-42"].ref), make_account("ci", GLOBAL)
    with SqlUnitOfWork(engine) as uow:
        for item in (account, other):
            uow.service_accounts.add(item)
            uow.service_accounts.add_token(make_token(item, 1 if item is account else 2))
            uow.bindings.add(make_binding(item.principal, Role.READER, hierarchy["t-1"].ref))
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        uow.service_accounts.delete(account.id)
        uow.service_accounts.delete(uuid.uuid4())  # nothing to do
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        assert uow.service_accounts.get(account.id) is None
        assert uow.service_accounts.tokens(account.id) == []
        assert uow.bindings.for_identities([account.principal], NOW) == []
        assert len(uow.service_accounts.tokens(other.id)) == 1
        assert len(uow.bindings.for_identities([other.principal], NOW)) == 1


# -- visibility: the SQL rule against the Python rule -----------------------------------------


@dataclass
class World:
    scopes: dict[str, Scope]
    secrets: list[Secret]
    bindings: list[RoleBinding]


SCOPES = [  # key, type, id, parent key
    ("acme", "organization", "acme", "global"),
    ("other", "organization", "other", "global"),
    ("t-1", "team", "t-1", "acme"),
    ("t-2", "team", "t-2", "acme"),
    ("t-9", "team", "t-9", "other"),
    ("p-42", "project", "p-42", "t-1"),
    ("p-43", "project", "p-43", "t-1"),
    ("p-50", "project", "p-50", "acme"),
    ("p-99", "project", "p-99", "t-9"),
    ("alice", "user", "alice", "global"),
    ("bob", "user", "bob", "global"),
]
# Names that tell LIKE's wildcards and case from the glob's: `_` and `%` must match literally.
NAMES = [
    "DB_URL",
    "DBXURL",
    "db_url",
    "DB_URL_RO",
    "A%B",
    "A%BC",
    "AXB",
    "AXBC",
    "A_B",
    "CI_TOKEN",
    "CI-TOKEN",
    "CI_TOKENS",
    "X\\Y",
    "XY",
    "OPENAI_API_KEY",
]


ENVIRONMENTS = ("production", "staging", None, "production")


def first_version(secret: Secret) -> SecretVersion:
    return SecretVersion(
        secret_id=secret.id,
        version=1,
        backend="local",
        locator=f"loc-{secret.id}",
        checksum="hmac-sha256:" + "0" * 64,
        created_at=NOW,
        created_by="user:setup",
    )


@pytest.fixture
def world(engine) -> World:
    with SqlUnitOfWork(engine) as uow:
        scopes = {"global": uow.scopes.get(GLOBAL)}
        for key, scope_type, scope_id, parent in SCOPES:
            scopes[key] = uow.scopes.add(ref(scope_type, scope_id), scopes[parent])
        secrets = []
        for index, scope in enumerate(scopes.values()):
            for offset, name in enumerate(NAMES):
                first = (index * 7 + offset) % 3
                # every name in every scope, some in two environments, some soft-deleted
                for environment in ENVIRONMENTS[first : first + 1 + (offset % 5 == 0)]:
                    deleted = (index + offset) % 7 == 3
                    secret = make_secret(
                        scope.ref,
                        name,
                        environment,
                        **({"deleted_at": NOW, "purge_after": NOW} if deleted else {}),
                    )
                    uow.secrets.add(secret)
                    uow.secrets.add_version(first_version(secret))
                    secrets.append(secret)
        uow.commit()

    def find(scope: str, name: str) -> uuid.UUID:
        return next(s.id for s in secrets if s.scope == scopes[scope].ref and s.name == name)

    def at(scope: str) -> ScopeRef:
        return scopes[scope].ref

    bindings = [
        make_binding("user:alice", Role.READER, at("t-1")),
        make_binding("user:alice", Role.VIEWER, GLOBAL, name_pattern="DB_*"),
        make_binding("user:alice", Role.EDITOR, at("p-50"), name_pattern="A%B*"),
        make_binding("user:bob", Role.EDITOR, at("acme"), secret_id=find("p-42", "DB_URL")),
        make_binding("user:bob", Role.ADMIN, at("other"), expires_at=NOW),
        make_binding("user:bob", Role.READER, at("t-9"), expires_at=NOW + timedelta(days=1)),
        make_binding("group:ml", Role.READER, at("p-42"), name_pattern="A_B"),
        make_binding("group:ml", Role.AUDITOR, at("t-2")),
        make_binding("group:ml", Role.VIEWER, at("acme"), name_pattern="CI_?OKEN"),
        make_binding("user:carol", Role.ADMIN, at("p-43")),
        make_binding("user:carol", Role.READER, GLOBAL, name_pattern="X\\*"),
        make_binding("user:carol", Role.VIEWER, at("acme"), name_pattern="*_RO"),
        make_binding("user:dave", Role.READER, GLOBAL, secret_id=find("alice", "DBXURL")),
        make_binding("user:dave", Role.VIEWER, at("acme"), name_pattern="?B?URL"),
        make_binding("service:ci", Role.READER, at("p-99")),
        make_binding("service:ci", Role.EDITOR, at("t-9"), name_pattern="CI_*"),
        make_binding("user:erin", Role.AUDITOR, at("acme")),
    ]
    with SqlUnitOfWork(engine) as uow:
        for binding in bindings:
            uow.bindings.add(binding)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        stored_bindings = uow.bindings.search(None, None, EVERY_ROW).items
        stored_secrets = [uow.secrets.get(secret.id) for secret in secrets]
    assert len(stored_bindings) == len(bindings)
    return World(scopes, stored_secrets, stored_bindings)


CALLERS = {
    "alice": Principal("user:alice", "user"),
    "bob-in-ml": Principal("user:bob", "user", groups=("group:ml",)),
    "carol": Principal("user:carol", "user"),
    "dave": Principal("user:dave", "user"),
    "erin": Principal("user:erin", "user"),
    "service": Principal("service:ci", "service"),
    "ml-member": Principal("user:frank", "user", groups=("group:ml", "group:ops")),
    "root": Principal("root", "root", is_root=True),
    "root-user": Principal("user:bob", "user", is_root=True),
    "nobody": Principal("user:nobody", "user"),
}


def python_rule(world: World, caller: Principal, action: Action, targets: list[Target]) -> set:
    return {
        target.secret_id or target.scope
        for target in targets
        if allowed(caller, action, target, world.bindings, NOW)
    }


def test_secret_search_shows_exactly_what_the_python_rule_allows(world, engine):
    for deleted in (False, True):
        targets = [secret_target(s) for s in world.secrets if s.is_deleted == deleted]
        for (caller, principal), action in itertools.product(CALLERS.items(), Action):
            with SqlUnitOfWork(engine) as uow:
                page = uow.secrets.search(
                    SecretFilter(deleted=deleted), EVERY_ROW, access_query(principal, action, NOW)
                )
            assert page.total == len(page.items)
            expected = python_rule(world, principal, action, targets)
            assert {s.id for s in page.items} == expected, (caller, action, deleted)


def test_the_world_tells_callers_apart(world):
    """The comparisons are only as good as their data: each caller sees something, and
    something different."""
    targets = [secret_target(s) for s in world.secrets if not s.is_deleted]
    seen = {
        caller: frozenset(python_rule(world, principal, Action.LIST, targets))
        for caller, principal in CALLERS.items()
    }
    assert seen["nobody"] == frozenset()
    assert all(seen[caller] for caller in CALLERS if caller != "nobody")
    assert len(set(seen.values())) == len(CALLERS)


def test_scope_search_shows_exactly_what_the_python_rule_allows(world, engine):
    targets = [Target(scope.ref, scope.path) for scope in world.scopes.values()]

    for (caller, principal), action in itertools.product(CALLERS.items(), Action):
        with SqlUnitOfWork(engine) as uow:
            page = uow.scopes.search(None, access_query(principal, action, NOW), EVERY_ROW)
        expected = python_rule(world, principal, action, targets)
        assert {s.ref for s in page.items} == expected, (caller, action)


CONTEXTS = [
    (["p-42", "alice"], "production"),
    (["p-42"], None),
    (["p-50", "bob"], "staging"),
    (["p-99"], "production"),
    (["t-2"], "staging"),
    (["global"], None),
]


def test_resolve_candidates_and_their_readability_follow_the_python_rule(world, engine):
    for (caller, principal), (context, environment) in itertools.product(CALLERS.items(), CONTEXTS):
        refs = [GLOBAL] + [world.scopes[key].ref for key in context]
        chain = [world.scopes[key].path for key in context]
        with SqlUnitOfWork(engine) as uow:
            candidates = uow.secrets.resolve(
                refs,
                environment,
                access_query(principal, Action.LIST, NOW),
                access_query(principal, Action.READ_VALUE, NOW),
            )

        expected = {
            secret.id
            for secret in world.secrets
            if not secret.is_deleted
            and secret.environment in {None, environment}
            and any(path.startswith(secret.scope_path) for path in [*chain, "/1/"])
            and allowed(principal, Action.LIST, secret_target(secret), world.bindings, NOW)
        }
        assert {c.secret.id for c in candidates} == expected, (caller, context)
        for candidate in candidates:
            target = secret_target(candidate.secret)
            readable = allowed(principal, Action.READ_VALUE, target, world.bindings, NOW)
            assert candidate.value_readable is readable, (caller, candidate.secret)
            assert (candidate.current.secret_id, candidate.current.version) == (target.secret_id, 1)
