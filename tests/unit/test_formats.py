"""The format plugins: `.env` read with python-dotenv's parser and written back byte for byte,
JSON flat maps and full documents, errors by line, and files sealed with a passphrase."""

from __future__ import annotations

import io
import json
import random
import re
import struct
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from dotenv import parser as dotenv_parser

from adapters.sealed_export import HEADER, MAGIC, ScryptAesGcmCipher
from core.domain.errors import InvalidInput
from core.domain.secrets import Secret, SecretVersion, VersionState
from core.domain.values import ScopeRef, ScopeType, SecretValue
from plugins.format_dotenv import STYLE_TAG, DotenvFormat
from plugins.format_json import JsonFormat
from plugins.manager import build_plugin_manager, format_plugins
from ports.formats import (
    EntryError,
    ExportDocument,
    ExportedVersion,
    ExportEntry,
    ImportEntry,
)

NOW = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
SCOPE = ScopeRef(ScopeType.PROJECT, "p-42")

# Every line in the form the exporter writes — so the file must come back byte for byte — and
# every one read the same by python-dotenv and by sh when the file is sourced.
NASTY_DOTENV = (
    "A_EMPTY=\n"
    'B_HASH_IN_VALUE="abc #not a comment"\n'
    "C_HASH_NO_SPACE='abc#def'\n"
    "D_EQUALS=a=b==c\n"
    'E_DOUBLE_QUOTES="she said \\"hi\\""\n'
    'F_APOSTROPHE="it\'s"\n'
    'G_UNICODE="päßwörd ☃ 密码"\n'
    "H_EMOJI='🔑🔑'\n"
    'I_PEM="-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAKcwggSjAgEAAoIBAQC7\n'
    '-----END PRIVATE KEY-----\n"\n'
    "K_CRLF_MULTILINE='line one\r\nline two'\n"
    "export L_EXPORTED=export-me\n"
    "export M_EXPORTED_DOLLAR='${NOT_EXPANDED}'\n"
    'N_BACKSLASHES="C:\\\\Users\\\\n\\\\t"\n'
    'O_ESCAPES="it\'s \\\\ fine"\n'
    'Q_PADDED="  padded  "\n'
    "R_TAB='a\tb'\n"
    "S_URL='https://user@host:8443/path?q=1&r=2'\n"
    'T_JSON=\'{"a": [1, 2], "b": "c"}\'\n'
    "U_DOLLAR='$HOME'\n"
    "V_EQUALS_FIRST==leading\n"
    "W_LEADING_NBSP='\u00a0x'\n"
).encode()

NASTY_VALUES = {
    "A_EMPTY": "",
    "B_HASH_IN_VALUE": "abc #not a comment",
    "C_HASH_NO_SPACE": "abc#def",
    "D_EQUALS": "a=b==c",
    "E_DOUBLE_QUOTES": 'she said "hi"',
    "F_APOSTROPHE": "it's",
    "G_UNICODE": "päßwörd ☃ 密码",
    "H_EMOJI": "🔑🔑",
    "I_PEM": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAKcwggSjAgEAAoIBAQC7\n"
    "-----END PRIVATE KEY-----\n",
    "K_CRLF_MULTILINE": "line one\r\nline two",
    "L_EXPORTED": "export-me",
    "M_EXPORTED_DOLLAR": "${NOT_EXPANDED}",
    "N_BACKSLASHES": "C:\\Users\\n\\t",
    "O_ESCAPES": "it's \\ fine",
    "Q_PADDED": "  padded  ",
    "R_TAB": "a\tb",
    "S_URL": "https://user@host:8443/path?q=1&r=2",
    "T_JSON": '{"a": [1, 2], "b": "c"}',
    "U_DOLLAR": "$HOME",
    "V_EQUALS_FIRST": "=leading",
    "W_LEADING_NBSP": "\u00a0x",
}

