"""Listing one scope's secrets: the same secrets as the Python access rule allows, in the same
order as a list of every scope, and on PostgreSQL read from the index in order (no sort of the
scope, whatever its size: issue #20)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, event

from adapters.db.uow import SqlUnitOfWork
from core.access import access_query
from core.domain.access import Action
from core.domain.paging import PageRequest
from core.domain.secrets import Secret, SecretFilter
from core.domain.values import ScopeRef, ScopeType
from core.secret_access import secret_target
from tests.integration import test_access_repositories as access_world
from tests.integration.test_access_repositories import (
    CALLERS,
    EVERY_ROW,
    NOW,
    World,
    python_rule,
)

world = access_world.world  # the fixture: scopes, secrets and bindings of every kind


def test_one_scope_shows_exactly_what_the_python_rule_allows(world: World, engine: Engine):
    """Per scope: a caller that sees the whole scope, one that sees some of its secrets (a name
    pattern, one secret), one that sees none; live and deleted."""
    for deleted, scope in itertools.product((False, True), world.scopes.values()):
        in_scope = [s for s in world.secrets if s.scope == scope.ref and s.is_deleted == deleted]
        targets = [secret_target(s) for s in in_scope]
        for (caller, principal), action in itertools.product(CALLERS.items(), Action):
            with SqlUnitOfWork(engine) as uow:
                page = uow.secrets.search(
                    SecretFilter(scope=scope.ref, deleted=deleted),
                    EVERY_ROW,
                    access_query(principal, action, NOW),
                )
            assert page.total == len(page.items)
            expected = python_rule(world, principal, action, targets)
            assert {s.id for s in page.items} == expected, (caller, action, deleted, scope.ref)


def test_a_scope_is_listed_in_the_order_of_the_list_of_every_scope(world: World, engine: Engine):
    access = access_query(CALLERS["root"], Action.LIST, NOW)
    with SqlUnitOfWork(engine) as uow:
        everything = uow.secrets.search(SecretFilter(), EVERY_ROW, access).items
        for scope in world.scopes.values():
            own = [s.id for s in everything if s.scope == scope.ref]
            pages = [
                uow.secrets.search(SecretFilter(scope=scope.ref), PageRequest(page, 4), access)
                for page in range(1, 6)
            ]
            assert [s.id for p in pages for s in p.items] == own
            assert {p.total for p in pages} == {len(own)}


def test_an_unknown_scope_lists_nothing(world: World, engine: Engine):
    access = access_query(CALLERS["root"], Action.LIST, NOW)
    with SqlUnitOfWork(engine) as uow:
        page = uow.secrets.search(
            SecretFilter(scope=ScopeRef(ScopeType.PROJECT, "nowhere")), EVERY_ROW, access
        )
    assert (page.items, page.total) == ([], 0)


@pytest.mark.postgres
def test_a_page_of_a_large_scope_is_read_in_order_from_the_index(postgres_engine: Engine):
    """The page statement's plan has no Sort: PostgreSQL walks the scope's index and stops after
    the page (a sort of the whole scope made a page's cost grow with the scope)."""
    project = ScopeRef(ScopeType.PROJECT, "bulk")
    with SqlUnitOfWork(postgres_engine) as uow:
        root = uow.scopes.get(ScopeRef.global_scope())
        assert root is not None
        scope = uow.scopes.add(project, root)
        uow.secrets.add_many(
            [
                Secret(
                    id=uuid.uuid4(),
                    scope=project,
                    scope_path=scope.path,
                    name=f"BULK_{n:05d}",
                    backend="local",
                    created_at=datetime(2025, 1, 1, tzinfo=UTC),
                    created_by="user:alice",
                    current_version=1,
                )
                for n in range(5000)
            ]
        )
        uow.commit()
    with postgres_engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE secret_secrets")
        connection.exec_driver_sql("ANALYZE secret_scopes")
        connection.commit()
    statements: list[tuple[str, object]] = []

    def seen(conn: object, cursor: object, statement: str, parameters: object, *rest: object):
        if "LIMIT" in statement:
            statements.append((statement, parameters))

    event.listen(postgres_engine, "before_cursor_execute", seen)
    principal = CALLERS["root"]
    with SqlUnitOfWork(postgres_engine) as uow:
        page = uow.secrets.search(
            SecretFilter(scope=project),
            PageRequest(1, 100),
            access_query(principal, Action.LIST, NOW),
        )
    event.remove(postgres_engine, "before_cursor_execute", seen)
    assert [s.name for s in page.items] == [f"BULK_{n:05d}" for n in range(100)]
    assert page.total == 5000
    [(statement, parameters)] = statements
    with postgres_engine.connect() as connection:
        plan = "\n".join(
            row[0]
            for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters)  # type: ignore[arg-type]
        )
    assert "Sort" not in plan, plan
    assert "ix_secret_secrets_scope_pk_name_environment" in plan, plan


def test_a_listed_secret_is_the_secret_read_by_id(engine: Engine):
    """Every field of a listed secret (built from the row in one step, tags from their JSON
    text) equals the one `get` builds: tags empty or not, unicode, environments, stage labels,
    dates set or not, deleted or not."""
    team = ScopeRef(ScopeType.TEAM, "t-é")
    with SqlUnitOfWork(engine) as uow:
        root = uow.scopes.get(ScopeRef.global_scope())
        assert root is not None
        scope = uow.scopes.add(team, root)
        when = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
        variants = [
            {},
            {"tags": {"team": "ml", "ключ": "значение ✓", "empty": "", "quote": '"{}"'}},
            {"tags": {"{}": "{}"}, "environment": "production", "description": "d\\n"},
            {"environment": "staging", "expires_at": when, "not_before": when, "max_versions": 3},
            {"updated_at": when, "updated_by": "user:bob", "revision": 7, "type": "password"},
            {"current_version": 4, "latest_version": 6, "previous_version": 3},
            {"current_version": 2, "pending_version": 3},
            {"consumer": "ci", "deleted_at": when, "purge_after": when},
        ]
        made = [
            Secret(
                id=uuid.uuid4(),
                scope=team,
                scope_path=scope.path,
                name=f"S_{n}",
                backend="local",
                created_at=when,
                created_by="user:alice",
                **({"current_version": 1} | fields),
            )
            for n, fields in enumerate(variants)
        ]
        for secret in made:
            uow.secrets.add(secret)
        uow.commit()
    access = access_query(CALLERS["root"], Action.LIST, NOW)
    with SqlUnitOfWork(engine) as uow:
        listed = [
            *uow.secrets.search(SecretFilter(scope=team), EVERY_ROW, access).items,
            *uow.secrets.search(SecretFilter(scope=team, deleted=True), EVERY_ROW, access).items,
            *uow.secrets.search(SecretFilter(scope_type="team"), EVERY_ROW, access).items,
        ]
        by_id = {secret.id: uow.secrets.get(secret.id) for secret in made}
    assert len(listed) == len(made) + len(made) - 1
    for secret in listed:
        assert secret == by_id[secret.id]
        assert secret.__dict__ == by_id[secret.id].__dict__  # the same fields, the same types
