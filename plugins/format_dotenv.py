"""The `.env` format: read with python-dotenv's parser, written so that it reads back the same.

Reading follows python-dotenv (`dotenv.parser.parse_stream`): comments, blank lines, `export`
prefixes, unquoted, single- and double-quoted values with their escapes, multi-line quoted
values, CRLF line endings. Variables are not expanded: `${HOME}` is imported as those characters.

Writing puts one `NAME=value` line per secret, in name order. A value is written bare when it
is made of plain characters (letters, digits, `_@%+,./:=^~-`), in single quotes when it holds a
`$` (which no dotenv reader or shell expands there), else in double quotes, escaping `\\` and
`"` (line breaks are written as they are). An imported entry that was written another way —
other quotes, an `export ` prefix, a CRLF line end — keeps how in its `dotenv.style` tag, and is
exported the same way again; so a file of `NAME=value` lines with no comments or blank lines,
in name order, round-trips byte for byte. Comments and blank lines are not kept.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from dotenv.parser import Binding, parse_stream

from plugins.hookspecs import hookimpl
from ports.formats import EntryError, ExportDocument, ImportEntry, SecretFormat
from ports.values import SecretValue

STYLE_TAG = "dotenv.style"
PLAIN = re.compile(r"[A-Za-z0-9_@%+,./:=^~-]*")
NEWLINE = re.compile(r"\r\n|\n|\r")
EXPORT_PREFIX = re.compile(r"export[^\S\r\n]+")
QUOTES = ("bare", "single", "double")


@dataclass(frozen=True)
class Style:
    """How one entry is written: its quotes, an `export ` prefix, its line end."""

    quote: str
    export: bool = False
    crlf: bool = False

    @classmethod
    def of_tag(cls, tag: str | None, value: str) -> Style:
        """The style a tag records, with quotes that can hold `value` (else the usual ones)."""
        tokens = set((tag or "").split(","))
        quote = next((q for q in QUOTES if q in tokens), None)
        if quote is None or (quote == "bare" and not can_be_bare(value)):
            quote = usual_quote(value)
        return cls(quote, "export" in tokens, "crlf" in tokens)

    def tag(self, value: str) -> str | None:
        """What the tag records: only what differs from how `value` is usually written."""
        tokens = [
            *(["crlf"] if self.crlf else []),
            *(["export"] if self.export else []),
            *([self.quote] if self.quote != usual_quote(value) else []),
        ]
        return ",".join(tokens) or None


def usual_quote(value: str) -> str:
    if PLAIN.fullmatch(value):
        return "bare"
    if "$" in value and "'" not in value and "\\" not in value:
        return "single"
    return "double"


def can_be_bare(value: str) -> bool:
    """Whether python-dotenv reads `NAME=<value>` back as `value`: one line, no leading quote
    or space, no trailing space, no ` #` (that starts a comment)."""
    return value == "" or (
        not re.search(r"[\r\n]", value)
        and value[0] not in "'\" \t"
        and value == value.rstrip()
        and not re.search(r"\s#", value)
    )


def quoted(value: str, quote: str) -> str:
    if quote == "bare":
        return value
    if quote == "single":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line_of(name: str, value: str, style: Style) -> str:
    prefix = "export " if style.export else ""
    end = "\r\n" if style.crlf else "\n"
    return f"{prefix}{name}={quoted(value, style.quote)}{end}"


class DotenvFormat(SecretFormat):
    name = "dotenv"
    description = "a .env file: NAME=value lines, as python-dotenv reads them"
    media_type = "text/plain; charset=utf-8"
    extensions = (".env",)
    style_tag = STYLE_TAG

    def parse(self, stream: BinaryIO) -> Iterator[ImportEntry | EntryError]:
        # Decoded as it is read, not copied whole; newline="" keeps CRLF as it is.
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        try:
            yield from (entry for entry in map(self._entry, parse_stream(text)) if entry)
        except UnicodeDecodeError:
            yield EntryError(1, "the file is not UTF-8 text")
        finally:
            text.detach()  # the caller's stream stays open

    def _entry(self, binding: Binding) -> ImportEntry | EntryError | None:
        original = binding.original.string
        leading = original[: len(original) - len(original.lstrip())]
        line = binding.original.line + len(NEWLINE.findall(leading))
        if binding.error:
            return EntryError(line, "cannot be read as NAME=value")
        if binding.key is None:
            return None  # a blank line or a comment
        if binding.value is None:
            return EntryError(line, "has a name but no '=' and value", name=binding.key)
        statement = original.lstrip()
        written = Style(
            quote=_quote_written(statement),
            export=EXPORT_PREFIX.match(statement) is not None,
            crlf=statement.endswith("\r\n"),
        )
        return ImportEntry(
            line=line,
            name=binding.key,
            value=SecretValue.from_text(binding.value),
            style=written.tag(binding.value),
        )

    def render(self, document: ExportDocument) -> bytes:
        lines = []
        for entry in document.entries:
            if entry.value is None:
                continue
            value = entry.value.reveal().decode("utf-8")
            style = Style.of_tag(entry.secret.tags.get(STYLE_TAG), value)
            lines.append(line_of(entry.secret.name, value, style))
        return "".join(lines).encode("utf-8")


def _quote_written(statement: str) -> str:
    """The quotes a statement's value is written in (after `=` and any spaces)."""
    _, _, rest = statement.partition("=")
    first = rest.lstrip(" \t")[:1]
    return {"'": "single", '"': "double"}.get(first, "bare")


@hookimpl
def secret_management_register_formats() -> list[SecretFormat]:
    return [DotenvFormat()]