# Lines python-dotenv reads that sh would read otherwise (or run): what the export writes instead.
REWRITTEN_DOTENV = {
    "J_CRLF=crlf-value\r\n": "J_CRLF=crlf-value\n",  # sh would keep the CR
    "O_SINGLE_ESCAPES='it\\'s \\\\ fine'\n": 'O_SINGLE_ESCAPES="it\'s \\\\ fine"\n',
    "P_BARE_SPACES=two words\n": "P_BARE_SPACES='two words'\n",
    "S_URL=https://user@host/path?q=1&r=2\n": "S_URL='https://user@host/path?q=1&r=2'\n",
    'U_DOLLAR_IN_DOUBLE="$HOME"\n': "U_DOLLAR_IN_DOUBLE='$HOME'\n",
    'X_COMMAND="$(touch pwned)"\n': "X_COMMAND='$(touch pwned)'\n",
    'Y_BACKTICK="`touch pwned`"\n': "Y_BACKTICK='`touch pwned`'\n",
    "Z_SEMICOLON=a;touch pwned\n": "Z_SEMICOLON='a;touch pwned'\n",
    "export TILDE=~/x\r\n": "export TILDE='~/x'\n",
}


def parse(fmt: Any, content: bytes) -> list[ImportEntry | EntryError]:
    return list(fmt.parse(io.BytesIO(content)))


def secret(name: str, **fields: Any) -> Secret:
    return Secret(
        id=uuid.uuid4(),
        scope=SCOPE,
        name=name,
        backend="local",
        created_at=NOW,
        created_by="user:alice",
        **fields,
    )


def document(entries: list[ExportEntry], **fields: Any) -> ExportDocument:
    fields.setdefault("includes_values", True)
    fields.setdefault("includes_versions", False)
    return ExportDocument(SCOPE, None, NOW, entries=entries, **fields)


def as_exported(entries: list[ImportEntry | EntryError]) -> list[ExportEntry]:
    """What an import of these entries stores, as an export reads it back."""
    exported = []
    for entry in entries:
        assert isinstance(entry, ImportEntry)
        tags = {STYLE_TAG: entry.style} if entry.style else {}
        exported.append(ExportEntry(secret(entry.name, tags=tags), entry.value))
    return exported


def test_the_built_in_formats_are_registered_through_entry_points() -> None:
    formats = format_plugins(build_plugin_manager())

    assert {"dotenv", "json", "json-flat"} <= set(formats)


# -- .env -------------------------------------------------------------------------------------


def python_dotenv_reading(text: str) -> list[tuple[int, str | None, str | None]]:
    """(line, name, value) of each statement as python-dotenv's own parser reads `text`; an
    unreadable one is (line, None, None)."""
    read = []
    for binding in dotenv_parser.parse_stream(io.StringIO(text, newline="")):
        original = binding.original.string
        leading = original[: len(original) - len(original.lstrip())]
        line = binding.original.line + len(re.findall(r"\r\n|\n|\r", leading))
        if binding.error:
            read.append((line, None, None))
        elif binding.key is not None:
            read.append((line, binding.key, binding.value))
    return read


def our_reading(text: str) -> list[tuple[int, str | None, str | None]]:
    read: list[tuple[int, str | None, str | None]] = []
    for entry in parse(DotenvFormat(), text.encode()):
        if isinstance(entry, ImportEntry):
            assert entry.value is not None
            read.append((entry.line, entry.name, entry.value.reveal().decode()))
        else:  # a name without '=' keeps its name, as in python-dotenv's reading
            read.append((entry.line, entry.name, None))
    return read


def test_the_nasty_dotenv_corpus_reads_as_python_dotenv_reads_it() -> None:
    entries = parse(DotenvFormat(), NASTY_DOTENV)

    assert {e.name: e.value.reveal().decode() for e in entries if isinstance(e, ImportEntry)} == (
        NASTY_VALUES
    )
    assert our_reading(NASTY_DOTENV.decode()) == python_dotenv_reading(NASTY_DOTENV.decode())


def test_any_text_reads_as_python_dotenv_reads_it() -> None:
    """Our reader follows python-dotenv's grammar (its own parser is quadratic on long blank
    runs); this compares the two on text made of every character the grammar cares about."""
    pieces = [*"Ab=x #'\"\\\t\n\r\f\v$`;é\x1c\x85\u00a0\u3000\u2028", "\r\n", "export ", "\ufeff"]
    generator = random.Random(14)
    for _ in range(4000):
        text = "".join(generator.choices(pieces, k=generator.randint(0, 30)))
        assert our_reading(text) == python_dotenv_reading(text), repr(text)


def test_the_nasty_dotenv_corpus_round_trips_byte_for_byte() -> None:
    fmt = DotenvFormat()

    exported = fmt.render(document(as_exported(parse(fmt, NASTY_DOTENV))))

    assert exported == NASTY_DOTENV


