"""The `.env` format: read as python-dotenv reads it, written so that sh, bash and python-dotenv
all read back exactly the values, and sourcing the file runs nothing.

Reading follows python-dotenv's grammar (its parser, 1.2.4, is the oracle of the tests):
comments, blank lines, `export` prefixes, unquoted, single- and double-quoted values with their
escapes, multi-line quoted values, CRLF line endings. Variables are not expanded: `${HOME}` is
imported as those characters. It is read in time linear in the file: python-dotenv's own parser
takes time quadratic in a run of blanks inside an unquoted value (256 KiB of them: 103 s).

Writing puts one `NAME=value` line per secret, in name order, ending in LF, in the first form
that every reader takes the same way: bare for plain characters (letters, digits,
`_@%+,./:=^-`); in single quotes for a value without `'` or an escaping `\\`; in double quotes,
escaping `\\` and `"`, for one without `$` or a backtick. A value no form holds (`'` together
with `$`), a NUL, or a name that is not a shell variable is left out of the file, and the export
says why. An imported entry written another way that is just as safe (double rather than single
quotes, an `export ` prefix) keeps how in its `dotenv.style` tag and is written the same way
again; a tag never makes a value be written in a form that cannot hold it.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from core.domain.values import SecretValue
from plugins.hookspecs import hookimpl
from ports.formats import EntryError, ExportDocument, ImportEntry, SecretFormat

STYLE_TAG = "dotenv.style"
QUOTES = ("bare", "single", "double")
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BARE = re.compile(r"[A-Za-z0-9_@%+,./:=^-]*")  # nothing a shell expands, splits or globs
SINGLE_QUOTE_ESCAPE = re.compile(r"\\(?:\\|\Z)")  # python-dotenv reads `\\` and `\'` as escapes

# python-dotenv's grammar (dotenv/parser.py), with possessive repeats: a quoted value is read
# once, whatever follows it. Whitespace is Unicode's (NBSP and U+3000 included), as there.
NEWLINE = re.compile(r"\r\n|\n|\r")
GAP = re.compile(r"(?:\s|#[^\r\n]*+)*+")  # blank lines, indentation and comment lines
EXPORT = re.compile(r"(?:export[^\S\r\n]+)?")
SINGLE_QUOTED_KEY = re.compile(r"'([^']++)'")
UNQUOTED_KEY = re.compile(r"([^=#\s]++)")
BLANKS = re.compile(r"[^\S\r\n]*+")
EQUAL_SIGN = re.compile(r"=[^\S\r\n]*+")
SINGLE_QUOTED = re.compile(r"'((?:\\.|[^'\\])*+)'", re.DOTALL)
DOUBLE_QUOTED = re.compile(r'"((?:\\.|[^"\\])*+)"', re.DOTALL)
UNQUOTED = re.compile(r"[^\r\n]*+")
INLINE_COMMENT = re.compile(r"\s#")
COMMENT = re.compile(r"(?:[^\S\r\n]*+#[^\r\n]*+)?")
END_OF_LINE = re.compile(r"[^\S\r\n]*+(?:\r\n|\n|\r|$)")
REST_OF_LINE = re.compile(r"[^\r\n]*+(?:\r|\n|\r\n)?")
SINGLE_ESCAPES = re.compile(r"\\[\\']")
DOUBLE_ESCAPES = re.compile(r"\\[\\'\"abfnrtv]")


@dataclass(frozen=True)
class Style:
    """How one entry is written: its quotes and an `export ` prefix."""

    quote: str
    export: bool = False

    @classmethod
    def of_tag(cls, tag: str | None, value: str) -> Style:
        """The style a tag records, with quotes that hold `value` (else the usual ones)."""
        tokens = set((tag or "").split(","))
        quote = next((q for q in QUOTES if q in tokens and holds(q, value)), None)
        return cls(quote or usual_quote(value) or "double", "export" in tokens)

    def tag(self, value: str) -> str | None:
        """What the tag records: only what differs from how `value` is usually written."""
        tokens = ["export"] if self.export else []
        if self.quote != usual_quote(value) and holds(self.quote, value):
            tokens.append(self.quote)
        return ",".join(tokens) or None


def holds(quote: str, value: str) -> bool:
    """Whether `NAME=<value in quote>` reads as `value` in sh, bash and python-dotenv alike."""
    if quote == "bare":
        return BARE.fullmatch(value) is not None
    if quote == "single":  # sh reads no escape there, python-dotenv reads two
        return "'" not in value and SINGLE_QUOTE_ESCAPE.search(value) is None
    return "$" not in value and "`" not in value  # sh expands them in double quotes


def usual_quote(value: str) -> str | None:
    """The first quotes that hold `value`; None when none does."""
    return next((quote for quote in QUOTES if holds(quote, value)), None)


def quoted(value: str, quote: str) -> str:
    if quote == "bare":
        return value
    if quote == "single":
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line_of(name: str, value: str, style: Style) -> str:
    prefix = "export " if style.export else ""
    return f"{prefix}{name}={quoted(value, style.quote)}\n"


class DotenvFormat(SecretFormat):
    name = "dotenv"
    description = "a .env file: NAME=value lines, as python-dotenv reads them and sh sources them"
    media_type = "text/plain; charset=utf-8"
    extensions = (".env",)
    style_tag = STYLE_TAG

    def parse(self, stream: BinaryIO) -> Iterator[ImportEntry | EntryError]:
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")  # CRLF stays as it is
        try:
            content = text.read()
        except UnicodeDecodeError:
            yield EntryError(1, "the file is not UTF-8 text")
            return
        finally:
            text.detach()  # the caller's stream stays open
        yield from _Reader(content.removeprefix("\ufeff")).entries()

    def cannot_hold(self, name: str, value: SecretValue) -> str | None:
        binary = super().cannot_hold(name, value)
        if binary:
            return binary
        text = value.reveal().decode("utf-8")
        if not SHELL_NAME.fullmatch(name):
            return "the name is not a shell variable name"
        if "\0" in text:
            return "holds a NUL character, which no shell variable can"
        if usual_quote(text) is None:
            return (
                "holds ' (or a trailing or doubled \\) and $ or a backtick: no quotes read it "
                "the same in sh and python-dotenv"
            )
        return None

    def render(self, document: ExportDocument) -> bytes:
        lines = []
        for entry in document.entries:
            if entry.value is None or self.cannot_hold(entry.secret.name, entry.value):
                continue
            value = entry.value.reveal().decode("utf-8")
            style = Style.of_tag(entry.secret.tags.get(STYLE_TAG), value)
            lines.append(line_of(entry.secret.name, value, style))
        return "".join(lines).encode("utf-8")


class _Unreadable(Exception):
    """A statement that does not follow the grammar."""


class _Reader:
    """python-dotenv's reading, statement by statement: the same regular expressions in the
    same order, a failed one skipping the rest of its line, and lines counted as it counts
    them (each piece read counts its own line breaks)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.line = 1

    def entries(self) -> Iterator[ImportEntry | EntryError]:
        while True:
            self._read(GAP)
            if self.position == len(self.text):
                return
            line = self.line
            try:
                entry = self._statement(line)
            except _Unreadable:
                self._read(REST_OF_LINE)
                yield EntryError(line, "cannot be read as NAME=value")
                continue
            if entry is not None:
                yield entry

    def _statement(self, line: int) -> ImportEntry | EntryError | None:
        export = bool(self._read(EXPORT))
        if self._peek() == "#":
            key = None  # `export # …`: a comment
        else:
            key = self._group(SINGLE_QUOTED_KEY if self._peek() == "'" else UNQUOTED_KEY)
        self._read(BLANKS)
        value, quote = None, "bare"
        if self._peek() == "=":
            equal_sign = self._read(EQUAL_SIGN)
            if len(equal_sign) > 1 and self._peek() == "#":
                value = ""  # `KEY= # comment`
            else:
                value, quote = self._value()
        self._read(COMMENT)
        self._read(END_OF_LINE)
        if key is None:
            return None
        if value is None:
            return EntryError(line, "has a name but no '=' and value", name=key)
        style = Style(quote, export).tag(value)
        return ImportEntry(line=line, name=key, value=SecretValue.from_text(value), style=style)

    def _value(self) -> tuple[str, str]:
        char = self._peek()
        if char == "'":
            return SINGLE_ESCAPES.sub(_unescape, self._group(SINGLE_QUOTED)), "single"
        if char == '"':
            return DOUBLE_ESCAPES.sub(_unescape, self._group(DOUBLE_QUOTED)), "double"
        if char in ("", "\n", "\r"):
            return "", "bare"
        part = self._read(UNQUOTED)
        comment = INLINE_COMMENT.search(part)  # python-dotenv: re.sub(r"\s+#.*", "", part)
        return (part[: comment.start()] if comment else part).rstrip(), "bare"

    def _peek(self) -> str:
        return self.text[self.position : self.position + 1]

    def _read(self, pattern: re.Pattern[str]) -> str:
        return self._match(pattern).group(0)

    def _group(self, pattern: re.Pattern[str]) -> str:
        return self._match(pattern).group(1)

    def _match(self, pattern: re.Pattern[str]) -> re.Match[str]:
        match = pattern.match(self.text, self.position)
        if match is None:
            raise _Unreadable
        self.line += len(NEWLINE.findall(self.text, self.position, match.end()))
        self.position = match.end()
        return match


def _unescape(match: re.Match[str]) -> str:
    return str(codecs.decode(match.group(0), "unicode-escape"))  # as python-dotenv does


@hookimpl
def secret_management_register_formats() -> list[SecretFormat]:
    return [DotenvFormat()]
