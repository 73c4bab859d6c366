"""The import/export format contract: cases every `ports.formats.SecretFormat` passes.

Subclass `FormatContract` and give it a `secret_format` fixture returning the format::

    from plugins.testing import FormatContract

    class TestYamlFormat(FormatContract):
        @pytest.fixture
        def secret_format(self):
            return YamlFormat()

The rules it checks, besides the signatures of the port:

- What `render` writes, `parse` reads back: the same names, in the same order, with the same
  values, for every value `cannot_hold` accepts; a value it refuses is one `cannot_hold` names.
- A text format refuses a value that is not UTF-8 (`cannot_hold`); a `binary_values` one keeps it.
- A format that `carries_metadata` writes entries without a value and reads back their
  description and tags; one that does not leaves such entries out of the file.
- Parsing any bytes yields entries and `EntryError`s (or raises core's `InvalidInput`), never
  another exception; errors name a line (1 or more) and never quote the file's text.
- `parse` reads from the stream it is given and leaves it open.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from core.domain.errors import InvalidInput
from core.domain.secrets import Secret
from core.domain.values import ScopeRef, ScopeType, SecretValue
from plugins.testing.leaks import canary
from ports.formats import EntryError, ExportDocument, ExportEntry, ImportEntry, SecretFormat

EXPORTED_AT = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
SCOPE = ScopeRef(ScopeType.PROJECT, "contract-project")

# Values a format should hold, or say (through `cannot_hold`) that it cannot.
TEXT_VALUES = {
    "EMPTY": "",
    "PLAIN": "s3cr3t-Value_01",
    "SPACES": "  two words  ",
    "QUOTES": 'it\'s "quoted"',
    "DOLLAR": "${HOME} $PATH",
    "BACKSLASHES": "C:\\Users\\n\\t",
    "HASH": "abc #not a comment",
    "EQUALS": "=a=b==",
    "MULTILINE": "line one\nline two\n",
    "CRLF": "line one\r\nline two",
    "UNICODE": "pässwörd ✓ 🔑 пароль 密码",
    "JSON": '{"a": [1, 2], "b": "c"}',
}

# Files a parser must survive without an exception other than `InvalidInput`.
HOSTILE_FILES = {
    "empty": b"",
    "not-utf8": b"\xff\xfe\x00\x80 NAME=value\n",
    "nul": b"NAME=\x00\x00\n",
    "truncated-quote": b'NAME="never closed\n',
    "truncated-json": b'{"NAME": "va',
    "deep-nesting": b"[" * 5000,
    "only-newlines": b"\n\r\n\r" * 100,
    "binary": bytes(range(256)) * 4,
}


def contract_secret(name: str, description: str = "", tags: dict[str, str] | None = None) -> Secret:
    """A secret as an export reads it from the database."""
    return Secret(
        id=uuid.uuid4(),
        scope=SCOPE,
        name=name,
        backend="local",
        created_at=EXPORTED_AT,
        created_by="user:contract",
        description=description,
        tags=dict(tags or {}),
        current_version=1,
    )


def document(entries: Sequence[ExportEntry], *, includes_values: bool = True) -> ExportDocument:
    return ExportDocument(
        SCOPE,
        None,
        EXPORTED_AT,
        includes_values=includes_values,
        includes_versions=False,
        entries=tuple(entries),
    )


def parse_all(secret_format: SecretFormat, content: bytes) -> list[ImportEntry | EntryError]:
    return list(secret_format.parse(io.BytesIO(content)))


def entries_of(parsed: Sequence[ImportEntry | EntryError]) -> list[ImportEntry]:
    errors = [item for item in parsed if isinstance(item, EntryError)]
    assert not errors, f"a rendered file reads back with errors: {errors}"
    return [item for item in parsed if isinstance(item, ImportEntry)]


class FormatContract:
    """The contract cases. A subclass provides the `secret_format` fixture."""

    @pytest.fixture
    def secret_format(self) -> SecretFormat:
        raise NotImplementedError("a FormatContract subclass provides the `secret_format` fixture")

    def test_it_declares_a_name_a_media_type_and_extensions(
        self, secret_format: SecretFormat
    ) -> None:
        assert isinstance(secret_format.name, str) and secret_format.name
        assert isinstance(secret_format.media_type, str) and "/" in secret_format.media_type
        assert all(extension.startswith(".") for extension in secret_format.extensions)
        assert secret_format.style_tag is None or isinstance(secret_format.style_tag, str)

    def test_what_it_renders_parses_back_in_name_order(self, secret_format: SecretFormat) -> None:
        names = ["ALPHA_KEY", "BETA_KEY", "GAMMA_KEY"]
        values = {name: canary() for name in names}
        rendered = secret_format.render(
            document([ExportEntry(contract_secret(n), SecretValue(values[n])) for n in names])
        )
        assert isinstance(rendered, bytes)
        read = entries_of(parse_all(secret_format, rendered))
        assert [entry.name for entry in read] == names
        for entry in read:
            assert entry.value is not None, entry.name
            assert entry.value.reveal() == values[entry.name], entry.name

    @pytest.mark.parametrize("name", TEXT_VALUES, ids=TEXT_VALUES.keys())
    def test_a_text_value_round_trips_or_cannot_hold_says_why(
        self, secret_format: SecretFormat, name: str
    ) -> None:
        value = SecretValue.from_text(TEXT_VALUES[name])
        reason = secret_format.cannot_hold(name, value)
        if reason is not None:
            assert isinstance(reason, str) and reason
            assert TEXT_VALUES[name] not in reason or not TEXT_VALUES[name]
            return
        rendered = secret_format.render(document([ExportEntry(contract_secret(name), value)]))
        [entry] = entries_of(parse_all(secret_format, rendered))
        assert entry.name == name
        assert entry.value is not None and entry.value.reveal() == value.reveal()

    def test_a_binary_value_is_kept_or_refused_as_its_declaration_says(
        self, secret_format: SecretFormat
    ) -> None:
        value = SecretValue(b"\xff\xfe\x00binary\x80" + canary())
        reason = secret_format.cannot_hold("BINARY", value)
        if not secret_format.binary_values:
            assert reason, "a text format must refuse a value that is not UTF-8"
            return
        assert reason is None
        rendered = secret_format.render(document([ExportEntry(contract_secret("BINARY"), value)]))
        [entry] = entries_of(parse_all(secret_format, rendered))
        assert entry.value is not None and entry.value.reveal() == value.reveal()

    def test_an_entry_without_a_value_is_written_only_with_metadata(
        self, secret_format: SecretFormat
    ) -> None:
        description, tag = f"about {uuid.uuid4().hex}", {"team": "contract"}
        rendered = secret_format.render(
            document(
                [ExportEntry(contract_secret("META_ONLY", description, tag), None, "no_values")],
                includes_values=False,
            )
        )
        read = entries_of(parse_all(secret_format, rendered))
        if not secret_format.carries_metadata:
            assert read == [], "a format without metadata leaves out entries without a value"
            return
        [entry] = read
        assert entry.name == "META_ONLY" and entry.value is None
        assert entry.description == description
        assert dict(entry.tags or {}) == tag

    def test_an_empty_document_parses_back_to_nothing(self, secret_format: SecretFormat) -> None:
        rendered = secret_format.render(document([]))
        assert entries_of(parse_all(secret_format, rendered)) == []

    @pytest.mark.parametrize("content", HOSTILE_FILES.values(), ids=HOSTILE_FILES.keys())
    def test_any_bytes_parse_to_entries_and_errors_never_another_exception(
        self, secret_format: SecretFormat, content: bytes
    ) -> None:
        try:
            parsed = parse_all(secret_format, content)
        except InvalidInput:
            return
        for item in parsed:
            assert isinstance(item, ImportEntry | EntryError), type(item).__name__
            assert isinstance(item.line, int) and item.line >= 1

    def test_an_error_names_its_line_and_never_quotes_the_file(
        self, secret_format: SecretFormat
    ) -> None:
        value = canary().decode()
        bad = f'GOOD_ONE=fine\n"{value}\n{{"{value}": [\x00 {value}\n'.encode() + b"\xff" + b"\n"
        try:
            parsed = parse_all(secret_format, bad)
        except InvalidInput as error:
            assert value not in str(error) and value not in repr(error.details)
            return
        errors = [item for item in parsed if isinstance(item, EntryError)]
        assert errors, "a file that is not valid in any format yields an error"
        for problem in errors:
            assert problem.line >= 1
            assert value not in problem.message and value not in (problem.name or "")

    def test_the_callers_stream_stays_open(self, secret_format: SecretFormat) -> None:
        rendered = secret_format.render(
            document([ExportEntry(contract_secret("OPEN_STREAM"), SecretValue(canary()))])
        )
        stream = io.BytesIO(rendered)
        list(secret_format.parse(stream))
        assert not stream.closed