@pytest.mark.parametrize(("line", "written"), REWRITTEN_DOTENV.items())
def test_a_line_sh_would_read_otherwise_is_written_the_safe_way(line: str, written: str) -> None:
    fmt = DotenvFormat()
    [entry] = parse(fmt, line.encode())

    exported = fmt.render(document(as_exported([entry])))

    assert exported == written.encode()
    assert python_dotenv_reading(written)[0][1:] == python_dotenv_reading(line)[0][1:]


def test_only_what_differs_from_the_usual_writing_is_kept_as_style() -> None:
    styles = {e.name: e.style for e in parse(DotenvFormat(), NASTY_DOTENV)}

    assert styles["A_EMPTY"] is None and styles["T_JSON"] is None and styles["H_EMOJI"] is None
    assert styles["G_UNICODE"] == "double" and styles["F_APOSTROPHE"] is None
    assert styles["L_EXPORTED"] == "export"
    assert styles["M_EXPORTED_DOLLAR"] == "export"


def test_a_style_that_is_not_safe_for_the_value_is_not_kept() -> None:
    styles = {}
    for line in REWRITTEN_DOTENV:
        [entry] = parse(DotenvFormat(), line.encode())
        assert isinstance(entry, ImportEntry)
        styles[entry.name] = entry.style

    assert styles["J_CRLF"] is None  # no crlf: sh would keep the CR
    assert styles["P_BARE_SPACES"] is None and styles["U_DOLLAR_IN_DOUBLE"] is None
    assert styles["TILDE"] == "export"


def test_comments_blank_lines_and_loose_spacing_are_read_with_the_right_line_numbers() -> None:
    content = (
        b"# a comment\n"
        b"\n"
        b"export  A = 'x'  # trailing comment\n"
        b"B=unquoted value # comment\n"
        b'C="multi\n'
        b'line"\n'
        b"D=after\n"
        b"E\n"
        b'F="unterminated\n'
        b"G=ok\n"
    )

    entries = parse(DotenvFormat(), content)

    found = [
        (e.line, e.name, e.value.reveal().decode())
        if isinstance(e, ImportEntry)
        else (e.line, e.name, e.message)
        for e in entries
    ]
    assert found == [
        (3, "A", "x"),
        (4, "B", "unquoted value"),
        (5, "C", "multi\nline"),
        (7, "D", "after"),
        (8, "E", "has a name but no '=' and value"),
        (9, None, "cannot be read as NAME=value"),
        (10, "G", "ok"),
    ]


def test_a_file_that_is_not_utf8_is_one_error() -> None:
    assert parse(DotenvFormat(), b"A=\xff\xfe\n") == [EntryError(1, "the file is not UTF-8 text")]


def test_the_parser_leaves_the_callers_stream_open() -> None:
    stream = io.BytesIO(b"A=1\n")

    list(DotenvFormat().parse(stream))

    assert not stream.closed


def test_any_value_written_reads_back_the_same_or_is_left_out_saying_why() -> None:
    alphabet = "aZ09 _-=#$'\"\\\t\r\n{}[]:;,.!?%&*()/@~^`é☃🔑\u00a0\u3000\f"
    generator = random.Random(8)
    values = ["".join(generator.choices(alphabet, k=generator.randint(0, 24))) for _ in range(400)]
    entries = [ExportEntry(secret(f"V{i}"), SecretValue.from_text(v)) for i, v in enumerate(values)]
    fmt = DotenvFormat()
    held = [v for v in values if fmt.cannot_hold("V", SecretValue.from_text(v)) is None]

    rendered = fmt.render(document(entries))

    assert len(held) > 200  # only values with ' (or \\ at the end, or doubled) and $ or ` go
    assert [value for _, _, value in our_reading(rendered.decode())] == held
    assert [value for _, _, value in python_dotenv_reading(rendered.decode())] == held


def test_a_style_that_cannot_hold_a_new_value_gives_way_to_the_usual_quotes() -> None:
    entry = ExportEntry(secret("A", tags={STYLE_TAG: "bare,export"}), SecretValue(b"x #y"))

    assert DotenvFormat().render(document([entry])) == b"export A='x #y'\n"


def test_a_metadata_entry_without_a_value_is_not_written() -> None:
    entries = [ExportEntry(secret("A")), ExportEntry(secret("B"), SecretValue(b"b"))]

    assert DotenvFormat().render(document(entries)) == b"B=b\n"


# -- JSON -------------------------------------------------------------------------------------


