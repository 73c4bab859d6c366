"""Import: the secrets of one scope and environment at once, from a format plugin's file.

Import reads a file into entries (each with its line), checks every one (name, size, metadata,
type) and compares it with what the scope holds: each becomes `create`, `update`, `unchanged`,
`skipped` or — under the `fail` strategy — `conflict`. A dry run answers with that diff and the
errors. Otherwise an import is all or nothing: a file with an invalid entry imports nothing (422,
every error by line), a conflict under `fail` imports nothing (409); else every value is put to
its backend first and the whole import commits in one transaction with its audit events, and if
that transaction fails every value put is destroyed again. Only the plan's items are kept for the
whole file: the values are put and the rows written a chunk of entries at a time
(`core.import_writes`), so an import's memory does not grow with its file. A file sealed by an
export with a passphrase (`ports.formats.ExportCipher`) is opened with the same passphrase.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from core.access import access_query, authorize
from core.audit import Attempt, AuditTrail
from core.backends import BackendRegistry
from core.domain.access import Action, Target
from core.domain.audit import AuditAction
from core.domain.errors import Conflict, InvalidImport, InvalidInput, PreconditionFailed
from core.domain.secrets import Secret, SecretFilter, SecretVersion
from core.domain.values import Principal, SecretValue
from core.formats import FormatRegistry
from core.import_writes import ImportWriter, written_entries
from core.policy import SecretPolicy, ValueChecksum
from core.scopes import Placement, place
from core.secret_access import LIST_PAGE
from core.transfer_requests import (
    ConflictStrategy,
    ImportAction,
    ImportItem,
    ImportReport,
    ImportRequest,
    entry_error_details,
)
from core.types import TypeRegistry
from ports.formats import EntryError, ExportCipher, ImportEntry, SecretFormat
from ports.security import Clock
from ports.storage import StorageBackend
from ports.types import TypeCheck
from ports.unit_of_work import UnitOfWork

# Values one import may hold, older versions included: what a file makes the service check,
# hold in memory and report is bounded, not only its size in bytes.
MAX_IMPORT_VALUES = 20_000


@dataclass
class _Planned:
    """An entry checked against the scope: its diff item, and the secret it updates."""

    item: ImportItem
    existing: Secret | None = None


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
            items, errors, updated = self._plan(actor, request, secret_format, content)
            report = ImportReport(
                format=secret_format.name,
                strategy=request.strategy,
                dry_run=request.dry_run,
                items=tuple(items),
                errors=tuple(errors),
            )
            del items
            summary = {**attempt.event.details, **report.counts, "errors": len(errors)}
            if request.dry_run:
                with self._uow_factory() as uow:
                    attempt.succeed(uow, details=summary)
                    uow.commit()
            else:
                _refuse_partial(report)
                writer = ImportWriter(
                    self._backends, self._clock, self._checksum, self._types, actor, request
                )
                self._apply(writer, report, updated, secret_format, content, placement, attempt)
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
    ) -> tuple[list[ImportItem], list[EntryError], dict[str, Secret]]:
        """Every entry checked and compared with what the scope holds: its diff item (the
        entry itself is not kept), and the secrets the import updates by name."""
        items: list[ImportItem] = []
        updated: dict[str, Secret] = {}
        errors: list[EntryError] = []
        first_line: dict[str, int] = {}
        with self._uow_factory() as uow:
            existing = self._existing(uow, actor, request, _names(secret_format, content))
            currents = uow.secrets.current_versions([secret.id for secret in existing.values()])
            for entry in _entries(secret_format, content):
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
                    step = self._plan_entry(request, entry, found, current)
                    items.append(step.item)
                    if step.item.action is ImportAction.UPDATE and step.existing is not None:
                        updated[entry.name] = step.existing
                except InvalidInput as error:
                    errors.append(
                        EntryError(
                            entry.line, error.message, entry.name, error.details.get("field")
                        )
                    )
        return items, errors, updated

    def _existing(
        self, uow: UnitOfWork, actor: Principal, request: ImportRequest, names: set[str]
    ) -> dict[str, Secret]:
        """The scope's secrets of the environment that the file names, soft-deleted ones
        included: the scope read a page at a time, keeping only those (a race with another
        writer fails the commit)."""
        access = access_query(actor, Action.WRITE, self._clock.now())
        found: dict[str, Secret] = {}
        for deleted in (True, False):
            criteria = SecretFilter(
                scope=request.scope, environment=request.environment, deleted=deleted
            )
            after = None
            while True:
                page = uow.secrets.search_after(criteria, after, LIST_PAGE, access)
                found.update(
                    (secret.name, secret)
                    for secret in page.items
                    if secret.name in names and secret.environment == request.environment
                )
                if page.next is None:
                    break
                after = page.next
        return found

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
        for value in values:
            self._check(secret_type, value, backend)
        return _Planned(self._diff(request, entry, existing, current, len(values)), existing)

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
        writer: ImportWriter,
        report: ImportReport,
        updated: dict[str, Secret],
        secret_format: SecretFormat,
        content: BinaryIO,
        placement: Placement,
        attempt: Attempt,
    ) -> None:
        """Put every value, a chunk of entries at a time, then write every chunk's rows and the
        audit events in one transaction; if anything fails, destroy the values again."""
        items = list(report.items)
        summary = {**attempt.event.details, **report.counts, "errors": len(report.errors)}
        try:
            for chunk in written_entries(_entries(secret_format, content), items, updated):
                writer.put(chunk)
            with self._uow_factory() as uow:
                scope = placement.create_if_missing(uow)
                attempt.learn(scope_path=scope.path)
                for chunk in written_entries(_entries(secret_format, content), items, updated):
                    writer.write(uow, chunk, secret_format)
                attempt.succeed_in_parts(uow, writer.audit_events(attempt, items), details=summary)
                uow.commit()
        except PreconditionFailed:
            writer.discard()
            raise Conflict(
                "a secret of the import changed while it ran; nothing was imported, run it again"
            ) from None
        except BaseException:
            writer.discard()
            raise


def _names(secret_format: SecretFormat, content: BinaryIO) -> set[str]:
    """The names the file's entries give, once it is known to hold no more values than an
    import may (`MAX_IMPORT_VALUES`)."""
    names: set[str] = set()
    values = 0
    for entry in _entries(secret_format, content):
        values += 1 + (len(entry.history) if isinstance(entry, ImportEntry) else 0)
        if values > MAX_IMPORT_VALUES:
            raise InvalidInput(
                f"the file holds more than {MAX_IMPORT_VALUES} entries and versions: "
                "import it in parts",
                details={"field": "file"},
            )
        if isinstance(entry, ImportEntry):
            names.add(entry.name)
    return names


def _entries(secret_format: SecretFormat, content: BinaryIO) -> Iterator[ImportEntry | EntryError]:
    """The file's entries, read from its start (the plan, then each pass of the writes)."""
    content.seek(0)
    return secret_format.parse(content)


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
