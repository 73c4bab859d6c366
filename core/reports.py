"""Compliance reports: what expires soon, what nobody reads, whose rotation is overdue, which
API tokens lie unused.

For admins and auditors: of the scope a report is narrowed to (its subtree), or of the global
scope. Who can read a given secret is `RoleBindingService.readers`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.access import access_query
from core.audit import AuditTrail
from core.audit_service import authorize_audit
from core.domain.access import Action
from core.domain.accounts import ApiToken, ServiceAccount
from core.domain.audit import AuditAction
from core.domain.errors import InvalidInput
from core.domain.paging import PageRequest
from core.domain.secrets import Secret, SecretFilter
from core.domain.values import Principal, ScopeRef
from ports.security import Clock
from ports.unit_of_work import UnitOfWork

MAX_ROWS = 500
MAX_DAYS = 3650


@dataclass(frozen=True)
class StaleToken:
    token: ApiToken
    account: ServiceAccount


class ReportService:
    def __init__(
        self, uow_factory: Callable[[], UnitOfWork], clock: Clock, audit: AuditTrail
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._audit = audit

    def expiring(self, actor: Principal, scope: ScopeRef | None, days: int) -> list[Secret]:
        """Live secrets that expire within `days` (or have expired), soonest first."""
        deadline = self._clock.now() + timedelta(days=_days(days))
        found = self._secrets(actor, AuditAction.REPORT_EXPIRING, scope, expires_before=deadline)
        return sorted(found, key=lambda secret: (secret.expires_at, secret.name))

    def never_read(self, actor: Principal, scope: ScopeRef | None, days: int) -> list[Secret]:
        """Live secrets older than `days` whose value nobody read in the last `days`."""
        since = self._clock.now() - timedelta(days=_days(days))
        candidates = self._secrets(
            actor, AuditAction.REPORT_NEVER_READ, scope, created_before=since
        )
        with self._uow_factory() as uow:
            read = uow.audit.resources_with(
                [f"secret:{secret.id}" for secret in candidates],
                AuditAction.SECRET_READ_VALUE.value,
                "success",
                since,
            )
        return [secret for secret in candidates if f"secret:{secret.id}" not in read]

    def rotation_overdue(
        self, actor: Principal, scope: ScopeRef | None, hours: int
    ) -> list[Secret]:
        """Secrets whose scheduled rotation is more than `hours` late, or whose last failed."""
        if not 0 <= hours <= MAX_DAYS * 24:
            raise InvalidInput("hours is out of range", details={"field": "hours"})
        late = self._clock.now() - timedelta(hours=hours)
        return self._secrets(
            actor, AuditAction.REPORT_ROTATION_OVERDUE, scope, rotation_overdue_at=late
        )

    def stale_tokens(self, actor: Principal, days: int) -> list[StaleToken]:
        """Service-account tokens not used in `days` (nor ever, if older): revoke candidates."""
        now = self._clock.now()
        with (
            self._audit.attempt(
                actor, AuditAction.REPORT_STALE_TOKENS, "service_accounts"
            ) as attempt,
            self._uow_factory() as uow,
        ):
            authorize_audit(uow, actor, None, now)
            stale = uow.service_accounts.stale_tokens(now - timedelta(days=_days(days)), now)
            attempt.succeed(uow, details={"count": len(stale)})
            uow.commit()
        return [StaleToken(token, account) for token, account in stale]

    def _secrets(
        self,
        actor: Principal,
        action: AuditAction,
        scope: ScopeRef | None,
        *,
        expires_before: datetime | None = None,
        created_before: datetime | None = None,
        rotation_overdue_at: datetime | None = None,
    ) -> list[Secret]:
        now = self._clock.now()
        label = str(scope) if scope else None
        with (
            self._audit.attempt(actor, action, f"scope:{label or 'global/global'}") as attempt,
            self._uow_factory() as uow,
        ):
            path = authorize_audit(uow, actor, scope, now)
            criteria = SecretFilter(
                under_path=path,
                expires_before=expires_before,
                created_before=created_before,
                rotation_overdue_at=rotation_overdue_at,
            )
            page = uow.secrets.search(
                criteria, PageRequest(1, MAX_ROWS), access_query(actor, Action.LIST, now)
            )
            attempt.succeed(uow, scope=label, scope_path=path, details={"count": page.total})
            uow.commit()
        return page.items


def _days(days: int) -> int:
    if not 0 <= days <= MAX_DAYS:
        raise InvalidInput(f"days is between 0 and {MAX_DAYS}", details={"field": "days"})
    return days
