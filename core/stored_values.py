"""A version's value in its storage backend, as a write puts it: stored (or sealed, to be
stored with the version row) before the metadata transaction that points at it, and destroyed
again when that transaction does not commit."""

from __future__ import annotations

import logging
from datetime import datetime
from uuid import UUID

from core.domain.secrets import SecretVersion
from core.domain.values import Principal, SecretValue, VersionKey
from core.policy import ValueChecksum
from ports.storage import StorageBackend

log = logging.getLogger(__name__)

# A writer without If-Match retries when another writer took the next version number first.
MAX_WRITE_ATTEMPTS = 5


def store_value(
    backend: StorageBackend,
    checksum: ValueChecksum,
    secret_id: UUID,
    number: int,
    value: SecretValue,
    actor: Principal,
    now: datetime,
) -> SecretVersion:
    """Put one version's value to its backend; the version row pointing at it, not yet saved.
    A backend keeping values in the service's database only seals it: the row carries the
    ciphertext (`stored`) and adding the version stores both in one transaction."""
    key = VersionKey(secret_id, number)
    stored = None
    if backend.capabilities.stored_with_metadata:
        locator, stored = backend.seal(key, value)
    else:
        locator = backend.put(key, value)
    return SecretVersion(
        secret_id=secret_id,
        version=number,
        backend=backend.name,
        locator=locator,
        checksum=checksum.of(value),
        created_at=now,
        created_by=actor.id,
        stored=stored,
    )


def discard_value(backend: StorageBackend, record: SecretVersion) -> None:
    """Best effort: remove a value whose metadata transaction did not commit."""
    try:
        backend.destroy(VersionKey(record.secret_id, record.version), record.locator)
    except Exception:  # the original failure is what the caller must see
        log.warning(
            "could not remove the orphaned value of secret %s version %s from backend '%s'",
            record.secret_id,
            record.version,
            backend.name,
            exc_info=True,
        )
