"""The secret commands end to end, on SQLite and PostgreSQL: `set`, `get`, `list`, `describe`,
`edit`, `delete`, `restore`, `purge`, each output format, the ways to name a secret, and the
exit codes scripts tell failures apart by."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from entrypoints import client as http_client
from entrypoints.commands import values
from tests.e2e.cli_harness import as_json, env_lines, ok, rows, secretctl
from tests.e2e.conftest import ApiClient, user_token
from tests.e2e.test_serve import free_port
from tests.e2e.test_transfer_cli import server  # the app over real HTTP on loopback

__all__ = ["server"]
VALUE = "sk-cli-secret-7c1e0a"
P42 = ("--scope", "project:p-42")


@pytest.fixture
def secret_id(server: str) -> str:
    made = as_json(
        secretctl(
            server, "set", "OPENAI_API_KEY", *P42, "--env", "production", "-o", "json", stdin=VALUE
        )
    )
    assert made["reference"] == "secret://project/p-42/OPENAI_API_KEY?env=production"
    return str(made["id"])


def test_get_in_every_format_and_every_way_of_naming_the_secret(
    server: str, secret_id: str
) -> None:
    names = [
        ("OPENAI_API_KEY", *P42, "--env", "production"),
        ("secret://project/p-42/OPENAI_API_KEY", "--env", "production"),
        ("project:p-42/OPENAI_API_KEY", "--env", "production"),
        (secret_id,),
    ]
    for name in names:
        assert ok(secretctl(server, "get", *name)).stdout == VALUE + "\n"

    answer = as_json(secretctl(server, "get", secret_id, "--json"))
    as_yaml = yaml.safe_load(ok(secretctl(server, "get", secret_id, "-o", "yaml")).stdout)
    raw = ok(secretctl(server, "get", secret_id, "--raw"))

    assert (answer["value"], answer["encoding"], answer["version"]) == (VALUE, "utf-8", 1)
    assert as_yaml == answer
    assert env_lines(secretctl(server, "get", secret_id, "-o", "env")) == {"OPENAI_API_KEY": VALUE}
    assert raw.stdout == VALUE  # the bytes alone, no newline


def test_a_new_version_then_an_old_one_by_number(server: str, secret_id: str) -> None:
    again = ok(secretctl(server, "set", secret_id, stdin="sk-second\n"))

    assert "version 2" in again.stdout
    assert ok(secretctl(server, "get", secret_id)).stdout == "sk-second\n"
    assert ok(secretctl(server, "get", secret_id, "--version", "1")).stdout == VALUE + "\n"


def test_list_describe_and_edit_in_each_format(server: str, secret_id: str) -> None:
    ok(secretctl(server, "set", "DB_URL", *P42, stdin="postgresql://db/app"))

    table = rows(secretctl(server, "list", *P42))
    listed = as_json(secretctl(server, "list", *P42, "-o", "json"))
    as_yaml = yaml.safe_load(ok(secretctl(server, "list", *P42, "-o", "yaml")).stdout)
    references = env_lines(secretctl(server, "list", *P42, "-o", "env"))

    assert sorted(row[1] for row in table) == ["DB_URL", "OPENAI_API_KEY"]
    assert ["project/p-42", "OPENAI_API_KEY", "production", "v1", "generic", secret_id] in table
    assert sorted(item["name"] for item in listed) == ["DB_URL", "OPENAI_API_KEY"]
    assert as_yaml == listed
    assert references["OPENAI_API_KEY"] == "secret://project/p-42/OPENAI_API_KEY?env=production"
    assert VALUE not in str(listed)

    edited = as_json(
        secretctl(
            server,
            "edit",
            secret_id,
            "--description",
            "billing",
            "--tag",
            "team=ml",
            "--tag",
            "cost=a",
            "--expires-at",
            "30d",
            "--max-versions",
            "5",
            "-o",
            "json",
        )
    )
    untagged = as_json(
        secretctl(server, "edit", secret_id, "--untag", "cost", "--expires-at", "never", "--json")
    )
    described = dict(rows(secretctl(server, "describe", secret_id)))
    fields = env_lines(secretctl(server, "describe", secret_id, "-o", "env"))

    assert (edited["description"], edited["tags"], edited["max_versions"]) == (
        "billing",
        {"team": "ml", "cost": "a"},
        5,
    )
    assert edited["expires_at"] is not None
    assert untagged["tags"] == {"team": "ml"} and untagged["expires_at"] is None
    assert described["description"] == "billing" and described["tags"] == "team=ml"
    assert fields["SCOPE_TYPE"] == "project" and fields["TAGS_TEAM"] == "ml"


def test_edit_without_a_change_is_a_usage_error(server: str, secret_id: str) -> None:
    assert secretctl(server, "edit", secret_id).exit_code == 2


def test_delete_restore_and_purge(server: str, secret_id: str) -> None:
    deleted = ok(secretctl(server, "delete", secret_id))
    gone = secretctl(server, "get", secret_id)
    in_bin = as_json(secretctl(server, "list", *P42, "--deleted", "--json"))
    restored = as_json(
        secretctl(server, "restore", "OPENAI_API_KEY", *P42, "--env", "production", "--json")
    )

    assert (
        "deleted secret://project/p-42/OPENAI_API_KEY?env=production; restore it until"
        in deleted.stdout
    )
    assert gone.exit_code == 3 and "not_found" in gone.stderr
    assert [item["id"] for item in in_bin] == [secret_id]
    assert restored["deleted_at"] is None
    assert ok(secretctl(server, "get", secret_id)).stdout == VALUE + "\n"

    live = secretctl(server, "purge", secret_id, "--yes")
    ok(secretctl(server, "delete", "secret://project/p-42/OPENAI_API_KEY", "--env", "production"))
    unconfirmed = secretctl(server, "purge", secret_id)
    purged = as_json(secretctl(server, "purge", secret_id, "--yes", "-o", "json"))

    assert live.exit_code == 5  # conflict: only a deleted secret is purged
    assert unconfirmed.exit_code == 2 and "--yes" in unconfirmed.stderr
    assert purged == {"id": secret_id, "purged": True}
    assert secretctl(server, "describe", secret_id).exit_code == 3


def test_a_binary_value_is_never_printed_as_base64_silently(server: str, tmp_path: Path) -> None:
    blob = tmp_path / "key.der"
    blob.write_bytes(b"\x30\x82\xff\x00\n")
    ok(secretctl(server, "set", "TLS_KEY", *P42, "--from-file", str(blob)))

    refused = secretctl(server, "get", "TLS_KEY", *P42)
    raw = secretctl(server, "get", "TLS_KEY", *P42, "--raw")
    answer = as_json(secretctl(server, "get", "TLS_KEY", *P42, "-o", "json"))

    assert refused.exit_code == 1 and "TLS_KEY is binary (5 bytes)" in refused.stderr
    assert refused.stdout == ""
    assert raw.exit_code == 0 and raw.stdout_bytes == b"\x30\x82\xff\x00\n"
    assert answer["encoding"] == "base64"
    assert base64.b64decode(answer["value"]) == b"\x30\x82\xff\x00\n"


def test_list_pages_through_everything(
    server: str, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_client, "PAGE_SIZE", 2)
    for number in range(5):
        api.create(name=f"S{number}", value="x", scope={"type": "project", "id": "p-42"})

    listed = as_json(secretctl(server, "list", *P42, "--json"))
    table = rows(secretctl(server, "list", *P42))

    assert [item["name"] for item in listed] == [f"S{number}" for number in range(5)]
    assert len(table) == 5


def test_an_unset_variable_piped_in_stores_nothing(server: str, api: ApiClient) -> None:
    """`echo -n "$VALUE" | secretctl set DB_PASSWORD` with VALUE unset: exit 6, no secret."""
    env = {key: value for key, value in os.environ.items() if key not in ("VALUE",)}
    env |= {"SECRETS_ADDR": server, "SECRETS_TOKEN": "e2e-root-token-0123456789"}
    secretctl_bin = str(Path(sys.executable).parent / "secretctl")

    done = subprocess.run(
        ["bash", "-c", f'echo -n "$VALUE" | {secretctl_bin} set DB_PASSWORD --scope project:p-42'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 6, done.stderr
    assert "the value is empty: nothing stored (--allow-empty stores it)" in done.stderr
    assert api.get("/scopes/project/p-42/secrets/DB_PASSWORD").status_code == 404


@pytest.mark.parametrize(
    ("args", "token", "code", "shown"),
    [
        (("get", "NOPE", *P42), None, 3, "not_found"),
        (("get", "OPENAI_API_KEY", *P42, "--env", "production"), "viewer", 4, "forbidden"),
        (("list",), "not-a-token", 4, "unauthenticated"),
        (("scope", "delete", "project:p-42"), None, 5, "conflict"),
        (
            ("edit", "OPENAI_API_KEY", *P42, "--env", "production", "--consumer", "x"),
            None,
            6,
            "validation_error",
        ),
        (("get", "NAME", "--scope", "p-42"), None, 2, "TYPE:ID"),
    ],
)
def test_exit_codes_tell_failures_apart(
    server: str, secret_id: str, args: tuple[str, ...], token: str | None, code: int, shown: str
) -> None:
    if token == "viewer":
        token = user_token("vera")
        ok(
            secretctl(
                server, "binding", "create", "--principal", "user:vera", "--role", "viewer", *P42
            )
        )
    env = {"SECRETS_TOKEN": token} if token else {}

    result = secretctl(server, *args, **env)

    assert result.exit_code == code, result.output
    assert shown in result.stderr and "Traceback" not in result.output


def test_a_server_that_does_not_answer_exits_7() -> None:
    result = secretctl(f"http://127.0.0.1:{free_port()}", "list")

    assert result.exit_code == 7 and "cannot reach the server" in result.stderr


def test_at_a_terminal_purge_asks_first(
    server: str, secret_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(values, "stdin_is_terminal", lambda: True)
    ok(secretctl(server, "delete", secret_id))

    declined = secretctl(server, "purge", secret_id, stdin="n\n")
    accepted = secretctl(server, "purge", secret_id, stdin="y\n")

    assert (
        declined.exit_code == 1
        and "Destroy secret://project/p-42/OPENAI_API_KEY" in declined.stderr
    )
    assert accepted.exit_code == 0 and "purged" in accepted.stdout
