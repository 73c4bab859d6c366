"""Scopes and access from the command line, on SQLite and PostgreSQL: `scope`, `binding`,
`access`, `service-account`, `token` and `whoami`, each output format and exit code."""

from __future__ import annotations

import pytest
import yaml

from tests.e2e.cli_harness import as_json, env_lines, ok, rows, secretctl
from tests.e2e.conftest import user_token
from tests.e2e.test_transfer_cli import server  # the app over real HTTP on loopback

__all__ = ["server"]


def test_scopes_from_zero(server: str) -> None:
    """What the README starts with: an organization below global, a project below it."""
    made = ok(secretctl(server, "scope", "create", "organization:globex"))
    project = as_json(
        secretctl(
            server,
            "scope",
            "create",
            "project:p-7",
            "--parent",
            "organization:globex",
            "-o",
            "json",
        )
    )
    no_parent = secretctl(server, "scope", "create", "project:p-8")
    again = secretctl(server, "scope", "create", "organization:globex")

    assert made.stdout == "created organization:globex below global\n"
    assert (project["type"], project["id"]) == ("project", "p-7")
    assert no_parent.exit_code == 2 and "--parent" in no_parent.stderr
    assert again.exit_code == 5 and "exists already" in again.stderr

    listed = as_json(secretctl(server, "scope", "list", "--json"))
    projects = rows(secretctl(server, "scope", "list", "--type", "project"))
    shown = yaml.safe_load(
        ok(secretctl(server, "scope", "show", "project:p-7", "-o", "yaml")).stdout
    )
    as_env = env_lines(secretctl(server, "scope", "list", "-o", "env"))

    assert {(item["type"], item["id"]) for item in listed} >= {
        ("global", "global"),
        ("organization", "globex"),
        ("project", "p-7"),
    }
    assert [row[0] for row in projects] == ["project/p-42", "project/p-7"]
    assert (shown["type"], shown["id"]) == ("project", "p-7")
    assert "PROJECT_P_7" in as_env

    busy = secretctl(server, "scope", "delete", "organization:globex")
    ok(secretctl(server, "scope", "delete", "project:p-7"))
    deleted = ok(secretctl(server, "scope", "delete", "organization:globex"))
    missing = secretctl(server, "scope", "show", "organization:globex")

    assert busy.exit_code == 5 and "conflict" in busy.stderr
    assert deleted.stdout == "deleted organization:globex\n"
    assert missing.exit_code == 3


def test_the_scope_tree_is_drawn_as_a_tree(server: str) -> None:
    tree = ok(secretctl(server, "scope", "tree")).stdout
    nested = as_json(secretctl(server, "scope", "tree", "-o", "json"))

    assert tree.splitlines() == [
        "global",
        "└── organization:acme",
        "    └── team:t-1",
        "        └── project:p-42",
    ]
    assert nested == {
        "type": "global",
        "id": "global",
        "children": [
            {
                "type": "organization",
                "id": "acme",
                "children": [
                    {
                        "type": "team",
                        "id": "t-1",
                        "children": [{"type": "project", "id": "p-42", "children": []}],
                    }
                ],
            }
        ],
    }


def test_bindings_and_who_can_read_a_secret(server: str) -> None:
    made = as_json(
        secretctl(server, "set", "API_KEY", "--scope", "project:p-42", "--json", stdin="v")
    )
    granted = as_json(
        secretctl(
            server,
            "binding",
            "create",
            "--principal",
            "group:ml",
            "--role",
            "reader",
            "--scope",
            "team:t-1",
            "--name-pattern",
            "API_*",
            "--expires-at",
            "30d",
            "--json",
        )
    )
    narrowed = ok(
        secretctl(
            server,
            "binding",
            "create",
            "--principal",
            "user:ann",
            "--role",
            "reader",
            "--scope",
            "project:p-42",
            "--secret",
            "API_KEY",
        )
    )

    at_team = rows(secretctl(server, "binding", "list", "--scope", "team:t-1"))
    readers = as_json(secretctl(server, "access", "API_KEY", "--scope", "project:p-42", "--json"))
    readers_table = rows(secretctl(server, "access", made["reference"]))
    no_filter = secretctl(server, "binding", "list")

    assert granted["name_pattern"] == "API_*" and granted["expires_at"] is not None
    assert "granted reader at project/p-42 to user:ann" in narrowed.stdout
    assert [row[1:5] for row in at_team] == [["group:ml", "reader", "team/t-1", "API_*"]]
    assert {item["principal"] for item in readers} >= {"group:ml", "user:ann"}
    assert any(row[0] == "user:ann" for row in readers_table)
    assert no_filter.exit_code == 2

    deleted = ok(secretctl(server, "binding", "delete", granted["id"]))
    again = secretctl(server, "binding", "delete", granted["id"])
    assert deleted.stdout == f"deleted binding {granted['id']}\n"
    assert again.exit_code == 3


def test_service_accounts_and_their_tokens(server: str) -> None:
    account = as_json(
        secretctl(
            server,
            "service-account",
            "create",
            "deployer",
            "--scope",
            "project:p-42",
            "--description",
            "CI",
            "--json",
        )
    )
    people = ok(secretctl(server, "token", "create", "deployer", "--scope", "project:p-42"))
    issued = as_json(
        secretctl(server, "token", "create", account["id"], "--expires-at", "90d", "--json")
    )
    listed = as_json(
        secretctl(server, "token", "list", "deployer", "--scope", "project:p-42", "--json")
    )
    accounts = rows(secretctl(server, "service-account", "list", "--scope", "project:p-42"))

    assert account["principal"] == "service:deployer@project:p-42"
    assert people.stdout.startswith("export SECRETS_TOKEN=smt_")
    assert issued["token"].startswith("smt_") and issued["expires_at"] is not None
    assert len(listed) == 2 and all("token" not in item for item in listed)
    assert [row[1] for row in accounts] == ["service:deployer@project:p-42"]

    ok(
        secretctl(
            server,
            "binding",
            "create",
            "--principal",
            account["principal"],
            "--role",
            "viewer",
            "--scope",
            "project:p-42",
        )
    )
    me = as_json(secretctl(server, "whoami", "--json", SECRETS_TOKEN=issued["token"]))
    assert me["principal"] == "service:deployer@project:p-42"

    revoked = ok(
        secretctl(server, "token", "revoke", "deployer", issued["id"], "--scope", "project:p-42")
    )
    refused = secretctl(server, "whoami", SECRETS_TOKEN=issued["token"])
    assert revoked.stdout == f"revoked token {issued['id']}\n"
    assert refused.exit_code == 4

    gone = ok(secretctl(server, "service-account", "delete", "deployer", "--scope", "project:p-42"))
    unknown = secretctl(server, "token", "list", "deployer", "--scope", "project:p-42")
    assert gone.stdout == "deleted service:deployer@project:p-42\n"
    assert unknown.exit_code == 3 and "no service account 'deployer'" in unknown.stderr


@pytest.mark.parametrize("output", ["table", "json", "yaml", "env"])
def test_whoami_in_each_format(server: str, output: str) -> None:
    result = ok(
        secretctl(server, "whoami", "-o", output, SECRETS_TOKEN=user_token("zed", ("ops",)))
    )
    shown = {
        "table": lambda text: dict(line.split("\t") for line in text.splitlines()),
        "json": lambda text: as_json(result),
        "yaml": yaml.safe_load,
        "env": lambda text: env_lines(result),
    }[output](result.stdout)
    principal = shown.get("principal") or shown.get("PRINCIPAL")
    assert principal == "user:zed"
