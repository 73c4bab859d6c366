"""Attacks on the formats, the secret types and the files of issue #14, each as it was made:
credentials planted in every part of a typed value (no part of one may become metadata that
viewers see), values that run commands when an exported `.env` is sourced, `.env` files that
take minutes to parse, and sealed files whose header asks for an expensive key derivation."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.sealed_export import HEADER, MAGIC, ScryptAesGcmCipher
from core.domain.errors import InvalidInput
from core.domain.values import SecretValue
from core.types import derived_tags
from plugins.format_dotenv import STYLE_TAG, DotenvFormat
from plugins.format_json import JsonFormat
from ports.formats import EntryError, ExportEntry, ImportEntry
from ports.types import SecretType
from tests.unit import test_secret_types as secret_types
from tests.unit.test_formats import document, python_dotenv_reading, secret
from tests.unit.test_secret_types import certificate_for, check, openssh_key, pem_key

# The key material and the type registry of the type tests, as fixtures here too.
types = secret_types.types
ec_key = secret_types.ec_key
rsa_key = secret_types.rsa_key
ssh_key = secret_types.ssh_key
gcp_key_file = secret_types.gcp_key_file

# Every credential below holds this mark: no metadata may.
MARK = "CANARY"
TOKEN = "ghp_CANARY0123456789abcdefghijklmnopqrstu"


# -- #14 medium 6: credentials in every part of a typed value -----------------------------------

CONNECTION_STRINGS = [
    f"https://{TOKEN}@github.com/acme/app.git",  # a token alone in the user part
    f"https://{TOKEN}:x-oauth-basic@github.com/acme/app.git",  # beside GitHub's placeholder
    f"https://{TOKEN}:@github.com/acme/app.git",
    "https://x-access-token:CANARY-token@github.com/acme/app.git",
    "https://oauth2:glpat-CANARY0123456789@gitlab.example.com/g/app.git",
    "https://user%3ACANARY-pw@host.example.com/",  # the password inside the encoded user
    "postgresql://CANARY-user-alone@db.internal:5432/payments",
    "postgresql://app:CANARY-pw@db.internal/payments?sslmode=require&sslkey=/CANARY/k"
    "&sslpassword=CANARY-ssl&password=CANARY-again&passfile=/CANARY/pgpass",
    "redis://:CANARY-pw@cache.internal:6379/0",
    "amqp://CANARY-user-alone@mq.internal/vhost",
    "mongodb+srv://CANARY-user-alone@cluster.example.net/orders?authSource=admin",
    "https://hooks.slack.com/services/T0000/B0000/CANARYCANARYCANARY",  # the path is the token
    "https://api.telegram.org/botCANARY:AAE-token/getMe",
    "https://bucket.s3.amazonaws.com/object?X-Amz-Credential=AKIACANARY%2F20240101"
    "&X-Amz-Signature=CANARY0123&X-Amz-Security-Token=CANARY-session",
    "https://account.blob.core.windows.net/box?sv=2022-11-02&sig=CANARY%3D&se=2030-01-01",
    "https://api.example.com/v1?access_token=CANARY-at&token=CANARY-t&api_key=CANARY-k#CANARY",
    "wss://CANARY-user-alone@stream.example.com/socket/CANARY-path",
    "Server=tcp:sql.example.net,1433;Database=orders;User ID=CANARY-user-alone;",
    "Server=tcp:sql.example.net,1433;Database=orders;User ID=svc;Password=CANARY-pw;"
    "Column Encryption Key=CANARY-cek;Access Token=CANARY-at;",
    "host=db.internal user=CANARY-user-alone dbname=ledger",
    "host=db.internal user=app password='CANARY pw' sslpassword=CANARY-ssl sslkey=/CANARY/k",
    f"host=db.internal user={TOKEN} password=x-oauth-basic dbname=ledger",
]


@pytest.mark.parametrize("value", CONNECTION_STRINGS)
def test_no_part_of_a_connection_string_that_can_be_a_credential_becomes_metadata(
    types: dict[str, SecretType], value: str
) -> None:
    result = check(types, "connection_string", value)

    assert result.valid, result.problems
    assert "host" in result.metadata  # what is not a credential is still there
    assert MARK not in json.dumps(dict(result.metadata))
    assert MARK not in json.dumps(derived_tags(result))


def test_the_user_part_is_metadata_only_beside_a_password_of_its_own(
    types: dict[str, SecretType],
) -> None:
    with_password = check(types, "connection_string", "postgresql://app:pw@db/payments")
    alone = check(types, "connection_string", "postgresql://app@db/payments")
    web = check(types, "connection_string", "https://app:pw@git.example.com/repo.git")

    assert with_password.metadata["username"] == "app"
    assert with_password.metadata["database"] == "payments"
    assert "username" not in alone.metadata
    assert web.metadata == {"scheme": "https", "host": "git.example.com", "username": "app"}


URL_PARTS = "https://CANARY-user:CANARY-pw@{host}:8443/CANARY-path?token=CANARY-q#CANARY-f"


@pytest.fixture
def planted(ec_key: Any, ssh_key: Any, gcp_key_file: dict[str, str]) -> dict[str, Any]:
    """Per type, a valid value with a credential in every field that can hold one."""
    passphrase = b"CANARY-passphrase"
    return {
        "generic": f"postgresql://app:CANARY@db/x {TOKEN}",
        "api_key": {
            "api_key": "sk-CANARY-0123456789",
            "base_url": URL_PARTS.format(host="api.example.com"),
        },
        "oauth_token": {
            "access_token": "CANARY-access",
            "refresh_token": "CANARY-refresh",
            "token_url": URL_PARTS.format(host="idp.example.com"),
            "client_id": "web-app",
            "scope": "openid profile",
        },
        "username_password": {
            "username": "app",
            "password": "CANARY-password",
            "url": URL_PARTS.format(host="login.example.com"),
        },
        "connection_string": CONNECTION_STRINGS[0],
        "certificate": {
            "certificate": certificate_for(ec_key),
            "private_key": pem_key(ec_key, passphrase),
            "private_key_passphrase": passphrase.decode(),
        },
        "ssh_key": {
            "private_key": openssh_key(ssh_key, passphrase),
            "passphrase": passphrase.decode(),
        },
        "aws_credentials": {
            "access_key_id": "ASIAIOSFODNN7EXAMPLE",
            "secret_access_key": "CANARYwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAM",
            "session_token": "CANARY-session-token",
            "region": "eu-west-1",
        },
        "azure_service_principal": {
            "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
            "client_secret": "CANARY-client-secret",
            "authority_host": URL_PARTS.format(host="login.microsoftonline.com"),
        },
        "gcp_service_account": {**gcp_key_file, "private_key_passphrase": "CANARY-unknown-field"},
    }


def test_no_type_derives_metadata_from_a_part_that_can_be_a_credential(
    types: dict[str, SecretType], planted: dict[str, Any]
) -> None:
    assert set(planted) == set(types)
    for name, value in planted.items():
        result = check(types, name, value)
        assert result.valid, (name, result.problems)
        assert MARK not in json.dumps(dict(result.metadata)), name
        assert MARK not in json.dumps(derived_tags(result)), name


def test_a_url_field_is_metadata_as_its_origin_only(
    types: dict[str, SecretType], planted: dict[str, Any]
) -> None:
    def metadata(name: str) -> dict[str, str]:
        return dict(check(types, name, planted[name]).metadata)

    assert metadata("api_key") == {"base_url": "https://api.example.com:8443"}
    assert metadata("oauth_token") == {
        "token_url": "https://idp.example.com:8443",
        "client_id": "web-app",
        "scope": "openid profile",
    }
    assert metadata("username_password") == {
        "username": "app",
        "url": "https://login.example.com:8443",
    }
    assert metadata("azure_service_principal")["authority_host"] == (
        "https://login.microsoftonline.com:8443"
    )


# -- #14 medium 9: a sealed file's header chooses the key derivation's cost ------------------


@pytest.mark.parametrize(
    ("log2_n", "r", "p"),
    [
        (18, 8, 16),  # 256 MiB, 16 times over: 9 s and 282 MiB before the passphrase was checked
        (18, 8, 1),
        (17, 16, 1),
        (17, 8, 2),
        (9, 8, 1),
        (17, 1, 1),
    ],
)
def test_a_sealed_file_asking_for_another_cost_is_refused_before_any_key_is_derived(
    log2_n: int, r: int, p: int
) -> None:
    header = HEADER.pack(MAGIC, 1, log2_n, r, p, bytes(16), bytes(12), 4) + b"json"
    started = time.monotonic()

    with pytest.raises(InvalidInput, match="not a sealed export file") as raised:
        ScryptAesGcmCipher(log2_n=10).open(header + bytes(64), "a long passphrase")

    assert raised.value.details == {"field": "file"}
    assert time.monotonic() - started < 0.1


def test_the_service_seals_only_at_a_cost_it_opens() -> None:
    sealed = ScryptAesGcmCipher().seal(b"{}", "a long passphrase", "json")

    assert struct.unpack_from(">BBB", sealed, 9) == (17, 8, 1)
    assert ScryptAesGcmCipher(log2_n=17).open(sealed, "a long passphrase") == ("json", b"{}")
    for log2_n in (9, 18):
        with pytest.raises(ValueError, match="log2_n"):
            ScryptAesGcmCipher(log2_n=log2_n)


# -- #14 medium 8 and low: an exported .env file is safe to source -----------------------------

# Values an editor can store, each trying to run a command or to read otherwise when sourced;
# `{dir}` is the test's directory, where no file may appear.
HOSTILE = {
    "COMMAND": "$(touch {dir}/command)",
    "BACKTICKS": "`touch {dir}/backticks`",
    "QUOTED_COMMAND": '"$(touch {dir}/quoted)"',
    "ESCAPED_COMMAND": "\\$(touch {dir}/escaped)",
    "SEMICOLON": "x; touch {dir}/semicolon",
    "AMPERSAND": "x&touch {dir}/ampersand",
    "PIPE": "x|touch {dir}/pipe",
    "BREAK_SINGLE": "'; touch {dir}/single; echo '",
    "BREAK_DOUBLE": '"; touch {dir}/double; echo "',
    "NEXT_LINE": "x\ntouch {dir}/next-line\nexport INJECTED=1",
    "APOSTROPHE": "it's",
    "QUOTES": 'she said "hi"',
    "BACKSLASHES": "C:\\Users\\new\\table",
    "BACKSLASH_END": "ends with \\",
    "DOUBLED_BACKSLASH": "a\\\\b\\\\",
    "BACKSLASH_NEWLINE": "a\\\nb",
    "NEWLINES": "line one\nline two\n",
    "CRLF": "a\r\nb\r",
    "PARAMETER": "${HOME}",
    "DOLLARS": "$HOME $1 $$ $? $@ ${x:-y} $((1+1))",
    "BANG": "hello!world !! !-1",
    "NBSP": "\u00a0leading no-break space",
    "FORM_FEED": "\fleading form feed",
    "IDEOGRAPHIC_SPACE": "\u3000leading ideographic space",
    "TRAILING_BLANKS": "trailing \u3000\u00a0\t ",
    "OTHER_BLANKS": "\v\x1c\x85\u2028",
    "EMOJI": "🔑 ключ 密钥",
    "TILDE": "~/x:~",
    "GLOB": "*",
    "HASH": "#not a comment",
    "SPACE_HASH": "a #b",
    "EMPTY": "",
    "SPACES": "   ",
    "EQUALS": "=a==b",
}
# Values no .env quoting reads the same in sh and python-dotenv: left out, never written.
UNWRITABLE = {
    "MIXED": "it's $(touch {dir}/mixed)",
    "MIXED_BACKTICK": "'`touch {dir}/mixed-backtick`",
    "DOLLAR_BACKSLASH_END": "$x \\",
    "NUL": "a\0b",
    "ANSI_C": "$'\\x41'",
}
STYLES = (None, "bare", "double", "single", "export", "export,bare", "crlf,double")
SHELLS = [shell for shell in ("bash", "dash") if shutil.which(shell)]


def hostile_export(directory: Path) -> tuple[bytes, dict[str, str]]:
    """The .env export of every hostile and unwritable value, each under a style tag that
    would write it unsafely if tags were obeyed; and the values that must be in it."""
    values = {name: text.replace("{dir}", str(directory)) for name, text in HOSTILE.items()}
    unwritable = {name: text.replace("{dir}", str(directory)) for name, text in UNWRITABLE.items()}
    entries = [
        ExportEntry(
            secret(name, tags={STYLE_TAG: style} if style else {}), SecretValue.from_text(value)
        )
        for (name, value), style in zip(
            sorted({**values, **unwritable}.items()),
            STYLES * len(HOSTILE),
            strict=False,
        )
    ]
    return DotenvFormat().render(document(entries)), values


def sourced(shell: str, path: Path, names: list[str]) -> dict[str, str | None]:
    """What `shell` holds in each variable after sourcing `path`."""
    show = "import json, os, sys; print(json.dumps({n: os.environ.get(n) for n in sys.argv[1:]}))"
    script = f'set -a; . "{path}"; exec "{sys.executable}" -c "$0" "$@"'
    result = subprocess.run(
        [shell, "-c", script, show, *names],
        cwd=path.parent,
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent-home"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.skipif(not SHELLS, reason="needs bash or dash")
@pytest.mark.parametrize("shell", SHELLS)
def test_sourcing_an_exported_env_file_runs_nothing_and_sets_each_value_exactly(
    tmp_path: Path, shell: str
) -> None:
    content, values = hostile_export(tmp_path)
    path = tmp_path / "exported.env"
    path.write_bytes(content)

    found = sourced(shell, path, [*values, "INJECTED"])

    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported.env"]  # nothing ran
    assert found == {**values, "INJECTED": None}


def test_an_exported_env_file_reads_back_the_same_values(tmp_path: Path) -> None:
    content, values = hostile_export(tmp_path)

    entries = list(DotenvFormat().parse(io.BytesIO(content)))

    assert {
        entry.name: entry.value.reveal().decode()
        for entry in entries
        if isinstance(entry, ImportEntry) and entry.value is not None
    } == values
    assert [name for _, name, _ in python_dotenv_reading(content.decode())] == sorted(values)
    assert {name: value for _, name, value in python_dotenv_reading(content.decode())} == values


def test_a_value_no_quoting_holds_is_left_out_of_the_file_saying_why(tmp_path: Path) -> None:
    content, _ = hostile_export(tmp_path)
    fmt = DotenvFormat()

    for name, text in UNWRITABLE.items():
        assert fmt.cannot_hold(name, SecretValue.from_text(text)), name
        assert f"{name}=".encode() not in content
    assert b"mixed" not in content


@pytest.mark.parametrize("blank", ["\u00a0", "\f", "\u3000", "\v", "\x85", "\u2028"])
def test_a_leading_blank_is_not_dropped_whatever_the_style_tag(blank: str) -> None:
    value = f"{blank}value"
    entry = ExportEntry(secret("A", tags={STYLE_TAG: "bare"}), SecretValue.from_text(value))

    content = DotenvFormat().render(document([entry]))

    [read] = DotenvFormat().parse(io.BytesIO(content))
    assert isinstance(read, ImportEntry) and read.value == SecretValue.from_text(value)
    assert python_dotenv_reading(content.decode()) == [(1, "A", value)]


# -- #14 medium 9: a .env file built to be slow to parse ----------------------------------------

# Each built in a child process that is killed past its time: a parser gone quadratic again
# fails the test instead of holding the suite for hours.
SLOW_DOTENV = {
    # An unclosed quote, then a run of blanks in an unquoted value: python-dotenv's parser is
    # quadratic there (64 KiB: 6 s, 256 KiB: 103 s through the API; 14 MiB: hours).
    "blank-run": "b'A=\"x\\nB=x' + b' ' * SIZE + b'x\\n'",
    "unclosed-line": "b'A=\"' + b'x' * SIZE",
    "escaped-quotes": 'b"A=\'" + b"\\\\\'" * (SIZE // 2)',
    "blank-lines": "b'A=\"\\n' + b' \\n' * (SIZE // 2)",
    "comments": "b'# comment\\n' * (SIZE // 10 + 1)",  # 59 s before
}
PARSE_IN_CHILD = """
import io, sys, time
from plugins.format_dotenv import DotenvFormat
SIZE = 14 * 1024 * 1024
content = {content}
started = time.monotonic()
entries = list(DotenvFormat().parse(io.BytesIO(content)))
print(len(content), len(entries), time.monotonic() - started)
"""


@pytest.mark.parametrize("shape", SLOW_DOTENV)
def test_a_14_mib_env_file_built_to_be_slow_parses_in_linear_time(shape: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", PARSE_IN_CHILD.format(content=SLOW_DOTENV[shape])],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    size, entries, seconds = child.stdout.split()
    assert int(size) >= 14 * 1024 * 1024 and int(entries) <= 2
    assert float(seconds) < 10


# -- a JSON file nested deeper than the interpreter's stack (a 500 before) ----------------------


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize(
    "content",
    [
        b'{\n"A": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"format": "secret-management-export", "schema_version": 1,\n"secrets": ['
        + b"[" * 100_000
        + b"]" * 100_000
        + b"]}",
    ],
    ids=["member", "secret"],
)
def test_json_nested_too_deeply_is_one_error_at_its_line(full: bool, content: bytes) -> None:
    [error] = JsonFormat(full=full).parse(io.BytesIO(content))

    assert error == EntryError(2, "is not valid JSON: Nested too deeply")
