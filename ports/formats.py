"""The import/export format port, and the passphrase envelope that protects an export file.

A format (`.env`, JSON…) is a plugin contribution: it parses a file into entries, each with the
line it starts on, and renders an export document as bytes. Parsing streams: entries are
yielded as they are read, and an entry that cannot be read is an `EntryError` naming its line,
never quoting it (a line holds a value).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from core.domain.secrets import Secret, SecretVersion
from core.domain.values import ScopeRef, SecretValue


@dataclass(frozen=True)
class ImportEntry:
    """One secret read from a file. Metadata that the format does not carry is None.

    `history` holds older values, oldest first, for a document that carries versions. `style`
    is the format's note on how the entry was written (quotes, an `export` prefix…), kept in
    the format's `style_tag` so that an export writes it the same way again.
    """

    line: int
    name: str
    value: SecretValue | None
    history: tuple[SecretValue, ...] = ()
    type: str | None = None
    description: str | None = None
    tags: Mapping[str, str] | None = None
    consumer: str | None = None
    expires_at: datetime | None = None
    not_before: datetime | None = None
    max_versions: int | None = None
    style: str | None = None


@dataclass(frozen=True)
class EntryError:
    """A part of a file that is not a valid entry: where, and why (never its text)."""

    line: int
    message: str
    name: str | None = None
    field: str | None = None


@dataclass(frozen=True)
class ExportedVersion:
    """One version in an export that includes every version; `value` is None when values are
    not exported or this version's may not be served (`unavailable` says why)."""

    record: SecretVersion
    value: SecretValue | None = None
    unavailable: str | None = None


@dataclass(frozen=True)
class ExportEntry:
    secret: Secret
    value: SecretValue | None = None
    unavailable: str | None = None
    versions: tuple[ExportedVersion, ...] = ()


@dataclass(frozen=True)
class ExportDocument:
    """What an export holds: the secrets of one scope and environment, in name order."""

    scope: ScopeRef
    environment: str | None
    exported_at: datetime
    includes_values: bool
    includes_versions: bool
    entries: Sequence[ExportEntry] = field(default_factory=tuple)


class SecretFormat(abc.ABC):
    """A file format for import and export.

    `carries_metadata`: the format holds metadata (so it can export without values);
    `binary_values`: it can hold values that are not UTF-8 text; `style_tag`: the tag in which
    an imported secret keeps how it was written, for formats that round-trip byte for byte.
    """

    name: str
    description: str = ""
    media_type: str = "application/octet-stream"
    extensions: tuple[str, ...] = ()
    carries_metadata: bool = False
    binary_values: bool = False
    style_tag: str | None = None

    def cannot_hold(self, name: str, value: SecretValue) -> str | None:
        """Why this format cannot write `value` under `name` (an export then leaves it out and
        says why), or None. By default: a value that is not UTF-8 text, in a text format."""
        if self.binary_values:
            return None
        try:
            value.reveal().decode("utf-8")
        except UnicodeDecodeError:
            return f"binary; the {self.name} format holds text"
        return None

    @abc.abstractmethod
    def parse(self, stream: BinaryIO) -> Iterator[ImportEntry | EntryError]:
        """Entries in file order, with the line each starts on; errors in their place."""

    @abc.abstractmethod
    def render(self, document: ExportDocument) -> bytes:
        """The document as a file. Entries without a value are written only by formats that
        carry metadata."""


class ExportCipher(abc.ABC):
    """Seals an export file under a passphrase, so that no plaintext file lands on disk."""

    magic: bytes

    def is_sealed(self, head: bytes) -> bool:
        """Whether a file starting with `head` (at least `len(magic)` bytes) is sealed."""
        return head.startswith(self.magic)

    @abc.abstractmethod
    def seal(self, plaintext: bytes, passphrase: str, format_name: str) -> bytes:
        """The sealed file: it names `format_name` and holds `plaintext` encrypted."""

    @abc.abstractmethod
    def open(self, sealed: bytes, passphrase: str) -> tuple[str, bytes]:
        """The format name and plaintext of a sealed file. A wrong passphrase or any change to
        the file raises `InvalidInput`."""
