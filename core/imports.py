"""Import: the secrets of one scope and environment at once, from a format plugin's file.

Import reads a file into entries (each with its line), checks every one (name, size, metadata,
type) and compares it with what the scope holds: each becomes `create`, `update`, `unchanged`,
`skipped` or — under the `fail` strategy — `conflict`. A dry run answers with that diff and the
errors. Otherwise an import is all or nothing: a file with an invalid entry imports nothing (422,
every error by line), a conflict under `fail` imports nothing (409); else every value is put to
its backend first and the whole import commits in one transaction with its audit events, and if
that transaction fails every value put is destroyed again. A file sealed by an export with a
passphrase (`ports.formats.ExportCipher`) is opened with the same passphrase.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from core.access import access_query, authorize
from core.audit import Attempt, AuditTrail
from core.backends import BackendRegistry
from core.domain.access import Action, Target
from core.domain.audit import AuditAction, AuditEvent
from core.domain.errors import Conflict, InvalidImport, InvalidInput, PreconditionFailed
from core.domain.secrets import Secret, SecretFilter, SecretVersion
from core.domain.values import Principal, SecretValue, VersionKey
from core.formats import FormatRegistry
from core.policy import SecretPolicy, ValueChecksum
from core.scopes import Placement, place
from core.secret_access import search_all
from core.stored_values import discard_value
from core.transfer_requests import (
    ConflictStrategy,
    ImportAction,
    ImportItem,
    ImportReport,
    ImportRequest,
    entry_error_details,
)
from core.types import TypeRegistry, retyped_metadata, typed_metadata
from ports.formats import EntryError, ExportCipher, ImportEntry, SecretFormat
from ports.security import Clock
from ports.storage import StorageBackend
from ports.types import TypeCheck
from ports.unit_of_work import UnitOfWork

# Values one import may hold, older versions included: what a file makes the service check,
# hold in memory and report is bounded, not only its size in bytes.
MAX_IMPORT_VALUES = 20_000
# Values put to a backend per `put_many`: one round trip each for the local backend.
PUT_BATCH = 1000


@dataclass
class _Planned:
    """An entry checked against the scope: its diff item, the checks of the values it writes,
    and the secret it updates."""

    entry: ImportEntry
    item: ImportItem
    checks: list[TypeCheck]
    existing: Secret | None = None


@dataclass(frozen=True)
class _Value:
    """A value the import writes as version `number` of `secret`, not yet in its backend."""

    backend: StorageBackend
    secret: Secret
    number: int
    value: SecretValue = field(repr=False)
    action: AuditAction  # its audit action


@dataclass
class _Writes:
    """What an import puts into its transaction, and the values already in their backends."""

    secrets: list[Secret] = field(default_factory=list)
    updates: list[tuple[Secret, int]] = field(default_factory=list)  # (updated, old revision)
    values: list[_Value] = field(default_factory=list)
    versions: list[tuple[StorageBackend, SecretVersion]] = field(default_factory=list)
    changes: list[tuple[AuditAction, Secret, SecretVersion]] = field(default_factory=list)

    def audit_events(self, attempt: Attempt) -> list[AuditEvent]:
        """One event per version written, with its keyed checksum (never the value)."""
        return [
            replace(
                attempt.related(action, f"secret:{secret.id}", version=record.version),
                details={"name": secret.name, "via": "import", "value_hmac": record.checksum},
            )
            for action, secret, record in self.changes
        ]


class ImportService:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        backends: BackendRegistry,
        clock: Clock,
        checksum: ValueChecksum,
        policy: SecretPolicy,
        audit: AuditTrail,
        types: TypeRegistry,
        formats: FormatRegistry,
        cipher: ExportCipher,
    ) -> None:
        self._uow_factory = uow_factory
        self._backends = backends
        self._clock = clock
        self._checksum = checksum
        self._policy = policy
        self._audit = audit
        self._types = types
        self._formats = formats
        self._cipher = cipher

    def import_secrets(
        self, actor: Principal, request: ImportRequest, stream: BinaryIO
    ) -> ImportReport:
        """Import the file in `stream` (seekable). Needs write access to the scope."""
        self._policy.check_metadata(environment=request.environment)
        details = {
            "environment": request.environment,
            "strategy": request.strategy.value,
            "dry_run": request.dry_run,
        }
        with self._audit.attempt(
            actor, AuditAction.SECRET_IMPORT, f"scope:{request.scope}", scope=str(request.scope)
        ) as attempt:
            attempt.learn(details=details)
            with self._uow_factory() as uow:
                placement = place(uow, actor, request.scope, request.parent, self._clock.now())
                attempt.learn(scope_path=placement.path)
                target = Target(request.scope, placement.path)
                authorize(uow, actor, Action.WRITE, target, self._clock.now())
            secret_format, content = self._open(request, stream)
            attempt.learn(details={**details, "format": secret_format.name})
            planned, errors = self._plan(actor, request, secret_format, content)
            report = ImportReport(
                format=secret_format.name,
                strategy=request.strategy,
                dry_run=request.dry_run,
                items=tuple(step.item for step in planned),
                errors=tuple(errors),
            )
            summary = {**attempt.event.details, **report.counts, "errors": len(errors)}
            if request.dry_run:
                with self._uow_factory() as uow:
                    attempt.succeed(uow, details=summary)
                    uow.commit()
            else:
                _refuse_partial(report)
                self._apply(actor, request, secret_format, placement, planned, attempt, summary)
            return report

    def _open(self, request: ImportRequest, stream: BinaryIO) -> tuple[SecretFormat, BinaryIO]:
        """The file's format and content: a sealed file is opened with the passphrase and names
        its format; another's is the one asked for, else the one its name suggests."""
        head = stream.read(len(self._cipher.magic))
        stream.seek(0)
        if not self._cipher.is_sealed(head):
            name = request.format or self._formats.for_filename(request.filename)
            if name is None:
                raise InvalidInput("name the file's format", details={"field": "format"})
            return self._formats.get(name), stream
        if not request.passphrase:
            raise InvalidInput(
                "the file is sealed with a passphrase: give it", details={"field": "passphrase"}
            )
        name, plaintext = self._cipher.open(stream.read(), request.passphrase)
        if request.format not in (None, name):
            raise InvalidInput(
                f"the sealed file holds the {name} format, not {request.format}",
                details={"field": "format"},
            )
        return self._formats.get(name), io.BytesIO(plaintext)

    def _plan(
        self,
        actor: Principal,
        request: ImportRequest,
        secret_format: SecretFormat,
        content: BinaryIO,
    ) -> tuple[list[_Planned], list[EntryError]]:
        """Every entry checked and compared with what the scope holds."""
        planned: list[_Planned] = []
        errors: list[EntryError] = []
        first_line: dict[str, int] = {}
        values = 0
        with self._uow_factory() as uow:
            existing = self._existing(uow, actor, request)
            currents = uow.secrets.current_versions([secret.id for secret in existing.values()])
            for entry in secret_format.parse(content):
                values += 1 + (len(entry.history) if isinstance(entry, ImportEntry) else 0)
                if values > MAX_IMPORT_VALUES:
                    raise InvalidInput(
                        f"the file holds more than {MAX_IMPORT_VALUES} entries and versions: "
                        "import it in parts",
                        details={"field": "file"},
                    )
                if isinstance(entry, EntryError):
                    errors.append(entry)
                    continue
                try:
                    if entry.name in first_line:
                        raise InvalidInput(
                            f"'{entry.name}' is also at line {first_line[entry.name]}",
                            details={"field": "name"},
                        )
                    first_line[entry.name] = entry.line
                    found = existing.get(entry.name)
                    current = currents.get(found.id) if found else None
                    planned.append(self._plan_entry(request, entry, found, current))
                except InvalidInput as error:
                    errors.append(
                        EntryError(
                            entry.line, error.message, entry.name, error.details.get("field")
                        )
                    )
        return planned, errors

    def _existing(
        self, uow: UnitOfWork, actor: Principal, request: ImportRequest
    ) -> dict[str, Secret]:
        """The scope's secrets of the environment by name, soft-deleted ones included: a few
        queries, however long the file (a race with another writer fails the commit)."""
        access = access_query(actor, Action.WRITE, self._clock.now())
        return {
            secret.name: secret
            for deleted in (True, False)
            for secret in search_all(
                uow,
                SecretFilter(scope=request.scope, environment=request.environment, deleted=deleted),
                access,
            )
            if secret.environment == request.environment
        }

    def _plan_entry(
        self,
        request: ImportRequest,
        entry: ImportEntry,
        existing: Secret | None,
        current: SecretVersion | None,
    ) -> _Planned:
        """Check one entry and decide what to do with it; `InvalidInput` says what is wrong."""
        self._policy.check_name(entry.name)
        if entry.value is None:
            raise InvalidInput("the entry has no value", details={"field": "value"})
        self._policy.check_metadata(
            consumer=entry.consumer,
            tags=dict(entry.tags) if entry.tags is not None else None,
            description=entry.description,
            max_versions=entry.max_versions,
            not_before=entry.not_before,
            expires_at=entry.expires_at,
        )
        secret_type = entry.type or (existing.type if existing else "generic")
        if existing is not None and secret_type != existing.type:
            raise InvalidInput(
                f"the secret is a {existing.type}; its type cannot become {secret_type}",
                details={"field": "type"},
            )
        backend = self._backends.get(
            existing.backend if existing else request.backend or self._backends.default
        )
        values = (entry.value,) if existing else (*entry.history, entry.value)
        checks = [self._check(secret_type, value, backend) for value in values]
        return _Planned(
            entry, self._diff(request, entry, existing, current, len(values)), checks, existing
        )

    def _check(self, secret_type: str, value: SecretValue, backend: StorageBackend) -> TypeCheck:
        self._policy.check_value(value, backend.capabilities.max_value_bytes, backend.name)
        check = self._types.inspect(secret_type, value)
        if not check.valid:
            problem = check.problems[0]
            raise InvalidInput(
                f"not a valid {secret_type}: {problem.field}: {problem.reason}",
                details={"field": problem.field},
            )
        return check

    def _diff(
        self,
        request: ImportRequest,
        entry: ImportEntry,
        existing: Secret | None,
        current: SecretVersion | None,
        versions: int,
    ) -> ImportItem:
        if existing is None:
            return ImportItem(entry.line, entry.name, ImportAction.CREATE, version=versions)
        item = ImportItem(
            entry.line,
            entry.name,
            ImportAction.SKIPPED,
            secret_id=existing.id,
            version=existing.current_version,
        )
        conflict = ImportAction.CONFLICT if request.strategy is ConflictStrategy.FAIL else None
        if existing.is_deleted:
            reason = "deleted; the name stays reserved until it is restored or purged"
            return replace(item, action=conflict or ImportAction.SKIPPED, reason=reason)
        assert entry.value is not None  # checked before
        if current is not None and self._checksum.matches(entry.value, current.checksum):
            return replace(item, action=ImportAction.UNCHANGED)
        if request.strategy is ConflictStrategy.OVERWRITE:
            return replace(item, action=ImportAction.UPDATE, version=existing.latest_version + 1)
        return replace(item, action=conflict or ImportAction.SKIPPED, reason="holds another value")

    def _apply(
        self,
        actor: Principal,
        request: ImportRequest,
        secret_format: SecretFormat,
        placement: Placement,
        planned: list[_Planned],
        attempt: Attempt,
        summary: dict[str, object],
    ) -> None:
        """Put every value, then commit every row and audit event in one transaction; if it
        fails, destroy the values again."""
        writes = _Writes()
        try:
            for step in planned:
                if step.item.action is ImportAction.CREATE:
                    self._put_new(actor, request, secret_format, step, writes)
                elif step.item.action is ImportAction.UPDATE:
                    self._put_next(actor, secret_format, step, writes)
            self._put_values(actor, writes)
            with self._uow_factory() as uow:
                scope = placement.create_if_missing(uow)
                attempt.learn(scope_path=scope.path)
                uow.secrets.add_many(writes.secrets)
                uow.secrets.update_many(writes.updates)
                uow.secrets.add_versions([record for _, record in writes.versions])
                attempt.succeed(uow, details=summary, also=writes.audit_events(attempt))
                uow.commit()
        except PreconditionFailed:
            _discard(writes)
            raise Conflict(
                "a secret of the import changed while it ran; nothing was imported, run it again"
            ) from None
        except BaseException:
            _discard(writes)
            raise

    def _put_new(
        self,
        actor: Principal,
        request: ImportRequest,
        secret_format: SecretFormat,
        step: _Planned,
        writes: _Writes,
    ) -> None:
        entry, now = step.entry, self._clock.now()
        assert entry.value is not None  # checked by the plan
        backend = self._backends.get(request.backend or self._backends.default)
        tags = _styled(dict(entry.tags or {}), secret_format, entry.style)
        secret = Secret(
            id=uuid.uuid4(),
            scope=request.scope,
            name=entry.name,
            environment=request.environment,
            type=entry.type or "generic",
            description=entry.description or "",
            consumer=entry.consumer or "other",
            backend=backend.name,
            current_version=len(step.checks),
            not_before=entry.not_before,
            max_versions=entry.max_versions,
            created_at=now,
            created_by=actor.id,
            **typed_metadata(tags, entry.expires_at, step.checks[-1]),
        )
        writes.secrets.append(secret)
        for number, value in enumerate((*entry.history, entry.value), start=1):
            action = AuditAction.SECRET_CREATE if number == 1 else AuditAction.SECRET_WRITE_VALUE
            writes.values.append(_Value(backend, secret, number, value, action))

    def _put_next(
        self, actor: Principal, secret_format: SecretFormat, step: _Planned, writes: _Writes
    ) -> None:
        """The entry's value as the next version of its secret, as `WriteService` writes one."""
        secret, entry, now = step.existing, step.entry, self._clock.now()
        assert secret is not None and entry.value is not None  # an update of an existing secret
        backend = self._backends.get(secret.backend)
        number = secret.latest_version + 1
        typed = retyped_metadata(secret, step.checks[-1])
        updated = secret.with_new_version(
            number,
            actor,
            now,
            expires_at=typed["expires_at"],
            tags=_styled(typed["tags"], secret_format, entry.style),
        )
        writes.updates.append((updated, secret.revision))
        writes.values.append(
            _Value(backend, updated, number, entry.value, AuditAction.SECRET_WRITE_VALUE)
        )

    def _put_values(self, actor: Principal, writes: _Writes) -> None:
        """Put the values to their backends, many per call; each stored one is recorded in
        `writes.versions` at once, so a failure later destroys it again."""
        now = self._clock.now()
        by_backend: dict[str, list[_Value]] = {}
        for pending in writes.values:
            by_backend.setdefault(pending.backend.name, []).append(pending)
        for batch in (
            values[start : start + PUT_BATCH]
            for values in by_backend.values()
            for start in range(0, len(values), PUT_BATCH)
        ):
            backend = batch[0].backend
            locators = backend.put_many(
                [(VersionKey(item.secret.id, item.number), item.value) for item in batch]
            )
            for item, locator in zip(batch, locators, strict=True):
                record = SecretVersion(
                    secret_id=item.secret.id,
                    version=item.number,
                    backend=backend.name,
                    locator=locator,
                    checksum=self._checksum.of(item.value),
                    created_at=now,
                    created_by=actor.id,
                )
                writes.versions.append((backend, record))
                writes.changes.append((item.action, item.secret, record))


def _refuse_partial(report: ImportReport) -> None:
    """Nothing is imported from a file with errors, nor under `fail` with a conflict."""
    if report.errors:
        raise InvalidImport(
            f"entries with errors: {len(report.errors)}; nothing was imported",
            details={"errors": [entry_error_details(error) for error in report.errors]},
        )
    conflicts = [item for item in report.items if item.action is ImportAction.CONFLICT]
    if conflicts:
        raise Conflict(
            f"names that already hold other values (strategy fail): {len(conflicts)}; "
            "nothing was imported",
            details={
                "conflicts": [
                    {"line": item.line, "name": item.name, "reason": item.reason}
                    for item in conflicts
                ]
            },
        )


def _discard(writes: _Writes) -> None:
    for backend, record in writes.versions:
        discard_value(backend, record)


def _styled(tags: dict[str, str], secret_format: SecretFormat, style: str | None) -> dict[str, str]:
    """The tags with the format's note on how the entry was written (or without it)."""
    if secret_format.style_tag is None:
        return tags
    tags.pop(secret_format.style_tag, None)
    if style:
        tags[secret_format.style_tag] = style
    return tags
