"""Service accounts and their API tokens: issued here, shown once, stored as SHA-256 hashes.

An account's name is its owner scope's own (`ServiceAccount.principal` carries the scope for
any but the global one), so no tenant's name blocks or reveals another's."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as token_source
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from core.access import INVALID_CREDENTIALS, allowed, authorize, caller_bindings, confirm_caller
from core.audit import Attempt, AuditTrail
from core.domain.access import Action, Target
from core.domain.accounts import ApiToken, ServiceAccount
from core.domain.audit import AuditAction
from core.domain.callers import Caller, cached_token
from core.domain.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from core.domain.paging import Page, PageRequest
from core.domain.values import Principal, ScopeRef, ScopeType
from core.policy import check_scope
from core.read_cache import ReadCache
from ports.security import Clock
from ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

TOKEN_PREFIX = "smt_"  # noqa: S105 - a marker, not a credential
ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")
MAX_PRINCIPAL = 255  # the principal columns' width
# A use is recorded at most this often per token, to spare the database a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A token looked up is kept this long at most in the token cache. Every use of a cached lookup
# is checked against the change generation in the transaction that does the work (value reads
# when their audit event commits, see core/read_cache.py; everything else in `authorize`, see
# `core.access.confirm_caller`), so a revoked token is refused at once, whatever this says.
TOKEN_CACHE_SECONDS = 5.0
BINDINGS_PAGE = 500  # bindings naming one principal, read a page at a time


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_api_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


class ServiceAccountService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        audit: AuditTrail,
        cache: ReadCache | None = None,
    ) -> None:
        self._cache = cache if cache is not None and cache.enabled else None
        self._uow_factory = uow_factory
        self._clock = clock
        self._audit = audit

    def create(
        self, actor: Principal, name: str, scope: ScopeRef, description: str = ""
    ) -> ServiceAccount:
        if not ACCOUNT_NAME.fullmatch(name):
            raise InvalidInput(
                f"invalid service account name: it must match {ACCOUNT_NAME.pattern}",
                details={"field": "name"},
            )
        check_scope(scope)
        if scope.type is ScopeType.USER:
            raise InvalidInput(
                "service accounts belong to shared scopes", details={"field": "scope"}
            )
        now = self._clock.now()
        account = ServiceAccount(uuid.uuid4(), name, scope, "", description, now, actor.id)
        if len(account.principal) > MAX_PRINCIPAL:
            raise InvalidInput(
                f"the account's principal {account.principal} is longer than {MAX_PRINCIPAL} "
                "characters: choose a shorter name",
                details={"field": "name"},
            )
        with (
            self._audit.attempt(
                actor,
                AuditAction.SERVICE_ACCOUNT_CREATE,
                f"scope:{scope}",
                scope=str(scope),
                details={"name": name},
            ) as attempt,
            self._uow_factory() as uow,
        ):
            owner = uow.scopes.get(scope)
            if owner is None:
                raise NotFound(f"no scope {scope}")
            attempt.learn(scope_path=owner.path)
            authorize(uow, actor, Action.ADMIN, Target(owner.ref, owner.path), now)
            # Bindings name principals, not accounts: a new account inherits every binding
            # already naming it, so its creator must administer the scope of each (an operator
            # who bound `service:bootstrap` first may then create it; nobody else inherits one).
            principal = account.principal
            if not self._may_inherit(uow, actor, principal, now):
                raise Conflict(
                    f"role bindings already name {principal}; remove them before creating it",
                    details={"field": "name"},
                )
            account = replace(account, scope_path=owner.path)
            uow.service_accounts.add(account)  # `Conflict` if the scope has one of that name
            attempt.succeed(uow, resource=f"service_account:{account.id}")
            uow.commit()
        return account

    def _may_inherit(
        self, uow: UnitOfWork, actor: Principal, principal: str, now: datetime
    ) -> bool:
        """Whether `actor` administers the scope of every binding already naming `principal`."""
        mine = caller_bindings(uow, actor, now)
        page = PageRequest(page_size=BINDINGS_PAGE)
        while True:
            found = uow.bindings.search(None, principal, page)
            for binding in found.items:
                target = Target(binding.scope, binding.scope_path)
                if not allowed(actor, Action.ADMIN, target, mine, now):
                    return False
            if page.offset + len(found.items) >= found.total or not found.items:
                return True
            page = PageRequest(page=page.page + 1, page_size=BINDINGS_PAGE)

    def get(self, actor: Principal, account_id: UUID) -> ServiceAccount:
        with self._audited(actor, AuditAction.SERVICE_ACCOUNT_READ, account_id) as (attempt, uow):
            account = self._load(uow, actor, account_id, attempt)
            attempt.succeed(uow)
            uow.commit()
        return account

    def list_accounts(
        self, actor: Principal, scope: ScopeRef, page: PageRequest
    ) -> Page[ServiceAccount]:
        check_scope(scope)
        with (
            self._audit.attempt(
                actor, AuditAction.SERVICE_ACCOUNT_LIST, f"scope:{scope}", scope=str(scope)
            ) as attempt,
            self._uow_factory() as uow,
        ):
            owner = uow.scopes.get(scope)
            if owner is None:
                raise NotFound(f"no scope {scope}")
            authorize(uow, actor, Action.ADMIN, Target(owner.ref, owner.path), self._clock.now())
            accounts = uow.service_accounts.search(scope, page)
            attempt.succeed(uow, scope_path=owner.path)
            uow.commit()
        return accounts

    def delete(self, actor: Principal, account_id: UUID) -> None:
        """Remove the account with its tokens and every role binding naming it."""
        with self._audited(actor, AuditAction.SERVICE_ACCOUNT_DELETE, account_id) as (attempt, uow):
            self._load(uow, actor, account_id, attempt)
            uow.service_accounts.delete(account_id)
            attempt.succeed(uow)
            uow.commit()

    def tokens(self, actor: Principal, account_id: UUID) -> list[ApiToken]:
        with self._audited(actor, AuditAction.TOKEN_LIST, account_id) as (attempt, uow):
            self._load(uow, actor, account_id, attempt)
            tokens = uow.service_accounts.tokens(account_id)
            attempt.succeed(uow)
            uow.commit()
        return tokens

    def issue_token(
        self,
        actor: Principal,
        account_id: UUID,
        *,
        description: str = "",
        expires_at: datetime | None = None,
    ) -> tuple[ApiToken, str]:
        """A new 256-bit token. The plaintext is returned once here and never stored."""
        now = self._clock.now()
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("expires_at is in the past", details={"field": "expires_at"})
        plaintext = TOKEN_PREFIX + token_source.token_urlsafe(32)
        with self._audited(actor, AuditAction.TOKEN_ISSUE, account_id) as (attempt, uow):
            self._load(uow, actor, account_id, attempt)
            token = ApiToken(
                id=uuid.uuid4(),
                account_id=account_id,
                token_hash=hash_token(plaintext),
                prefix=plaintext[: len(TOKEN_PREFIX) + 6],
                description=description,
                created_at=now,
                created_by=actor.id,
                expires_at=expires_at,
            )
            uow.service_accounts.add_token(token)
            attempt.succeed(uow, details={"token_id": str(token.id), "prefix": token.prefix})
            uow.commit()
        return token, plaintext

    def revoke_token(self, actor: Principal, account_id: UUID, token_id: UUID) -> None:
        with self._audited(actor, AuditAction.TOKEN_REVOKE, account_id) as (attempt, uow):
            self._load(uow, actor, account_id, attempt)
            attempt.learn(details={"token_id": str(token_id)})
            if not any(token.id == token_id for token in uow.service_accounts.tokens(account_id)):
                raise NotFound(f"service account {account_id} has no token {token_id}")
            uow.service_accounts.revoke_token(token_id, self._clock.now())
            attempt.succeed(uow)
            uow.commit()

    def authenticate(self, token: str) -> Caller:
        """The service account an API token stands for. Every failure looks the same."""
        token_hash = hash_token(token)
        now = self._clock.now()
        cache = self._cache
        hit = cache.get(("token", token_hash)) if cache is not None else None
        generation: int | None = None
        label: int | None
        if hit is not None:
            (record, account), generation = hit
            label = generation
        else:
            label = cache.generation() if cache is not None else None
            with self._uow_factory(read_only=True) as uow:
                found = uow.service_accounts.token_by_hash(token_hash)
            if found is None:
                raise Unauthenticated(INVALID_CREDENTIALS)
            if cache is not None:
                cache.put(("token", token_hash), found, label, TOKEN_CACHE_SECONDS)
            record, account = found
        if not hmac.compare_digest(record.token_hash, token_hash) or not record.usable(now):
            raise Unauthenticated(INVALID_CREDENTIALS)
        not_since = now - LAST_USED_RESOLUTION
        if record.last_used_at is None or record.last_used_at < not_since:
            # Most requests skip this write: the token was used moments ago.
            with self._uow_factory() as uow:
                uow.service_accounts.touch_token(record.id, now, not_since)
                uow.commit()
            if cache is not None:  # the cached copy knows it: the next hits do not write again
                touched = replace(record, last_used_at=now)
                cache.put(("token", token_hash), (touched, account), label, TOKEN_CACHE_SECONDS)
        return Caller(
            id=account.principal, kind="service", token_id=record.id, generation=generation
        )

    def confirm(self, actor: Principal) -> Principal:
        """The caller, its API token confirmed if the token cache found it (as `authorize` does
        for every use case): for an answer that reads nothing else, such as who it is."""
        if cached_token(actor) is not None:
            with self._uow_factory(read_only=True) as uow:
                confirm_caller(uow, actor, self._clock.now())
        return actor

    @contextmanager
    def _audited(
        self, actor: Principal, action: AuditAction, account_id: UUID
    ) -> Iterator[tuple[Attempt, UnitOfWork]]:
        with (
            self._audit.attempt(actor, action, f"service_account:{account_id}") as attempt,
            self._uow_factory() as uow,
        ):
            yield attempt, uow

    def _load(
        self, uow: UnitOfWork, actor: Principal, account_id: UUID, attempt: Attempt
    ) -> ServiceAccount:
        account = uow.service_accounts.get(account_id)
        if account is None:  # a caller whose token went with its account is told that first
            confirm_caller(uow, actor, self._clock.now())
            raise NotFound(f"no service account {account_id}")
        attempt.learn(scope=str(account.scope), scope_path=account.scope_path)
        try:
            authorize(
                uow,
                actor,
                Action.ADMIN,
                Target(account.scope, account.scope_path),
                self._clock.now(),
            )
        except NotFound:
            raise NotFound(f"no service account {account_id}") from None
        return account
