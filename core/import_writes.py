"""The writing half of an import (`core.imports`), a chunk of entries at a time, so that what an
import holds in memory stays about the same however long its file is.

Once the whole file is planned (and has neither errors nor conflicts), the file is read twice
more, `IMPORT_CHUNK` entries at a time: first every value is put to its backend (only a compact
record of each stays: where it went, to destroy it again if the import fails), then, in ONE
transaction, the rows of each chunk are inserted; the audit events follow at the end, a part at
a time under one lock of the chain (`Attempt.succeed_in_parts`), and the whole import commits at
once, or nothing does. The values go to their backends before that
transaction opens: the local backend writes them to the service's database in a transaction of
its own, which a SQLite write transaction left open would block.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import NamedTuple
from uuid import UUID

from core.audit import Attempt
from core.backends import BackendRegistry
from core.domain.audit import AuditAction, AuditEvent
from core.domain.secrets import Secret, SecretVersion
from core.domain.values import Principal, SecretValue, VersionKey
from core.policy import ValueChecksum
from core.transfer_requests import ImportAction, ImportItem, ImportRequest
from core.types import TypeRegistry, retyped_metadata, typed_metadata
from ports.formats import EntryError, ImportEntry, SecretFormat
from ports.security import Clock
from ports.storage import StorageBackend
from ports.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# Entries put, then written, per step: the objects of one chunk are dropped before the next.
IMPORT_CHUNK = 1000
# Values put to a backend per `put_many`: one round trip each for the local backend.
PUT_BATCH = 1000


class Stored(NamedTuple):
    """A value the import put to a backend: enough to point a version at it (and tell its
    audit event), or to destroy it."""

    backend: StorageBackend
    secret_id: UUID
    number: int
    locator: str
    checksum: str  # keyed, never the value


@dataclass(frozen=True)
class Written:
    """An entry the import creates or updates, with its diff item; for an update, the secret
    as the plan read it."""

    entry: ImportEntry
    item: ImportItem
    existing: Secret | None = None

    @property
    def values(self) -> tuple[SecretValue, ...]:
        assert self.entry.value is not None  # checked by the plan
        if self.existing is not None:
            return (self.entry.value,)
        return (*self.entry.history, self.entry.value)


def written_entries(
    content: Iterable[ImportEntry | EntryError],
    items: list[ImportItem],
    updated: dict[str, Secret],
) -> Iterator[list[Written]]:
    """The file's entries again, `IMPORT_CHUNK` at a time, with the plan's items: those it
    creates or updates. The file was planned without errors, so every entry has its item."""
    chunk: list[Written] = []
    position = 0
    for entry in content:
        if isinstance(entry, EntryError) or position >= len(items):
            raise RuntimeError("the import's file read differently the second time")  # a bug
        item = items[position]
        position += 1
        if (item.line, item.name) != (entry.line, entry.name):
            raise RuntimeError("the import's file read differently the second time")  # a bug
        if item.action is ImportAction.CREATE:
            chunk.append(Written(entry, item))
        elif item.action is ImportAction.UPDATE:
            chunk.append(Written(entry, item, updated[entry.name]))
        if len(chunk) >= IMPORT_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class _Rows:
    """What one chunk puts into the import's transaction."""

    secrets: list[Secret] = field(default_factory=list)
    updates: list[tuple[Secret, int]] = field(default_factory=list)  # (updated, old revision)
    versions: list[SecretVersion] = field(default_factory=list)