def test_a_flat_json_map_reads_with_each_members_line() -> None:
    content = b'{\n  "A": "1",\n  "B": 2,\n  "C": "\\u00e9"\n}\n'

    entries = parse(JsonFormat(full=False), content)

    assert [(e.line, e.name) for e in entries] == [(2, "A"), (3, "B"), (4, "C")]
    assert isinstance(entries[1], EntryError) and entries[1].message == "the value must be a string"
    assert entries[2].value == SecretValue.from_text("é")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b'{\n  "A": "1",\n  "B" "2"\n}', 3),
        (b'{\n  "A": "1",\n}', 3),
        (b'[\n  "A"\n]', 1),
        (b'{"A": "1"}\n{"B": "2"}', 2),
        (b'{\n  "A": "unterminated\n}', 2),
    ],
)
def test_json_that_does_not_parse_is_one_error_at_its_line(content: bytes, line: int) -> None:
    [error] = parse(JsonFormat(full=True), content)

    assert isinstance(error, EntryError) and error.line == line
    assert error.message.startswith("is not valid JSON")


def test_the_flat_format_writes_names_and_text_values_only() -> None:
    entries = [ExportEntry(secret("A"), SecretValue.from_text("ü\n")), ExportEntry(secret("B"))]

    rendered = JsonFormat(full=False).render(document(entries))

    assert json.loads(rendered) == {"A": "ü\n"}
    assert rendered.endswith(b"}\n")


def full_export() -> ExportDocument:
    older = SecretVersion(uuid.uuid4(), 1, "local", "loc-1", "hmac", NOW, "user:alice")
    disabled = SecretVersion(
        older.secret_id, 2, "local", "loc-2", "hmac", NOW, "user:alice", VersionState.DISABLED
    )
    current = SecretVersion(older.secret_id, 3, "local", "loc-3", "hmac", NOW, "user:bob")
    typed = secret(
        "CERT",
        type="api_key",
        description="the key",
        tags={"team": "payments", "type.length": "9"},
        consumer="llm_model",
        expires_at=datetime(2025, 1, 1, tzinfo=UTC),
        max_versions=5,
        current_version=3,
    )
    versions = (
        ExportedVersion(older, SecretValue(b"\x00\xffbinary")),
        ExportedVersion(disabled, unavailable="version_unavailable"),
        ExportedVersion(current, SecretValue(b"current-value")),
    )
    return document(
        [
            ExportEntry(typed, SecretValue(b"current-value"), versions=versions),
            ExportEntry(secret("GONE", current_version=1), unavailable="secret_expired"),
        ],
        includes_versions=True,
    )


def test_a_full_document_keeps_metadata_types_and_every_version() -> None:
    rendered = JsonFormat(full=True).render(full_export())
    body = json.loads(rendered)

    assert (body["format"], body["schema_version"]) == ("secret-management-export", 1)
    assert body["scope"] == {"type": "project", "id": "p-42"}
    cert = body["secrets"][0]
    assert cert["versions"][0] == {
        "version": 1,
        "state": "enabled",
        "created_at": NOW.isoformat(),
        "created_by": "user:alice",
        "expires_at": None,
        "value": "AP9iaW5hcnk=",
        "encoding": "base64",
    }
    assert cert["versions"][1]["value_unavailable"] == "version_unavailable"
    assert body["secrets"][1] == {
        **body["secrets"][1],
        "value": None,
        "value_unavailable": "secret_expired",
    }


def test_a_full_document_imports_with_its_metadata_and_history() -> None:
    rendered = JsonFormat(full=True).render(full_export())

    cert, gone = parse(JsonFormat(full=False), rendered)  # either JSON format reads it

    assert isinstance(cert, ImportEntry) and isinstance(gone, ImportEntry)
    assert (cert.name, cert.type, cert.consumer, cert.max_versions) == (
        "CERT",
        "api_key",
        "llm_model",
        5,
    )
    assert cert.tags == {"team": "payments", "type.length": "9"}
    assert cert.expires_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert cert.value == SecretValue(b"current-value")
    assert cert.history == (SecretValue(b"\x00\xffbinary"),)
    assert gone.value is None
    assert cert.line == rendered.decode().splitlines().index("    {") + 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": 2}, "schema_version must be 1"),
        ({"secrets": {"not": "a list"}}, "secrets must be a list"),
    ],
)
def test_a_document_of_another_schema_is_refused(change: dict[str, Any], message: str) -> None:
    body = {"format": "secret-management-export", "schema_version": 1, "secrets": [], **change}

    [error] = parse(JsonFormat(full=True), json.dumps(body, indent=1).encode())

    assert isinstance(error, EntryError) and error.message == message


