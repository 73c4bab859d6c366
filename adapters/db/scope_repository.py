"""The scope repository (`ports.repositories.scopes`) on SQLAlchemy Core, inside the caller's
transaction. It never commits: `SqlUnitOfWork` owns the connection and its transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from adapters.db.secret_rows import scope_is
from adapters.db.tables import (
    role_bindings,
    scopes,
    secrets,
    service_accounts,
)
from adapters.db.visibility import visible
from core.domain.access import AccessQuery
from core.domain.errors import Conflict
from core.domain.paging import Page, PageRequest
from core.domain.scopes import Scope, ScopeUsage
from core.domain.values import ScopeRef, ScopeType
from ports.repositories.scopes import ScopeRepository

SCOPE_ORDER = (scopes.c.type, scopes.c.external_id)
# A scope with its parent's name (none for the global scope).
PARENT_SCOPE = scopes.alias("parent_scope")
SELECT_SCOPE = select(
    scopes,
    PARENT_SCOPE.c.type.label("parent_type"),
    PARENT_SCOPE.c.external_id.label("parent_id"),
).select_from(scopes.outerjoin(PARENT_SCOPE, scopes.c.parent_pk == PARENT_SCOPE.c.pk))
# A version with its stage label, which the secret's pointers give.


class SqlScopeRepository(ScopeRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, ref: ScopeRef) -> Scope | None:
        row = self._connection.execute(SELECT_SCOPE.where(scope_is(ref))).first()
        return None if row is None else scope_from_row(row)

    def add(self, ref: ScopeRef, parent: Scope | None) -> Scope:
        created_at = datetime.now(UTC)
        statement = insert(scopes).values(
            type=ref.type.value,
            external_id=ref.id,
            parent_pk=parent.pk if parent else None,
            created_at=created_at,
            path="",
        )
        try:
            pk = self._connection.execute(statement).inserted_primary_key.pk
        except IntegrityError:
            raise Conflict(f"scope {ref} already exists", details={"scope": str(ref)}) from None
        path = f"{parent.path if parent else '/'}{pk}/"
        self._connection.execute(update(scopes).where(scopes.c.pk == pk).values(path=path))
        return Scope(
            pk=pk,
            ref=ref,
            path=path,
            parent_pk=parent.pk if parent else None,
            created_at=created_at,
            parent=parent.ref if parent else None,
        )

    def search(self, scope_type: str | None, access: AccessQuery, page: PageRequest) -> Page[Scope]:
        conditions = [visible(access)]
        if scope_type is not None:
            conditions.append(scopes.c.type == scope_type)
        total = self._connection.execute(
            select(func.count()).select_from(scopes).where(*conditions)
        ).scalar_one()
        rows = self._connection.execute(
            SELECT_SCOPE.where(*conditions)
            .order_by(*SCOPE_ORDER)
            .limit(page.page_size)
            .offset(page.offset)
        )
        items = [scope_from_row(row) for row in rows]
        return Page(items=items, total=total, page=page.page, page_size=page.page_size)

    def usage(self, scope: Scope) -> ScopeUsage:
        def count(table: Any, column: Any) -> int:
            statement = select(func.count()).select_from(table).where(column == scope.pk)
            return int(self._connection.execute(statement).scalar_one())

        return ScopeUsage(
            children=count(scopes, scopes.c.parent_pk),
            secrets=count(secrets, secrets.c.scope_pk),
            service_accounts=count(service_accounts, service_accounts.c.scope_pk),
        )

    def delete(self, scope: Scope) -> None:
        self._connection.execute(delete(role_bindings).where(role_bindings.c.scope_pk == scope.pk))
        try:
            self._connection.execute(delete(scopes).where(scopes.c.pk == scope.pk))
        except IntegrityError:  # something was added to the scope since its usage was counted
            raise Conflict(
                f"scope {scope.ref} is not empty", details={"scope": str(scope.ref)}
            ) from None


def scope_from_row(row: Row[Any]) -> Scope:
    return Scope(
        pk=row.pk,
        ref=ScopeRef(ScopeType(row.type), row.external_id),
        path=row.path,
        parent_pk=row.parent_pk,
        created_at=row.created_at,
        parent=ScopeRef(ScopeType(row.parent_type), row.parent_id) if row.parent_type else None,
    )
