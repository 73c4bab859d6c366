"""Attacks of issue #14 on the formats, types and CLI, over HTTP: a token in a connection
string's user part shown to viewers, an editor's `.env` import that runs a command when the
admin's export is sourced, a 14 MiB `.env` that took minutes, a sealed file whose header asks
for an expensive key derivation, a file of more entries than an import holds, and a value given
to `secretctl set` as an argument, where other users of the machine see it."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from entrypoints.cli import main
from entrypoints.commands import values
from tests.e2e import test_transfer_cli as transfer_cli
from tests.e2e.conftest import TOKEN, ApiClient, as_user
from tests.unit.test_attacks_types_formats import SHELLS, sourced
from tests.unit.test_formats import python_dotenv_reading

PROJECT = {"type": "project", "id": "p-42"}
GITHUB_TOKEN = "ghp_E2eCanary0123456789abcdefghijklmnop"


def bind(api: ApiClient, principal: str, role: str) -> None:
    body = {"principal": principal, "role": role, "scope": PROJECT}
    assert api.post("/role-bindings", json=body).status_code == 201


def upload(client: ApiClient, content: bytes, **form: str) -> Any:
    form = {"scope_type": "project", "scope_id": "p-42", "format": "dotenv", **form}
    return client.post(
        "/imports",
        data={**form, "file": (io.BytesIO(content), "app.env")},
        content_type="multipart/form-data",
    )


def test_a_token_in_a_connection_string_never_reaches_what_a_viewer_sees(
    app: Flask, api: ApiClient
) -> None:
    bind(api, "user:vic", "viewer")
    created = api.create(
        name="GIT_REMOTE",
        scope=PROJECT,
        type="connection_string",
        value=f"https://{GITHUB_TOKEN}@github.com/acme/app.git?access_token={GITHUB_TOKEN}",
    )
    viewer = as_user(app, "vic")

    shown = [
        viewer.get(f"/secrets/{created['id']}").get_data(as_text=True),
        viewer.get("/secrets", query_string={"scope_type": "project"}).get_data(as_text=True),
        viewer.post("/exports", json={"scope": PROJECT, "format": "json"}).get_data(as_text=True),
        json.dumps(created),
    ]

    assert created["tags"] == {"type.scheme": "https", "type.host": "github.com"}
    assert all("type.host" in text and GITHUB_TOKEN not in text for text in shown)


# Written as python-dotenv reads it: every value literally, none expanded.
HOSTILE_DOTENV = (
    'COMMAND="$(touch {dir}/command)"\n'
    'BACKTICKS="`touch {dir}/backticks`"\n'
    "BARE=x; touch {dir}/bare\n"
    "export SPACES=two words\r\n"
    "TILDE=~/x\n"
    'ESCAPED="\\\\$(touch {dir}/escaped)"\n'
    "NBSP='\u00a0leading'\n"
    'MIXED="it\'s $(touch {dir}/mixed)"\n'
)


@pytest.mark.skipif(not SHELLS, reason="needs bash or dash")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_editors_env_import_runs_nothing_when_the_admins_export_is_sourced(
    app: Flask, api: ApiClient, tmp_path: Path
) -> None:
    bind(api, "user:ed", "editor")
    shell_dir = tmp_path / "shell"  # where a command that ran would leave a file
    shell_dir.mkdir()
    planted = HOSTILE_DOTENV.replace("{dir}", str(shell_dir))
    values = {name: value for _, name, value in python_dotenv_reading(planted)}
    assert upload(as_user(app, "ed"), planted.encode()).status_code == 200

    exported = api.post(
        "/exports", json={"scope": PROJECT, "format": "dotenv", "include_values": True}
    )
    path = shell_dir / "exported.env"
    path.write_bytes(exported.data)

    assert exported.status_code == 200
    assert [item["name"] for item in json.loads(exported.headers["X-Export-Omitted"])] == ["MIXED"]
    del values["MIXED"]
    for shell in SHELLS:
        assert sourced(shell, path, list(values)) == values
    assert sorted(p.name for p in shell_dir.iterdir()) == ["exported.env"]  # nothing ran


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_14_mib_env_file_with_an_unclosed_quote_answers_in_seconds(api: ApiClient) -> None:
    content = b'A="x\nB=x' + b" " * (14 * 1024 * 1024) + b"x\n"  # 256 KiB of it took 103 s
    started = time.monotonic()

    dry_run = upload(api, content, dry_run="true")
    refused = upload(api, content)

    assert time.monotonic() - started < 20
    assert dry_run.status_code == 200
    assert [(e["line"], e["name"]) for e in dry_run.get_json()["errors"]] == [(1, None), (2, "B")]
    assert refused.status_code == 422


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sealed_file_asking_for_an_expensive_key_derivation_is_refused_at_once(
    api: ApiClient,
) -> None:
    header = b"SMSEALED" + struct.pack(">BBBB", 1, 18, 8, 16) + os.urandom(28) + b"\x04json"
    started = time.monotonic()

    answer = upload(api, header + os.urandom(64), passphrase="a long passphrase", format="json")

    assert time.monotonic() - started < 2  # 9 s and 282 MiB before
    assert answer.status_code == 400
    assert answer.get_json()["error"]["details"] == {"field": "file"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_import_of_more_entries_than_it_holds_is_refused(api: ApiClient) -> None:
    content = b"".join(b"K%d=v\n" % i for i in range(20_001))

    answer = upload(api, content, dry_run="true")

    assert answer.status_code == 400
    assert answer.get_json()["error"]["details"] == {"field": "file"}
    assert "more than 20000 entries" in answer.get_json()["error"]["message"]


# -- #14 medium 7: `secretctl set NAME value` put the value where `ps` shows it ---------------

CLI_CANARY = "sk-cli-argument-canary-5e1d"
server = transfer_cli.server  # the app over real HTTP on loopback


def set_value(server: str, *args: str, stdin: str | bytes | None = None) -> Result:
    environment = {"SECRETS_ADDR": server, "SECRETS_TOKEN": TOKEN}
    return CliRunner().invoke(
        main, ["set", *args, "--scope", "project:p-42"], input=stdin, env=environment
    )


def stored(api: ApiClient, name: str) -> Any:
    answer = api.get(
        f"/scopes/project/p-42/secrets/{name}/value", query_string={"encoding": "base64"}
    )
    return base64.b64decode(answer.get_json()["value"]) if answer.status_code == 200 else None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_value_given_as_an_argument_is_refused_and_not_echoed(
    server: str, api: ApiClient
) -> None:
    result = set_value(server, "ARGUMENT", CLI_CANARY, stdin="")

    assert result.exit_code == 2
    assert "never an argument" in result.output and CLI_CANARY not in result.output
    assert stored(api, "ARGUMENT") is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_piped_value_loses_one_newline_unless_kept(server: str, api: ApiClient) -> None:
    assert set_value(server, "PIPED", stdin="v1\n\n").exit_code == 0
    assert set_value(server, "DASH", "-", stdin="v2\n").exit_code == 0
    assert set_value(server, "KEPT", "--keep-newline", stdin="v3\n").exit_code == 0

    assert [stored(api, name) for name in ("PIPED", "DASH", "KEPT")] == [b"v1\n", b"v2", b"v3\n"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_value_comes_from_a_file_as_text_or_bytes(
    server: str, api: ApiClient, tmp_path: Path
) -> None:
    text, binary = tmp_path / "token.txt", tmp_path / "key.der"
    text.write_text("from-a-file\n")
    binary.write_bytes(b"\x30\x82\xff\x00\n")

    assert set_value(server, "TEXT", "--from-file", str(text)).exit_code == 0
    assert set_value(server, "BINARY", "--from-file", str(binary)).exit_code == 0
    both = set_value(server, "BOTH", "-", "--from-file", str(text), stdin="x")

    assert stored(api, "TEXT") == b"from-a-file"
    assert stored(api, "BINARY") == b"\x30\x82\xff\x00\n"  # bytes are never trimmed
    assert both.exit_code == 2 and stored(api, "BOTH") is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_empty_value_is_refused_unless_allowed(server: str, api: ApiClient) -> None:
    refused = set_value(server, "EMPTY", stdin="\n")
    allowed = set_value(server, "EMPTY", "--allow-empty", stdin="")

    assert refused.exit_code == 6 and "the value is empty" in refused.output  # invalid input
    assert allowed.exit_code == 0 and stored(api, "EMPTY") == b""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_at_a_terminal_the_value_is_typed_twice_unseen(
    server: str, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(values, "stdin_is_terminal", lambda: True)

    result = set_value(
        server, "TYPED", stdin=f"{CLI_CANARY}\nmistyped\n{CLI_CANARY}\n{CLI_CANARY}\n"
    )

    assert result.exit_code == 0, result.output
    assert "do not match" in result.output and CLI_CANARY not in result.output
    assert stored(api, "TYPED") == CLI_CANARY.encode()
