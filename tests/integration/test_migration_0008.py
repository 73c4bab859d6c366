"""Migration 0008 on SQLite and PostgreSQL: service-account names become their scope's own, and
the bindings of accounts outside the global scope follow their new principal."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from adapters.db import migrate
from adapters.db.engine import create_engine_from_url
from adapters.db.uow import SqlUnitOfWork
from core.domain.accounts import ServiceAccount
from core.domain.paging import PageRequest
from core.domain.values import ScopeRef, ScopeType
from tests.integration.test_migrations import migrate_to

ACME = ScopeRef(ScopeType.ORGANIZATION, "acme")
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    engine = create_engine_from_url(empty_database_url, track_changes=False)
    yield engine
    engine.dispose()


def add_account(engine: Engine, name: str, scope_pk: int) -> uuid.UUID:
    account_id = uuid.uuid4()
    stored = account_id.hex if engine.dialect.name == "sqlite" else str(account_id)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO secret_service_accounts (id, name, scope_pk, description,"
                " created_at, created_by) VALUES (:id, :name, :scope, '', :now, 'root')"
            ),
            {"id": stored, "name": name, "scope": scope_pk, "now": NOW},
        )
    return account_id


def bind(engine: Engine, principal: str, scope_pk: int = 1) -> None:
    binding_id = uuid.uuid4()
    stored = binding_id.hex if engine.dialect.name == "sqlite" else str(binding_id)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO secret_role_bindings (id, principal, role, scope_pk, created_at,"
                " created_by) VALUES (:id, :principal, 'reader', :scope, :now, 'root')"
            ),
            {"id": stored, "principal": principal, "scope": scope_pk, "now": NOW},
        )


def principals(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT principal FROM secret_role_bindings"))
        return sorted(row.principal for row in rows)


def generation(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT generation FROM secret_audit_head")).scalar())


def test_bindings_follow_the_accounts_new_principals_and_names_are_per_scope(engine) -> None:
    migrate_to(engine, "0007")
    with SqlUnitOfWork(engine) as uow:
        acme = uow.scopes.add(ACME, uow.scopes.get(ScopeRef.global_scope()))
        uow.commit()
    add_account(engine, "ci", acme.pk)
    add_account(engine, "top", 1)
    for principal in ("service:ci", "service:top", "user:ci", "service:gone"):
        bind(engine, principal)
    before = generation(engine)

    migrate.upgrade(engine)

    assert principals(engine) == [
        "service:ci@organization:acme",
        "service:gone",
        "service:top",
        "user:ci",
    ]
    assert generation(engine) == before + 1
    with SqlUnitOfWork(engine) as uow:  # the repositories agree with what was renamed
        [account] = uow.service_accounts.search(ACME, PageRequest()).items
        assert account.principal == "service:ci@organization:acme"
        assert uow.bindings.for_identities([account.principal], NOW)
    migrate_to(engine, "0007", down=True)
    assert principals(engine) == ["service:ci", "service:gone", "service:top", "user:ci"]
    migrate.upgrade(engine)

    add_account(engine, "ci", 1)  # the same name in another scope
    with pytest.raises(IntegrityError):
        add_account(engine, "ci", acme.pk)  # but not twice in one


def test_the_principal_of_an_account_of_a_scope_is_qualified() -> None:
    account = ServiceAccount(uuid.uuid4(), "ci", ACME, "/1/2/", "", NOW, "root")
    assert account.principal == "service:ci@organization:acme"