class ImportWriter:
    """Puts an import's values and writes its rows, chunk by chunk; remembers every value put
    (`discard` destroys them when the import fails) and the versions it wrote."""

    def __init__(
        self,
        backends: BackendRegistry,
        clock: Clock,
        checksum: ValueChecksum,
        types: TypeRegistry,
        actor: Principal,
        request: ImportRequest,
    ) -> None:
        self._backends = backends
        self._clock = clock
        self._checksum = checksum
        self._types = types
        self._actor = actor
        self._request = request
        self.stored: list[Stored] = []  # in the order of the entries and their versions
        self._next = 0  # the first of `stored` not yet written

    def put(self, chunk: list[Written]) -> None:
        """Put the chunk's values to their backends, many per call; each stored one is recorded
        at once, so a failure later destroys it again."""
        pending: list[tuple[StorageBackend, VersionKey, SecretValue]] = []
        for step in chunk:
            if step.existing is None:
                backend = self._backends.get(self._request.backend or self._backends.default)
                secret_id, first = uuid.uuid4(), 1
            else:
                backend = self._backends.get(step.existing.backend)
                secret_id, first = step.existing.id, step.existing.latest_version + 1
            for number, value in enumerate(step.values, start=first):
                pending.append((backend, VersionKey(secret_id, number), value))
        by_backend: dict[str, list[int]] = {}
        for index, (backend, _, _) in enumerate(pending):
            by_backend.setdefault(backend.name, []).append(index)
        locators: dict[int, str] = {}
        try:
            for indexes in by_backend.values():
                for start in range(0, len(indexes), PUT_BATCH):
                    batch = indexes[start : start + PUT_BATCH]
                    backend = pending[batch[0]][0]
                    found = backend.put_many([pending[i][1:] for i in batch])
                    locators.update(zip(batch, found, strict=True))
        finally:  # in the entries' order, whatever was stored before a failure
            self.stored.extend(
                Stored(
                    backend, key.secret_id, key.version, locators[index], self._checksum.of(value)
                )
                for index, (backend, key, value) in enumerate(pending)
                if index in locators
            )

    def write(self, uow: UnitOfWork, chunk: list[Written], secret_format: SecretFormat) -> None:
        """Insert and update the chunk's rows in `uow` (its values put already, in this order);
        the audit events of its versions follow from `stored` (`audit_events`)."""
        rows = _Rows()
        for step in chunk:
            if step.existing is None:
                self._new(step, secret_format, rows)
            else:
                self._next_version(step, secret_format, rows)
        uow.secrets.add_many(rows.secrets)
        uow.secrets.update_many(rows.updates)
        uow.secrets.add_versions(rows.versions)

    def audit_events(
        self, attempt: Attempt, items: Iterable[ImportItem]
    ) -> Iterator[list[AuditEvent]]:
        """The events of the versions written (the items' values, in `stored`),
        `IMPORT_CHUNK` at a time, each with its keyed checksum (never the value)."""
        part: list[AuditEvent] = []
        stored = iter(self.stored)
        for item in items:
            if item.action is ImportAction.CREATE:
                count, action = item.version or 1, AuditAction.SECRET_CREATE
            elif item.action is ImportAction.UPDATE:
                count, action = 1, AuditAction.SECRET_WRITE_VALUE
            else:
                continue
            for value in itertools.islice(stored, count):
                part.append(
                    replace(
                        attempt.related(
                            action if value.number == 1 else AuditAction.SECRET_WRITE_VALUE,
                            f"secret:{value.secret_id}",
                            version=value.number,
                        ),
                        details={"name": item.name, "via": "import", "value_hmac": value.checksum},
                    )
                )
            if len(part) >= IMPORT_CHUNK:
                yield part
                part = []
        if part:
            yield part

    def discard(self) -> None:
        """Best effort: destroy every value put, the import having failed."""
        for backend, secret_id, number, locator, _ in self.stored:
            try:
                backend.destroy(VersionKey(secret_id, number), locator)
            except Exception:  # the original failure is what the caller must see
                log.warning(
                    "could not remove the orphaned value of secret %s version %s from backend '%s'",
                    secret_id,
                    number,
                    backend.name,
                    exc_info=True,
                )

    def _versions(self, step: Written, secret: Secret, rows: _Rows) -> None:
        now = self._clock.now()
        for _ in step.values:
            stored = self.stored[self._next]
            self._next += 1
            assert stored.secret_id == secret.id  # put in the same order
            record = SecretVersion(
                secret_id=secret.id,
                version=stored.number,
                backend=stored.backend.name,
                locator=stored.locator,
                checksum=stored.checksum,
                created_at=now,
                created_by=self._actor.id,
            )
            rows.versions.append(record)

    def _new(self, step: Written, secret_format: SecretFormat, rows: _Rows) -> None:
        entry, now = step.entry, self._clock.now()
        values = step.values
        secret_type = entry.type or "generic"
        tags = _styled(dict(entry.tags or {}), secret_format, entry.style)
        secret = Secret(
            id=self.stored[self._next].secret_id,
            scope=self._request.scope,
            name=entry.name,
            environment=self._request.environment,
            type=secret_type,
            description=entry.description or "",
            consumer=entry.consumer or "other",
            backend=self.stored[self._next].backend.name,
            current_version=len(values),
            not_before=entry.not_before,
            max_versions=entry.max_versions,
            created_at=now,
            created_by=self._actor.id,
            **typed_metadata(tags, entry.expires_at, self._types.inspect(secret_type, values[-1])),
        )
        rows.secrets.append(secret)
        self._versions(step, secret, rows)

    def _next_version(self, step: Written, secret_format: SecretFormat, rows: _Rows) -> None:
        """The entry's value as the next version of its secret, as `WriteService` writes one."""
        secret, entry, now = step.existing, step.entry, self._clock.now()
        assert secret is not None and entry.value is not None  # an update of an existing secret
        typed = retyped_metadata(secret, self._types.inspect(secret.type, entry.value))
        updated = secret.with_new_version(
            secret.latest_version + 1,
            self._actor,
            now,
            expires_at=typed["expires_at"],
            tags=_styled(typed["tags"], secret_format, entry.style),
        )
        rows.updates.append((updated, secret.revision))
        self._versions(step, updated, rows)


def _styled(tags: dict[str, str], secret_format: SecretFormat, style: str | None) -> dict[str, str]:
    """The tags with the format's note on how the entry was written (or without it)."""
    if secret_format.style_tag is None:
        return tags
    tags.pop(secret_format.style_tag, None)
    if style:
        tags[secret_format.style_tag] = style
    return tags
