"""Repositories of role bindings, service accounts and API tokens, on SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from adapters.db.engine import KEEPS_CACHES
from adapters.db.tables import api_tokens, role_bindings, scopes, service_accounts
from adapters.db.visibility import glob_to_like
from core.domain.access import Role, RoleBinding
from core.domain.accounts import ApiToken, ServiceAccount
from core.domain.errors import Conflict, NotFound
from core.domain.paging import Page, PageRequest
from core.domain.values import ScopeRef, ScopeType
from ports.repositories.access import RoleBindingRepository, ServiceAccountRepository

SELECT_BINDING = select(
    role_bindings,
    scopes.c.type.label("scope_type"),
    scopes.c.external_id.label("scope_external_id"),
    scopes.c.path.label("scope_path"),
).select_from(role_bindings.join(scopes, role_bindings.c.scope_pk == scopes.c.pk))

TOKEN_FIELDS = (
    "id",
    "account_id",
    "token_hash",
    "prefix",
    "description",
    "created_at",
    "created_by",
    "expires_at",
    "revoked_at",
    "last_used_at",
)

SELECT_ACCOUNT = select(
    service_accounts,
    scopes.c.type.label("scope_type"),
    scopes.c.external_id.label("scope_external_id"),
    scopes.c.path.label("scope_path"),
).select_from(service_accounts.join(scopes, service_accounts.c.scope_pk == scopes.c.pk))


# The lookups every authenticated request makes (the caller's token, its role bindings), built
# once: a statement built per call costs more CPU (its clauses coerced, its cache key computed)
# than the round trip it makes.
TOKEN_BY_HASH = (
    SELECT_ACCOUNT.add_columns(*(column.label(f"t_{column.name}") for column in api_tokens.c))
    .join(api_tokens, api_tokens.c.account_id == service_accounts.c.id)
    .where(api_tokens.c.token_hash == bindparam("token_hash"))
)
TOKEN_BY_ID = select(api_tokens).where(api_tokens.c.id == bindparam("token_id"))
BINDINGS_FOR_IDENTITIES = SELECT_BINDING.where(
    role_bindings.c.principal.in_(bindparam("identities", expanding=True)),
    or_(role_bindings.c.expires_at.is_(None), role_bindings.c.expires_at > bindparam("now")),
)


def _scope_pk(connection: Connection, ref: ScopeRef) -> int:
    pk = connection.execute(
        select(scopes.c.pk).where(scopes.c.type == ref.type.value, scopes.c.external_id == ref.id)
    ).scalar_one_or_none()
    if pk is None:
        raise NotFound(f"no scope {ref}")
    return int(pk)


def _unexpired(column: Any, now: datetime) -> Any:
    return or_(column.is_(None), column > now)


class SqlRoleBindingRepository(RoleBindingRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, binding: RoleBinding) -> None:
        self._connection.execute(
            insert(role_bindings).values(
                id=binding.id,
                principal=binding.principal,
                role=binding.role.value,
                scope_pk=_scope_pk(self._connection, binding.scope),
                secret_id=binding.secret_id,
                name_pattern=binding.name_pattern,
                name_like=glob_to_like(binding.name_pattern) if binding.name_pattern else None,
                created_at=binding.created_at,
                created_by=binding.created_by,
                expires_at=binding.expires_at,
            )
        )

    def get(self, binding_id: UUID) -> RoleBinding | None:
        row = self._connection.execute(
            SELECT_BINDING.where(role_bindings.c.id == binding_id)
        ).first()
        return None if row is None else _binding_from_row(row)

    def delete(self, binding_id: UUID) -> None:
        self._connection.execute(delete(role_bindings).where(role_bindings.c.id == binding_id))

    def for_identities(self, identities: Sequence[str], now: datetime) -> list[RoleBinding]:
        rows = self._connection.execute(
            BINDINGS_FOR_IDENTITIES, {"identities": list(identities), "now": now}
        )
        return [_binding_from_row(row) for row in rows]

    def at_or_above(self, scope_path: str, now: datetime) -> list[RoleBinding]:
        keys = scope_path.strip("/").split("/")
        ancestors = ["/" + "/".join(keys[:depth]) + "/" for depth in range(1, len(keys) + 1)]
        rows = self._connection.execute(
            SELECT_BINDING.where(
                scopes.c.path.in_(ancestors),
                _unexpired(role_bindings.c.expires_at, now),
            ).order_by(scopes.c.path, role_bindings.c.principal)
        )
        return [_binding_from_row(row) for row in rows]

    def search(
        self, scope: ScopeRef | None, principal: str | None, page: PageRequest
    ) -> Page[RoleBinding]:
        conditions = []
        if scope is not None:
            conditions.append(role_bindings.c.scope_pk == _scope_pk(self._connection, scope))
        if principal is not None:
            conditions.append(role_bindings.c.principal == principal)
        total = self._connection.execute(
            select(func.count()).select_from(role_bindings).where(*conditions)
        ).scalar_one()
        rows = self._connection.execute(
            SELECT_BINDING.where(*conditions)
            .order_by(scopes.c.path, role_bindings.c.principal, role_bindings.c.created_at)
            .limit(page.page_size)
            .offset(page.offset)
        )
        items = [_binding_from_row(row) for row in rows]
        return Page(items=items, total=total, page=page.page, page_size=page.page_size)


class SqlServiceAccountRepository(ServiceAccountRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, account: ServiceAccount) -> None:
        try:
            self._connection.execute(
                insert(service_accounts).values(
                    id=account.id,
                    name=account.name,
                    scope_pk=_scope_pk(self._connection, account.scope),
                    description=account.description,
                    created_at=account.created_at,
                    created_by=account.created_by,
                )
            )
        except IntegrityError:  # the name is taken in the same scope
            raise Conflict(
                f"scope {account.scope} has a service account named '{account.name}' already"
            ) from None

    def get(self, account_id: UUID) -> ServiceAccount | None:
        row = self._connection.execute(
            SELECT_ACCOUNT.where(service_accounts.c.id == account_id)
        ).first()
        return None if row is None else _account_from_row(row)

    def search(self, scope: ScopeRef | None, page: PageRequest) -> Page[ServiceAccount]:
        conditions = []
        if scope is not None:
            conditions.append(service_accounts.c.scope_pk == _scope_pk(self._connection, scope))
        total = self._connection.execute(
            select(func.count()).select_from(service_accounts).where(*conditions)
        ).scalar_one()
        rows = self._connection.execute(
            SELECT_ACCOUNT.where(*conditions)
            .order_by(service_accounts.c.name)
            .limit(page.page_size)
            .offset(page.offset)
        )
        items = [_account_from_row(row) for row in rows]
        return Page(items=items, total=total, page=page.page, page_size=page.page_size)

    def delete(self, account_id: UUID) -> None:
        account = self.get(account_id)
        if account is None:
            return
        self._connection.execute(delete(api_tokens).where(api_tokens.c.account_id == account_id))
        self._connection.execute(
            delete(role_bindings).where(role_bindings.c.principal == account.principal)
        )
        self._connection.execute(
            delete(service_accounts).where(service_accounts.c.id == account_id)
        )

    def add_token(self, token: ApiToken) -> None:
        self._connection.execute(
            insert(api_tokens).values(
                id=token.id,
                account_id=token.account_id,
                token_hash=token.token_hash,
                prefix=token.prefix,
                description=token.description,
                created_at=token.created_at,
                created_by=token.created_by,
                expires_at=token.expires_at,
                revoked_at=token.revoked_at,
                last_used_at=token.last_used_at,
            )
        )

    def tokens(self, account_id: UUID) -> list[ApiToken]:
        rows = self._connection.execute(
            select(api_tokens)
            .where(api_tokens.c.account_id == account_id)
            .order_by(api_tokens.c.created_at)
        )
        return [_token_from_row(row) for row in rows]

    def token(self, token_id: UUID) -> ApiToken | None:
        # A cached token is confirmed with this one when the change generation moved on.
        row = self._connection.execute(TOKEN_BY_ID, {"token_id": token_id}).first()
        return None if row is None else _token_from_row(row)

    def token_by_hash(self, token_hash: str) -> tuple[ApiToken, ServiceAccount] | None:
        # One query for the token and its account: this runs on every API-token request.
        row = self._connection.execute(TOKEN_BY_HASH, {"token_hash": token_hash}).first()
        if row is None:
            return None
        token = _token_from_row(row, prefix="t_")
        return token, _account_from_row(row)

    def revoke_token(self, token_id: UUID, at: datetime) -> None:
        self._connection.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    def stale_tokens(
        self, unused_since: datetime, now: datetime
    ) -> list[tuple[ApiToken, ServiceAccount]]:
        rows = self._connection.execute(
            select(api_tokens)
            .where(
                api_tokens.c.revoked_at.is_(None),
                _unexpired(api_tokens.c.expires_at, now),
                or_(
                    api_tokens.c.last_used_at < unused_since,
                    (api_tokens.c.last_used_at.is_(None))
                    & (api_tokens.c.created_at < unused_since),
                ),
            )
            .order_by(api_tokens.c.created_at)
        )
        tokens = [_token_from_row(row) for row in rows]
        accounts = {token.account_id: self.get(token.account_id) for token in tokens}
        return [(token, account) for token in tokens if (account := accounts[token.account_id])]

    def touch_token(self, token_id: UUID, at: datetime, not_since: datetime) -> None:
        self._connection.execute(
            update(api_tokens)
            .where(
                api_tokens.c.id == token_id,
                or_(api_tokens.c.last_used_at.is_(None), api_tokens.c.last_used_at < not_since),
            )
            .values(last_used_at=at)
            # Bookkeeping only: read caches stay valid (adapters/db/engine.py).
            .execution_options(**{KEEPS_CACHES: True})
        )


def _scope_ref(row: Row[Any]) -> ScopeRef:
    return ScopeRef(ScopeType(row.scope_type), row.scope_external_id)


def _binding_from_row(row: Row[Any]) -> RoleBinding:
    return RoleBinding(
        id=row.id,
        principal=row.principal,
        role=Role(row.role),
        scope=_scope_ref(row),
        scope_path=row.scope_path,
        created_at=row.created_at,
        created_by=row.created_by,
        secret_id=row.secret_id,
        name_pattern=row.name_pattern,
        expires_at=row.expires_at,
    )


def _account_from_row(row: Row[Any]) -> ServiceAccount:
    return ServiceAccount(
        id=row.id,
        name=row.name,
        scope=_scope_ref(row),
        scope_path=row.scope_path,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _token_from_row(row: Row[Any], prefix: str = "") -> ApiToken:
    field = row._mapping
    return ApiToken(**{name: field[prefix + name] for name in TOKEN_FIELDS})
