"""The repository contract: the same cases, through the ports of `ports.repositories`, on the
fake unit of work the unit tests use (`tests/fakes.py`) and on the SQLAlchemy one against
PostgreSQL. What the unit tests learn from the fakes holds for the database only while both
pass: scopes, secrets and their versions, role bindings, service accounts and their tokens, and
the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine

from adapters.db.uow import SqlUnitOfWork
from core.access import access_query
from core.audit_chain import GENESIS, chained
from core.domain.access import Action, Role, RoleBinding
from core.domain.accounts import ApiToken, ServiceAccount
from core.domain.audit import AuditEvent, AuditFilter
from core.domain.errors import Conflict, NotFound, PreconditionFailed
from core.domain.paging import PageRequest
from core.domain.rotation import RotationPolicy, RotationRun
from core.domain.secrets import ListPosition, Secret, SecretFilter, SecretVersion, VersionState
from core.domain.values import Principal, ScopeRef, ScopeType
from ports.unit_of_work import UnitOfWork
from tests.fakes import FakeUnitOfWorkFactory

NOW = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
GLOBAL = ScopeRef.global_scope()
ACME = ScopeRef(ScopeType.ORGANIZATION, "acme")
PAYMENTS = ScopeRef(ScopeType.PROJECT, "payments")
EVERY_ROW = PageRequest(page_size=1000)
ROOT = Principal("root", "root", is_root=True)

Factory = Callable[..., UnitOfWork]


@pytest.fixture(params=["fake", pytest.param("postgres", marks=pytest.mark.postgres)])
def uow(request: pytest.FixtureRequest) -> Factory:
    """A unit-of-work factory on an empty store (but for the global scope)."""
    if request.param == "fake":
        return FakeUnitOfWorkFactory()
    engine: Engine = request.getfixturevalue("postgres_engine")

    def sql(*, read_only: bool = False) -> UnitOfWork:
        return SqlUnitOfWork(engine, read_only=read_only)

    return sql


@pytest.fixture
def scopes(uow: Factory) -> dict[str, Any]:
    """acme (an organization) below the global scope, payments (a project) below acme."""
    with uow() as work:
        acme = work.scopes.add(ACME, work.scopes.get(GLOBAL))
        payments = work.scopes.add(PAYMENTS, acme)
        work.commit()
    return {"acme": acme, "payments": payments}


def everything(action: Action = Action.LIST) -> Any:
    return access_query(ROOT, action, NOW)


def make_secret(scope: ScopeRef = PAYMENTS, name: str = "db-password", **fields: Any) -> Secret:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "scope": scope,
        "name": name,
        "backend": "local",
        "created_at": NOW,
        "created_by": "user:setup",
        "current_version": 1,
        "latest_version": 1,
        "tags": {"team": "payments", "tier": "1"},
        **fields,
    }
    return Secret(**values)


def make_version(secret: Secret, number: int = 1, **fields: Any) -> SecretVersion:
    values: dict[str, Any] = {
        "secret_id": secret.id,
        "version": number,
        "backend": "local",
        "locator": f"loc-{secret.id}-{number}",
        "checksum": f"{number:064x}",
        "created_at": NOW + timedelta(minutes=number),
        "created_by": "user:setup",
        **fields,
    }
    return SecretVersion(**values)


def stored_secret(uow: Factory, secret: Secret, versions: int = 1) -> Secret:
    with uow() as work:
        work.secrets.add(secret)
        for number in range(1, versions + 1):
            work.secrets.add_version(make_version(secret, number))
        work.commit()
    with uow(read_only=True) as work:
        found = work.secrets.get(secret.id)
    assert found is not None
    return found


def comparable(secret: Secret) -> Secret:
    """What the stores fill in themselves (the scope's path) left aside."""
    return replace(secret, scope_path="")


# -- scopes -----------------------------------------------------------------------------------


def test_a_scope_is_found_by_its_ref_with_its_parent_and_path(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    with uow(read_only=True) as work:
        payments = work.scopes.get(PAYMENTS)
        acme = work.scopes.get(ACME)
        assert work.scopes.get(ScopeRef(ScopeType.PROJECT, "nope")) is None
    assert payments == scopes["payments"] and acme == scopes["acme"]
    assert payments is not None and acme is not None
    assert payments.parent == ACME and acme.parent == GLOBAL
    assert payments.path == f"{acme.path}{payments.pk}/"
    assert acme.path == f"/1/{acme.pk}/"


def test_adding_a_scope_twice_is_a_conflict(uow: Factory, scopes: dict[str, Any]) -> None:
    with uow() as work, pytest.raises(Conflict):
        work.scopes.add(ACME, work.scopes.get(GLOBAL))


def test_usage_counts_what_lives_directly_in_a_scope(uow: Factory, scopes: dict[str, Any]) -> None:
    stored_secret(uow, make_secret())
    stored_secret(uow, make_secret(name="deleted", deleted_at=NOW))
    with uow(read_only=True) as work:
        payments = work.scopes.usage(scopes["payments"])
        acme = work.scopes.usage(scopes["acme"])
    assert (payments.children, payments.secrets, payments.service_accounts) == (0, 2, 0)
    assert (acme.children, acme.secrets, acme.service_accounts) == (1, 0, 0)


def test_deleting_a_scope_removes_it_and_its_bindings(uow: Factory, scopes: dict[str, Any]) -> None:
    binding = make_binding("user:bob", PAYMENTS, scopes["payments"].path)
    with uow() as work:
        work.bindings.add(binding)
        work.commit()
    with uow() as work:
        work.scopes.delete(scopes["payments"])
        work.commit()
    with uow(read_only=True) as work:
        assert work.scopes.get(PAYMENTS) is None
        assert work.bindings.get(binding.id) is None


def test_scope_search_filters_by_type(uow: Factory, scopes: dict[str, Any]) -> None:
    with uow(read_only=True) as work:
        projects = work.scopes.search("project", everything(), EVERY_ROW)
        every = work.scopes.search(None, everything(), EVERY_ROW)
    assert [scope.ref for scope in projects.items] == [PAYMENTS]
    assert projects.total == 1
    assert {ACME, PAYMENTS} <= {scope.ref for scope in every.items}


# -- secrets ----------------------------------------------------------------------------------


def test_a_secret_reads_back_as_it_was_written(uow: Factory, scopes: dict[str, Any]) -> None:
    secret = make_secret(
        environment="prod",
        type="api_key",
        description="the payments key ✓",
        consumer="database",
        expires_at=NOW + timedelta(days=30),
        max_versions=5,
    )
    found = stored_secret(uow, secret)
    assert comparable(found) == comparable(secret)
    assert found.scope_path == scopes["payments"].path
    with uow(read_only=True) as work:
        by_name = work.secrets.get_by_name(PAYMENTS, "prod", "db-password")
        assert work.secrets.get_by_name(PAYMENTS, None, "db-password") is None
        assert work.secrets.get(uuid.uuid4()) is None
    assert by_name == found


def test_a_taken_name_is_a_conflict_but_another_environment_is_not(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    stored_secret(uow, make_secret(environment=None))
    stored_secret(uow, make_secret(environment="prod"))
    with uow() as work, pytest.raises(Conflict):
        work.secrets.add(make_secret(environment="prod"))


def test_update_is_check_and_set_on_the_revision(uow: Factory, scopes: dict[str, Any]) -> None:
    secret = stored_secret(uow, make_secret())
    changed = replace(secret, description="changed", revision=secret.revision + 1)
    with uow() as work:
        work.secrets.update(changed, secret.revision)
        work.commit()
    stale = replace(secret, description="stale", revision=secret.revision + 1)
    with uow() as work, pytest.raises(PreconditionFailed):
        work.secrets.update(stale, secret.revision)
    with uow(read_only=True) as work:
        found = work.secrets.get(secret.id)
    assert found is not None
    assert (found.description, found.revision) == ("changed", secret.revision + 1)


def test_nothing_is_kept_without_a_commit(uow: Factory, scopes: dict[str, Any]) -> None:
    secret = make_secret()
    with uow() as work:
        work.secrets.add(secret)
    with uow(read_only=True) as work:
        assert work.secrets.get(secret.id) is None


def test_delete_removes_a_secret_and_its_versions_for_good(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    secret = stored_secret(uow, make_secret(), versions=2)
    with uow() as work:
        work.secrets.delete(secret.id)
        work.commit()
    with uow(read_only=True) as work:
        assert work.secrets.get(secret.id) is None
        assert work.secrets.list_versions(secret.id) == []


def test_versions_read_back_oldest_first_and_a_taken_number_is_a_conflict(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    secret = stored_secret(uow, make_secret(current_version=3, latest_version=3), versions=3)
    with uow(read_only=True) as work:
        versions = work.secrets.list_versions(secret.id)
        second = work.secrets.get_version(secret.id, 2)
        assert work.secrets.get_version(secret.id, 9) is None
    assert [v.version for v in versions] == [1, 2, 3]
    assert second == make_version(secret, 2)
    with uow() as work, pytest.raises(Conflict):
        work.secrets.add_version(make_version(secret, 2))


def test_update_version_saves_its_state_and_dates_only(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    secret = stored_secret(uow, make_secret())
    changed = replace(
        make_version(secret, 1),
        state=VersionState.DISABLED,
        expires_at=NOW + timedelta(days=1),
        disable_at=NOW + timedelta(hours=1),
    )
    with uow() as work:
        work.secrets.update_version(changed)
        work.commit()
    with uow(read_only=True) as work:
        assert work.secrets.get_version(secret.id, 1) == changed
    with uow() as work, pytest.raises(NotFound):
        work.secrets.update_version(make_version(secret, 7))


def test_relocate_moves_a_version_only_from_where_it_still_is(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    secret = stored_secret(uow, make_secret())
    version = make_version(secret, 1)
    with uow() as work:
        work.secrets.relocate_version(version, "vault", "vault-locator")
        work.commit()
    with uow() as work, pytest.raises(PreconditionFailed):
        work.secrets.relocate_version(version, "aws", "aws-locator")
    with uow(read_only=True) as work:
        moved = work.secrets.get_version(secret.id, 1)
    assert moved is not None and (moved.backend, moved.locator) == ("vault", "vault-locator")


def test_get_with_version_gives_the_current_or_the_asked_version(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    secret = stored_secret(uow, make_secret(current_version=2, latest_version=2), versions=2)
    with uow(read_only=True) as work:
        current = work.secrets.get_with_version(secret.id, None)
        first = work.secrets.get_by_name_with_version(PAYMENTS, None, secret.name, 1)
        missing = work.secrets.get_with_version(secret.id, 5)
        assert work.secrets.get_with_version(uuid.uuid4(), None) is None
        currents = work.secrets.current_versions([secret.id, uuid.uuid4()])
    assert current is not None and current[1] is not None and current[1].version == 2
    assert first is not None and first[1] is not None and first[1].version == 1
    assert missing is not None and missing[1] is None
    assert list(currents) == [secret.id] and currents[secret.id].version == 2


def test_search_filters_and_orders_by_scope_name_and_environment(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    for name, environment in [("b", None), ("a", "prod"), ("a", None), ("c", "dev")]:
        stored_secret(uow, make_secret(name=name, environment=environment))
    stored_secret(uow, make_secret(ACME, "org-wide", tags={"team": "core"}))
    stored_secret(uow, make_secret(name="gone", deleted_at=NOW))
    with uow(read_only=True) as work:
        live = work.secrets.search(SecretFilter(scope=PAYMENTS), EVERY_ROW, everything())
        deleted = work.secrets.search(
            SecretFilter(scope=PAYMENTS, deleted=True), EVERY_ROW, everything()
        )
        tagged = work.secrets.search(SecretFilter(tags={"team": "core"}), EVERY_ROW, everything())
        prefixed = work.secrets.search(SecretFilter(prefix="a"), EVERY_ROW, everything())
        paged = work.secrets.search(
            SecretFilter(scope=PAYMENTS), PageRequest(page=2, page_size=3), everything()
        )
    assert [(s.name, s.environment) for s in live.items] == [
        ("a", None),
        ("a", "prod"),
        ("b", None),
        ("c", "dev"),
    ]
    assert live.total == 4
    assert [s.name for s in deleted.items] == ["gone"]
    assert [s.name for s in tagged.items] == ["org-wide"]
    assert {s.name for s in prefixed.items} == {"a"}
    assert ([s.name for s in paged.items], paged.total) == (["c"], 4)


# -- role bindings ----------------------------------------------------------------------------


def make_binding(principal: str, scope: ScopeRef, path: str, **fields: Any) -> RoleBinding:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "principal": principal,
        "role": Role.READER,
        "scope": scope,
        "scope_path": path,
        "created_at": NOW - timedelta(days=1),
        "created_by": "user:setup",
        **fields,
    }
    return RoleBinding(**values)


def test_bindings_are_found_by_identity_and_by_scope_unless_expired(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    acme, payments = scopes["acme"], scopes["payments"]
    at_acme = make_binding("user:alice", ACME, acme.path, role=Role.ADMIN)
    at_payments = make_binding("user:bob", PAYMENTS, payments.path, name_pattern="db-*")
    expired = make_binding("user:alice", PAYMENTS, payments.path, expires_at=NOW)
    with uow() as work:
        for binding in (at_acme, at_payments, expired):
            work.bindings.add(binding)
        work.commit()
    with uow(read_only=True) as work:
        assert work.bindings.get(at_payments.id) == at_payments
        alice = work.bindings.for_identities(["user:alice"], NOW)
        both = work.bindings.for_identities(["user:alice", "user:bob"], NOW)
        above = work.bindings.at_or_above(payments.path, NOW)
        at_scope = work.bindings.search(PAYMENTS, None, EVERY_ROW)
        of_alice = work.bindings.search(None, "user:alice", EVERY_ROW)
    assert [b.id for b in alice] == [at_acme.id]
    assert {b.id for b in both} == {at_acme.id, at_payments.id}
    assert {b.id for b in above} == {at_acme.id, at_payments.id}
    assert {b.id for b in at_scope.items} == {at_payments.id, expired.id}
    assert {b.id for b in of_alice.items} == {at_acme.id, expired.id}


def test_a_deleted_binding_is_gone(uow: Factory, scopes: dict[str, Any]) -> None:
    binding = make_binding("user:alice", ACME, scopes["acme"].path)
    with uow() as work:
        work.bindings.add(binding)
        work.commit()
    with uow() as work:
        work.bindings.delete(binding.id)
        work.commit()
    with uow(read_only=True) as work:
        assert work.bindings.get(binding.id) is None
        assert work.bindings.for_identities(["user:alice"], NOW) == []


# -- service accounts -------------------------------------------------------------------------


def make_account(name: str = "ci", scope: ScopeRef = PAYMENTS, path: str = "") -> ServiceAccount:
    return ServiceAccount(
        id=uuid.uuid4(),
        name=name,
        scope=scope,
        scope_path=path,
        description=f"the {name} account",
        created_at=NOW,
        created_by="user:setup",
    )


def make_token(account: ServiceAccount, n: int, **fields: Any) -> ApiToken:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "account_id": account.id,
        "token_hash": f"{n:064x}",
        "prefix": f"smt_{n:06d}",
        "created_at": NOW + timedelta(minutes=n),
        "created_by": "user:setup",
        **fields,
    }
    return ApiToken(**values)


def test_an_account_and_its_tokens_read_back(uow: Factory, scopes: dict[str, Any]) -> None:
    account = make_account(path=scopes["payments"].path)
    first, second = make_token(account, 1), make_token(account, 2, description="deploy")
    with uow() as work:
        work.service_accounts.add(account)
        work.service_accounts.add_token(first)
        work.service_accounts.add_token(second)
        work.commit()
    with uow(read_only=True) as work:
        assert work.service_accounts.get(account.id) == account
        assert work.service_accounts.tokens(account.id) == [first, second]
        assert work.service_accounts.token(second.id) == second
        assert work.service_accounts.token_by_hash(first.token_hash) == (first, account)
        assert work.service_accounts.token_by_hash("f" * 64) is None
        listed = work.service_accounts.search(PAYMENTS, EVERY_ROW)
    assert [a.id for a in listed.items] == [account.id]


def test_an_account_name_is_its_scopes_own(uow: Factory, scopes: dict[str, Any]) -> None:
    with uow() as work:
        work.service_accounts.add(make_account("ci", PAYMENTS, scopes["payments"].path))
        work.service_accounts.add(make_account("ci", ACME, scopes["acme"].path))
        work.commit()
    with uow() as work, pytest.raises(Conflict):
        work.service_accounts.add(make_account("ci", PAYMENTS, scopes["payments"].path))


def test_revoked_and_stale_tokens(uow: Factory, scopes: dict[str, Any]) -> None:
    account = make_account(path=scopes["payments"].path)
    used = make_token(account, 1, last_used_at=NOW - timedelta(days=1))
    unused = make_token(account, 2, created_at=NOW - timedelta(days=100))
    revoked = make_token(account, 3, created_at=NOW - timedelta(days=100))
    with uow() as work:
        work.service_accounts.add(account)
        for token in (used, unused, revoked):
            work.service_accounts.add_token(token)
        work.service_accounts.revoke_token(revoked.id, NOW)
        work.commit()
    with uow(read_only=True) as work:
        stale = work.service_accounts.stale_tokens(NOW - timedelta(days=30), NOW)
        found = work.service_accounts.token(revoked.id)
    assert [token.id for token, _ in stale] == [unused.id]
    assert found is not None and found.revoked_at == NOW


def test_touching_a_token_records_its_use_at_most_once_per_window(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    account = make_account(path=scopes["payments"].path)
    token = make_token(account, 1)
    with uow() as work:
        work.service_accounts.add(account)
        work.service_accounts.add_token(token)
        work.service_accounts.touch_token(token.id, NOW, NOW - timedelta(minutes=5))
        work.service_accounts.touch_token(
            token.id, NOW + timedelta(minutes=1), NOW - timedelta(minutes=4)
        )
        work.commit()
    with uow(read_only=True) as work:
        found = work.service_accounts.token(token.id)
    assert found is not None and found.last_used_at == NOW


def test_deleting_an_account_removes_its_tokens_and_bindings(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    account = make_account(path=scopes["payments"].path)
    token = make_token(account, 1)
    binding = make_binding(account.principal, PAYMENTS, scopes["payments"].path)
    with uow() as work:
        work.service_accounts.add(account)
        work.service_accounts.add_token(token)
        work.bindings.add(binding)
        work.commit()
    with uow() as work:
        work.service_accounts.delete(account.id)
        work.commit()
    with uow(read_only=True) as work:
        assert work.service_accounts.get(account.id) is None
        assert work.service_accounts.token(token.id) is None
        assert work.bindings.get(binding.id) is None


# -- the audit trail --------------------------------------------------------------------------


def audit_event(number: int, **fields: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "time": NOW + timedelta(minutes=number),
        "actor": "user:alice" if number % 2 else "user:bob",
        "actor_type": "user",
        "action": "secret.read_value",
        "resource": f"secret:{number}",
        "outcome": "success",
        "details": {"n": number, "text": "päss ✓"},
        **fields,
    }
    return AuditEvent(**values)


def appended(uow: Factory, events: list[AuditEvent]) -> list[AuditEvent]:
    with uow() as work:
        seq, digest = work.audit.lock_head()
        linked = chained(events, seq, digest)
        work.audit.append(linked)
        work.commit()
    return linked


def test_the_audit_trail_starts_empty_at_the_genesis_hash(uow: Factory) -> None:
    with uow() as work:
        assert work.audit.head() == (0, GENESIS)
        assert work.audit.first_seq() is None
        assert list(work.audit.events()) == []


def test_appended_events_read_back_in_chain_order_and_move_the_head(uow: Factory) -> None:
    linked = appended(uow, [audit_event(n) for n in range(1, 6)])
    with uow() as work:
        assert work.audit.head() == (5, linked[-1].hash)
        assert list(work.audit.events()) == linked
        assert list(work.audit.events(2, 3)) == linked[1:3]
        assert [link.seq for link in work.audit.chain_links(4)] == [4, 5]
        assert work.audit.first_seq() == 1


def test_audit_search_is_newest_first_filtered_and_limited(uow: Factory) -> None:
    linked = appended(uow, [audit_event(n) for n in range(1, 8)])
    with uow() as work:
        alice = work.audit.search(AuditFilter(actor="user:alice"), 10)
        limited = work.audit.search(AuditFilter(), 2)
        before = work.audit.search(AuditFilter(before_seq=3), 10)
        since = work.audit.search(AuditFilter(since=NOW + timedelta(minutes=6)), 10)
        found = work.audit.resources_with(
            ["secret:1", "secret:2", "secret:99"], "secret.read_value", "success", NOW
        )
    assert [e.seq for e in alice] == [7, 5, 3, 1]
    assert [e.seq for e in limited] == [7, 6]
    assert [e.seq for e in before] == [2, 1]
    assert [e.seq for e in since] == [7, 6]
    assert found == {"secret:1", "secret:2"}
    assert alice[0] == linked[6]


def test_pruning_deletes_through_a_seq_and_keeps_the_head(uow: Factory) -> None:
    linked = appended(uow, [audit_event(n) for n in range(1, 5)])
    with uow() as work:
        assert work.audit.prune(2) == 2
        work.commit()
    with uow() as work:
        assert work.audit.first_seq() == 3
        assert [e.seq for e in work.audit.events()] == [3, 4]
        assert work.audit.head() == (4, linked[-1].hash)


def test_the_generation_grows_with_each_committed_change(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    with uow() as work:
        work.audit.lock_head()
        before = work.audit.generation()
    stored_secret(uow, make_secret())
    with uow() as work:
        work.audit.lock_head()
        after = work.audit.generation()
    assert after > before


@pytest.fixture
def read_only_streams(request: pytest.FixtureRequest) -> None:
    if "postgres" in request.node.callspec.id:
        request.applymarker(
            pytest.mark.xfail(
                reason="SQL divergence (reported, #15): events() opens a server-side cursor, "
                "which PostgreSQL refuses outside a transaction, and a read-only SqlUnitOfWork "
                "runs in autocommit; core reads the trail in read-write units of work only",
                strict=True,
            )
        )


@pytest.mark.usefixtures("read_only_streams")
def test_events_stream_in_a_read_only_unit_of_work(uow: Factory) -> None:
    linked = appended(uow, [audit_event(n) for n in range(1, 3)])
    with uow(read_only=True) as work:
        assert list(work.audit.events()) == linked


# -- edges where a dict and a database are most likely to part ------------------------------


def test_a_name_without_an_environment_is_taken_once(uow: Factory, scopes: dict[str, Any]) -> None:
    stored_secret(uow, make_secret(environment=None))
    with uow() as work, pytest.raises(Conflict):
        work.secrets.add(make_secret(environment=None))


def test_a_soft_deleted_secret_still_holds_its_name(uow: Factory, scopes: dict[str, Any]) -> None:
    stored_secret(uow, make_secret(deleted_at=NOW))
    with uow() as work, pytest.raises(Conflict):
        work.secrets.add(make_secret())


def test_names_sort_by_code_point_not_by_locale(uow: Factory, scopes: dict[str, Any]) -> None:
    names = ["b", "B", "a-x", "a_x", "ax", "A", "_z", "Ä", "z"]
    for name in names:
        stored_secret(uow, make_secret(name=name))
    with uow(read_only=True) as work:
        found = work.secrets.search(SecretFilter(scope=PAYMENTS), EVERY_ROW, everything())
    assert [s.name for s in found.items] == sorted(names)


@pytest.mark.parametrize("prefix", ["a_", "a%", "a\\", "A"])
def test_a_name_prefix_is_literal(uow: Factory, scopes: dict[str, Any], prefix: str) -> None:
    names = ["a_1", "ab", "a%2", "a\\3", "abc", "A4"]
    for name in names:
        stored_secret(uow, make_secret(name=name))
    with uow(read_only=True) as work:
        found = work.secrets.search(
            SecretFilter(scope=PAYMENTS, prefix=prefix), EVERY_ROW, everything()
        )
    assert [s.name for s in found.items] == sorted(n for n in names if n.startswith(prefix))


def test_tag_filters_match_exactly(uow: Factory, scopes: dict[str, Any]) -> None:
    stored_secret(uow, make_secret(name="one", tags={"team": "pay"}))
    stored_secret(uow, make_secret(name="two", tags={"team": "payments", "x": "ä ✓"}))
    stored_secret(uow, make_secret(name="three", tags={}))
    with uow(read_only=True) as work:
        pay = work.secrets.search(SecretFilter(tags={"team": "pay"}), EVERY_ROW, everything())
        both = work.secrets.search(
            SecretFilter(tags={"team": "payments", "x": "ä ✓"}), EVERY_ROW, everything()
        )
    assert [s.name for s in pay.items] == ["one"]
    assert [s.name for s in both.items] == ["two"]


def test_search_below_a_path_takes_the_whole_subtree(uow: Factory, scopes: dict[str, Any]) -> None:
    stored_secret(uow, make_secret(ACME, "org"))
    stored_secret(uow, make_secret(PAYMENTS, "project"))
    with uow(read_only=True) as work:
        below_acme = work.secrets.search(
            SecretFilter(under_path=scopes["acme"].path), EVERY_ROW, everything()
        )
        below_payments = work.secrets.search(
            SecretFilter(under_path=scopes["payments"].path), EVERY_ROW, everything()
        )
    assert {s.name for s in below_acme.items} == {"org", "project"}
    assert [s.name for s in below_payments.items] == ["project"]


def test_a_page_past_the_end_is_empty_with_the_total(uow: Factory, scopes: dict[str, Any]) -> None:
    stored_secret(uow, make_secret())
    with uow(read_only=True) as work:
        page = work.secrets.search(
            SecretFilter(scope=PAYMENTS), PageRequest(page=5, page_size=10), everything()
        )
    assert (page.items, page.total) == ([], 1)


def test_keyset_pages_follow_name_then_environment_and_stop_at_the_end(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    for name, environment in [("b", None), ("a", "prod"), ("a", None), ("c", "dev")]:
        stored_secret(uow, make_secret(name=name, environment=environment))
    stored_secret(uow, make_secret(ACME, "a0-org"))  # another scope: never on these pages
    stored_secret(uow, make_secret(name="b0-gone", deleted_at=NOW))
    seen: list[tuple[str, str | None]] = []
    nexts: list[ListPosition | None] = []
    after: ListPosition | None = None
    with uow(read_only=True) as work:
        while True:
            page = work.secrets.search_after(SecretFilter(scope=PAYMENTS), after, 2, everything())
            assert page.page_size == 2 and len(page.items) <= 2
            seen += [(s.name, s.environment) for s in page.items]
            nexts.append(page.next)
            if page.next is None:
                break
            after = page.next
        # A position no secret holds starts right after it; past the end, an empty last page.
        between = work.secrets.search_after(
            SecretFilter(scope=PAYMENTS), ListPosition("a", "q"), 10, everything()
        )
        past = work.secrets.search_after(
            SecretFilter(scope=PAYMENTS), ListPosition("zzz"), 10, everything()
        )
        nowhere = work.secrets.search_after(
            SecretFilter(scope=ScopeRef(ScopeType.PROJECT, "nowhere")), None, 10, everything()
        )
    assert seen == [("a", None), ("a", "prod"), ("b", None), ("c", "dev")]
    assert nexts == [ListPosition("a", "prod"), None]
    assert [s.name for s in between.items] == ["b", "c"] and between.next is None
    assert (past.items, past.next) == ([], None)
    assert (nowhere.items, nowhere.next) == ([], None)


def test_times_in_other_offsets_read_back_as_the_same_instant(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    plus_two = timezone(timedelta(hours=2))
    expires = datetime(2026, 1, 1, 12, 0, 0, 1, tzinfo=plus_two)
    found = stored_secret(uow, make_secret(expires_at=expires))
    assert found.expires_at == expires
    assert found.expires_at is not None and found.expires_at.utcoffset() == timedelta(0)


def test_audit_search_takes_events_since_a_time_and_before_another(uow: Factory) -> None:
    appended(uow, [audit_event(n) for n in range(1, 6)])
    with uow() as work:
        window = work.audit.search(
            AuditFilter(since=NOW + timedelta(minutes=2), until=NOW + timedelta(minutes=4)), 10
        )
        recent = work.audit.resources_with(
            ["secret:2", "secret:3"], "secret.read_value", "success", NOW + timedelta(minutes=3)
        )
    assert [e.seq for e in window] == [3, 2]
    assert recent == {"secret:3"}


def test_an_expired_token_is_not_stale_and_a_use_at_the_bound_is_recent(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    account = make_account(path=scopes["payments"].path)
    bound = NOW - timedelta(days=30)
    expired = make_token(account, 1, created_at=NOW - timedelta(days=90), expires_at=NOW)
    at_bound = make_token(account, 2, created_at=NOW - timedelta(days=90), last_used_at=bound)
    issued_at_bound = make_token(account, 3, created_at=bound)
    with uow() as work:
        work.service_accounts.add(account)
        for token in (expired, at_bound, issued_at_bound):
            work.service_accounts.add_token(token)
        work.commit()
    with uow(read_only=True) as work:
        stale = work.service_accounts.stale_tokens(bound, NOW)
    assert stale == []


# -- resolution and rotation policies ---------------------------------------------------------


def test_resolve_takes_live_secrets_of_the_scopes_and_their_ancestors_for_the_environment(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    other = ScopeRef(ScopeType.PROJECT, "other")
    with uow() as work:
        work.scopes.add(other, work.scopes.get(ACME))
        work.commit()
    expected = {
        stored_secret(uow, make_secret(GLOBAL, "everywhere")).id,
        stored_secret(uow, make_secret(ACME, "org-wide")).id,
        stored_secret(uow, make_secret(PAYMENTS, "db", environment=None)).id,
        stored_secret(uow, make_secret(PAYMENTS, "db", environment="prod")).id,
    }
    stored_secret(uow, make_secret(PAYMENTS, "db", environment="dev"))
    stored_secret(uow, make_secret(PAYMENTS, "gone", deleted_at=NOW))
    stored_secret(uow, make_secret(other, "not-ours"))
    stored_secret(uow, make_secret(PAYMENTS, "no-value", current_version=0), versions=0)
    with uow(read_only=True) as work:
        found = work.secrets.resolve([PAYMENTS], "prod", everything(), everything())
    assert {candidate.secret.id for candidate in found} == expected
    assert all(candidate.value_readable for candidate in found)
    assert all(candidate.current.version == 1 for candidate in found)


def test_resolve_shows_only_what_bindings_allow_and_says_what_may_be_read(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    bob = Principal("user:bob", "user")
    with uow() as work:
        work.bindings.add(
            make_binding("user:bob", PAYMENTS, scopes["payments"].path, role=Role.VIEWER)
        )
        work.bindings.add(
            make_binding(
                "user:bob", PAYMENTS, scopes["payments"].path, role=Role.READER, name_pattern="db*"
            )
        )
        work.commit()
    stored_secret(uow, make_secret(ACME, "org-wide"))
    db = stored_secret(uow, make_secret(PAYMENTS, "db"))
    api = stored_secret(uow, make_secret(PAYMENTS, "api"))
    with uow(read_only=True) as work:
        found = work.secrets.resolve(
            [PAYMENTS],
            None,
            access_query(bob, Action.LIST, NOW),
            access_query(bob, Action.READ_VALUE, NOW),
        )
    readable = {candidate.secret.id: candidate.value_readable for candidate in found}
    assert readable == {db.id: True, api.id: False}


def test_a_rotation_policy_reads_back_and_is_replaced_then_deleted(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    secret = stored_secret(uow, make_secret())
    policy = RotationPolicy(
        secret_id=secret.id,
        rotator="random",
        next_run_at=NOW + timedelta(days=1),
        created_at=NOW,
        created_by="user:setup",
        settings={"length": 40, "nested": {"list": [1, "two", None]}, "text": "päss ✓"},
        interval_seconds=86400,
        grace_seconds=60,
    )
    changed = replace(policy, rotator="webhook", cron="0 3 * * *", interval_seconds=None)
    with uow() as work:
        work.rotations.put(policy)
        work.commit()
    with uow(read_only=True) as work:
        assert work.rotations.get(secret.id) == policy
    with uow() as work:
        work.rotations.put(changed)
        work.commit()
    with uow(read_only=True) as work:
        assert work.rotations.get(secret.id) == changed
    with uow() as work:
        work.rotations.delete(secret.id)
        work.commit()
    with uow(read_only=True) as work:
        assert work.rotations.get(secret.id) is None


def test_finishing_a_run_without_a_worker_records_it_and_keeps_the_schedule(
    uow: Factory, scopes: dict[str, Any]
) -> None:
    secret = stored_secret(uow, make_secret())
    policy = RotationPolicy(
        secret_id=secret.id,
        rotator="random",
        next_run_at=NOW + timedelta(days=1),
        created_at=NOW,
        created_by="user:setup",
        interval_seconds=86400,
    )
    with uow() as work:
        work.rotations.put(policy)
        work.commit()
    with uow() as work:
        updated = work.rotations.finish_run(
            RotationRun(secret.id, NOW, "failed", error="the target refused the new value")
        )
        missing = work.rotations.finish_run(RotationRun(uuid.uuid4(), NOW, "success"))
        work.commit()
    with uow(read_only=True) as work:
        found = work.rotations.get(secret.id)
    assert (updated, missing) == (True, False)
    assert found is not None
    assert (found.last_run_at, found.last_status, found.last_error) == (
        NOW,
        "failed",
        "the target refused the new value",
    )
    assert found.next_run_at == policy.next_run_at


def test_scopes_are_listed_by_type_then_external_id(uow: Factory, scopes: dict[str, Any]) -> None:
    with uow() as work:
        acme = work.scopes.get(ACME)
        for scope_id in ["b-project", "A-project", "a-project", "_project"]:
            work.scopes.add(ScopeRef(ScopeType.PROJECT, scope_id), acme)
        work.commit()
    with uow(read_only=True) as work:
        found = work.scopes.search("project", everything(), EVERY_ROW)
    ids = [scope.ref.id for scope in found.items]
    assert ids == sorted(ids)


def test_audit_details_and_request_facts_read_back_as_written(uow: Factory) -> None:
    details = {
        "float": 1.5,
        "flag": True,
        "nothing": None,
        "list": [1, "a", {"k": "ä ✓"}],
        "count": 2**40,
    }
    [linked] = appended(
        uow,
        [
            audit_event(
                1,
                details=details,
                source_ip="203.0.113.7",
                user_agent="curl/8.5 (x86_64) ✓",
                request_id="req-1",
                scope="project:payments",
                scope_path="/1/2/",
                version=7,
                reason="the value expired",
                outcome="denied",
            )
        ],
    )
    with uow() as work:
        [stored] = list(work.audit.events())
    assert stored == linked
    assert stored.details == details
