"""A scope names its parent on the fakes, registered, read and listed (the global scope has
none), as it does in the database (tests/e2e/test_scope_parents.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.domain.paging import PageRequest
from core.domain.values import Principal, ScopeRef, ScopeType
from core.scopes import ScopeService
from tests.fakes import FakeDatabase, FakeUnitOfWorkFactory, FixedClock, make_audit_trail

ROOT = Principal("root", "root", is_root=True)
GLOBAL = ScopeRef.global_scope()
ACME = ScopeRef(ScopeType.ORGANIZATION, "acme")
TEAM = ScopeRef(ScopeType.TEAM, "t-1")


def test_a_scope_names_its_parent() -> None:
    db = FakeUnitOfWorkFactory(FakeDatabase())
    clock = FixedClock(datetime(2024, 6, 1, tzinfo=UTC))
    scopes = ScopeService(db, clock, make_audit_trail(db, clock))

    assert scopes.register(ROOT, ACME, GLOBAL).parent == GLOBAL
    assert scopes.register(ROOT, TEAM, ACME).parent == ACME
    assert scopes.get(ROOT, TEAM).parent == ACME
    assert scopes.get(ROOT, GLOBAL).parent is None
    listed = scopes.list_scopes(ROOT, None, PageRequest(1, 50)).items
    assert {scope.ref: scope.parent for scope in listed} == {GLOBAL: None, ACME: GLOBAL, TEAM: ACME}