def test_a_bad_secret_in_a_document_is_an_error_at_its_line() -> None:
    body = {
        "format": "secret-management-export",
        "schema_version": 1,
        "secrets": [
            {"name": "OK", "value": "v"},
            {"name": "BAD", "value": "%%%", "encoding": "base64"},
        ],
    }
    text = json.dumps(body, indent=2).encode()

    ok, bad = parse(JsonFormat(full=True), text)

    assert isinstance(ok, ImportEntry) and isinstance(bad, EntryError)
    assert (bad.name, bad.field, bad.message) == ("BAD", "value", "a value is not valid base64")
    assert bad.line == text.decode().splitlines().index("    {", ok.line) + 1


# -- sealed files ---------------------------------------------------------------------------


@pytest.fixture
def cipher() -> ScryptAesGcmCipher:
    return ScryptAesGcmCipher(log2_n=10)  # cheap for tests; the service uses 2^17


def test_a_sealed_file_opens_with_its_passphrase(cipher: ScryptAesGcmCipher) -> None:
    sealed = cipher.seal(b"A=secret-value\n", "a long passphrase", "dotenv")

    assert cipher.is_sealed(sealed[:8]) and b"secret-value" not in sealed
    assert cipher.open(sealed, "a long passphrase") == ("dotenv", b"A=secret-value\n")


def test_the_sealed_layout_is_the_documented_one(cipher: ScryptAesGcmCipher) -> None:
    sealed = cipher.seal(b"{}", "a long passphrase", "json")

    magic, version, log2_n, r, p, salt, nonce, length = HEADER.unpack_from(sealed)
    assert (magic, version, log2_n, r, p, length) == (b"SMSEALED", 1, 10, 8, 1, 4)
    assert (HEADER.size, len(salt), len(nonce)) == (41, 16, 12)
    assert sealed[41:45] == b"json" and len(sealed) == 45 + 2 + 16


def test_the_default_cost_is_scrypt_2_17_8_1() -> None:
    sealed = ScryptAesGcmCipher().seal(b"{}", "a long passphrase", "json")

    assert sealed[8:12] == bytes([1, 17, 8, 1])


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s[:41] + b"dson" + s[45:],  # another format name
        lambda s: s[:-1] + bytes([s[-1] ^ 1]),  # the tag
        lambda s: s[:50] + bytes([s[50] ^ 1]) + s[51:],  # the ciphertext
        lambda s: s[:12] + bytes([s[12] ^ 1]) + s[13:],  # the salt
    ],
)
def test_any_change_to_a_sealed_file_is_refused_as_a_wrong_passphrase_is(
    cipher: ScryptAesGcmCipher, change: Any
) -> None:
    sealed = cipher.seal(b"A=1\n", "a long passphrase", "dotenv")

    for broken, passphrase in ((change(sealed), "a long passphrase"), (sealed, "another one!")):
        with pytest.raises(InvalidInput) as raised:
            cipher.open(broken, passphrase)
        assert raised.value.details == {"field": "passphrase"}


@pytest.mark.parametrize(
    "header",
    [
        MAGIC + struct.pack(">BBBB", 2, 10, 8, 1),  # a later version
        MAGIC + struct.pack(">BBBB", 1, 25, 8, 1),  # 4 GiB of scrypt memory
        b"NOTSEALD" + struct.pack(">BBBB", 1, 10, 8, 1),
    ],
)
def test_a_file_this_service_cannot_open_is_refused_before_any_key_is_derived(
    cipher: ScryptAesGcmCipher, header: bytes
) -> None:
    sealed = header + bytes(29) + b"x" * 40

    with pytest.raises(InvalidInput, match="not a sealed export file") as raised:
        cipher.open(sealed, "a long passphrase")

    assert raised.value.details == {"field": "file"}


def test_a_passphrase_opens_in_any_unicode_normal_form(cipher: ScryptAesGcmCipher) -> None:
    composed = unicodedata.normalize("NFC", "mot de passe très long")
    decomposed = unicodedata.normalize("NFD", composed)

    sealed = cipher.seal(b"x", composed, "json")

    assert decomposed != composed and cipher.open(sealed, decomposed) == ("json", b"x")
