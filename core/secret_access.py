"""The secret a use case acts on: loaded, the caller authorized for what it does (the same
`NotFound` as for no secret when it may not see it), its place told to the audit attempt, its
revision checked for `If-Match`; and every secret a search finds, page by page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from uuid import UUID

from core.access import authorize
from core.audit import Attempt
from core.domain.access import AccessQuery, Action, Target
from core.domain.errors import NotFound, PreconditionFailed
from core.domain.paging import PageRequest
from core.domain.secrets import Secret, SecretFilter, SecretVersion
from core.domain.values import Principal
from ports.unit_of_work import UnitOfWork

LIST_PAGE = 500


def audit_place(secret: Secret) -> dict[str, str]:
    """Where a secret sits, as audit events record it."""
    return {"scope": str(secret.scope), "scope_path": secret.scope_path}


def secret_target(secret: Secret) -> Target:
    return Target(secret.scope, secret.scope_path, secret_id=secret.id, name=secret.name)


def load_secret(
    uow: UnitOfWork,
    actor: Principal,
    action: Action,
    secret_id: UUID,
    attempt: Attempt,
    now: datetime,
    *,
    include_deleted: bool = False,
    lock: bool = False,
) -> Secret:
    """The secret (a live one unless `include_deleted`), if the caller may do `action` to it;
    `NotFound` if it may not see it. With `lock`, its row is locked for the rest of the
    (writing) unit of work."""
    secret = uow.secrets.lock(secret_id) if lock else uow.secrets.get(secret_id)
    if secret is None or (secret.is_deleted and not include_deleted):
        raise NotFound(f"no secret {secret_id}")
    attempt.learn(**audit_place(secret))
    authorize(uow, actor, action, secret_target(secret), now)
    return secret


def load_version(uow: UnitOfWork, secret_id: UUID, number: int) -> SecretVersion:
    record = uow.secrets.get_version(secret_id, number)
    if record is None:
        raise NotFound(f"secret {secret_id} has no version {number}")
    return record


def check_revision(secret: Secret, expected_revision: int | None) -> None:
    if expected_revision is not None and expected_revision != secret.revision:
        raise PreconditionFailed(
            f"secret {secret.id} is at revision {secret.revision}, not {expected_revision}",
            details={"revision": secret.revision},
        )


def search_all(uow: UnitOfWork, criteria: SecretFilter, access: AccessQuery) -> Iterator[Secret]:
    """Every secret the search finds, page by page. A filter without an environment finds every
    environment: callers keep the one they mean (None being the environment-agnostic one)."""
    page = PageRequest(1, LIST_PAGE)
    while True:
        batch = uow.secrets.search(criteria, page, access)
        yield from batch.items
        if not batch.items or page.offset + len(batch.items) >= batch.total:
            return
        page = PageRequest(page.page + 1, LIST_PAGE)
