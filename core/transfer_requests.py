"""What an import and an export are asked, and what they answer: the request, an import's
conflict strategy, what it does with each entry and its report; an export's file."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from uuid import UUID

from core.domain.values import ScopeRef
from ports.formats import EntryError


class ConflictStrategy(enum.StrEnum):
    """What an import does with a name that already holds another value."""

    SKIP = "skip"
    OVERWRITE = "overwrite"  # writes a new version
    FAIL = "fail"  # refuses the whole import


class ImportAction(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class ImportRequest:
    """Import a file into `scope` (created below `parent` if new) and `environment`. Without a
    `format`, a sealed file's own is used, else the one the file's name suggests."""

    scope: ScopeRef
    format: str | None = None
    filename: str = ""
    parent: ScopeRef | None = None
    environment: str | None = None
    strategy: ConflictStrategy = ConflictStrategy.SKIP
    dry_run: bool = False
    backend: str | None = None
    passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ImportItem:
    """What the import does, or would do, with one entry. `version` is the version it writes
    (for a new secret with history, the last one), else the current one."""

    line: int
    name: str
    action: ImportAction
    secret_id: UUID | None = None
    version: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class ImportReport:
    format: str
    strategy: ConflictStrategy
    dry_run: bool
    items: tuple[ImportItem, ...]
    errors: tuple[EntryError, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        return {
            action.value: sum(item.action is action for item in self.items)
            for action in ImportAction
        }


def entry_error_details(error: EntryError) -> dict[str, object]:
    return {"line": error.line, "name": error.name, "field": error.field, "message": error.message}


@dataclass(frozen=True)
class ExportRequest:
    scope: ScopeRef
    format: str
    environment: str | None = None
    include_values: bool = False
    include_versions: bool = False
    passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ExportFile:
    """An export: the file, and what it holds. `omitted` names the secrets whose current value
    is not in it, and why (expired, disabled, binary in a text format)."""

    content: bytes
    format: str
    media_type: str
    filename: str
    secrets: int
    values: int
    sealed: bool
    omitted: tuple[tuple[str, str], ...] = ()
