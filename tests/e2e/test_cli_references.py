"""`secretctl` and references, on SQLite and PostgreSQL: `secret://…?env=…` (with a version or a
stage for `get`) names a secret as `--env` does, and what the service refuses the CLI refuses."""

from __future__ import annotations

import pytest

from tests.e2e.cli_harness import as_json, env_lines, ok, rows, secretctl
from tests.e2e.test_transfer_cli import server  # the app over real HTTP on loopback

__all__ = ["server"]
VALUE = "sk-cli-ref-3e9d1f"
REF = "secret://project/p-42/OPENAI_API_KEY?env=production"


@pytest.fixture
def secret_id(server: str) -> str:
    made = as_json(
        secretctl(
            server,
            "set",
            "OPENAI_API_KEY",
            "--scope",
            "project:p-42",
            "--env",
            "production",
            "-o",
            "json",
            stdin=VALUE,
        )
    )
    assert made["reference"] == REF
    ok(secretctl(server, "set", made["id"], stdin="sk-second"))
    return str(made["id"])


def test_get_by_reference_with_its_environment_version_and_stage(
    server: str, secret_id: str
) -> None:
    base = "secret://project/p-42/OPENAI_API_KEY"
    assert ok(secretctl(server, "get", REF)).stdout == "sk-second\n"
    assert ok(secretctl(server, "get", base, "--env", "production")).stdout == "sk-second\n"
    assert ok(secretctl(server, "get", REF, "--env", "production")).stdout == "sk-second\n"
    assert ok(secretctl(server, "get", REF + "&version=1")).stdout == VALUE + "\n"
    assert ok(secretctl(server, "get", REF, "--version", "1")).stdout == VALUE + "\n"
    assert ok(secretctl(server, "get", REF + "&stage=previous")).stdout == VALUE + "\n"
    staged = as_json(secretctl(server, "get", REF + "&stage=current", "-o", "json"))
    assert (staged["value"], staged["version"], staged["id"]) == ("sk-second", 2, secret_id)
    described = as_json(secretctl(server, "describe", REF, "-o", "json"))
    assert described["id"] == secret_id


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        ((REF, "--env", "staging"), "--env"),  # the reference and --env disagree
        ((REF + "&foo=1",), "query keys"),
        ((REF + "&version=1&stage=current",), "not both"),
        ((REF + "&version=1", "--version", "2"), "--version"),
        (("secret://project/p-42/OPENAI%5FAPI_KEY",), "percent"),
        (("https://project/p-42/OPENAI_API_KEY?env=production",), "project"),
    ],
)
def test_get_refuses_a_bad_reference_as_a_usage_error(
    server: str, secret_id: str, args: tuple[str, ...], hint: str
) -> None:
    refused = secretctl(server, "get", *args)
    assert refused.exit_code == 2, refused.output
    assert hint in refused.stderr


def test_a_version_in_a_reference_is_only_for_reading_a_value(server: str, secret_id: str) -> None:
    refused = secretctl(server, "describe", REF + "&version=1")
    assert refused.exit_code == 2 and "only where a value is read" in refused.stderr


def test_get_expand_replaces_references_and_refuses_a_cycle(server: str, secret_id: str) -> None:
    ok(secretctl(server, "set", "DB_URL", "--scope", "project:p-42", stdin="k=${" + REF + "}"))
    ok(
        secretctl(
            server, "set", "LOOP", "--scope", "project:p-42", stdin="${secret://project/p-42/LOOP}"
        )
    )
    assert ok(secretctl(server, "get", "project:p-42/DB_URL")).stdout == "k=${" + REF + "}\n"
    assert ok(secretctl(server, "get", "project:p-42/DB_URL", "--expand")).stdout == "k=sk-second\n"
    looped = secretctl(server, "get", "project:p-42/LOOP", "--expand")
    assert looped.exit_code != 0 and "reference_cycle" in looped.stderr


# -- resolve --expand and --explain -------------------------------------------------------------


def test_resolve_expand_prints_each_value_with_its_references_replaced(
    server: str, secret_id: str
) -> None:
    ok(secretctl(server, "set", "DB_URL", "--scope", "organization:acme", stdin="org-url"))
    ok(secretctl(server, "set", "DB_URL", "--scope", "project:p-42", stdin="k=${" + REF + "}"))
    context = ("resolve", "--project", "p-42", "--env", "production")
    plain = env_lines(secretctl(server, *context, "-o", "env"))
    assert plain["DB_URL"] == "secret://project/p-42/DB_URL"  # references, no values
    expanded = env_lines(secretctl(server, *context, "--expand", "-o", "env"))
    assert (expanded["DB_URL"], expanded["OPENAI_API_KEY"]) == ("k=sk-second", "sk-second")
    items = {
        item["name"]: item
        for item in as_json(secretctl(server, *context, "--expand", "-o", "json"))
    }
    assert items["DB_URL"]["value"] == "k=sk-second"
    assert items["DB_URL"]["expansions"] == [
        {"reference": REF, "secret_id": secret_id, "version": 2}
    ]
    table = {row[0]: row for row in rows(secretctl(server, *context, "--expand"))}
    assert table["DB_URL"] == ["DB_URL", "project/p-42", "*", "k=sk-second"]


def test_resolve_expand_refuses_a_cycle_naming_no_value(server: str, secret_id: str) -> None:
    ok(
        secretctl(
            server, "set", "LOOP", "--scope", "project:p-42", stdin="${secret://project/p-42/LOOP}"
        )
    )
    refused = secretctl(server, "resolve", "--project", "p-42", "--expand")
    assert refused.exit_code != 0 and "reference_cycle" in refused.stderr
    assert "sk-second" not in refused.output


def test_resolve_explain_says_where_each_name_comes_from_and_what_it_shadows(
    server: str, secret_id: str
) -> None:
    ok(secretctl(server, "set", "DB_URL", "--scope", "organization:acme", stdin="org-url"))
    ok(secretctl(server, "set", "DB_URL", "--scope", "project:p-42", stdin="k=${" + REF + "}"))
    context = ("resolve", "--project", "p-42", "--env", "production", "--explain")
    table = {row[0]: row for row in rows(secretctl(server, *context))}
    assert table["DB_URL"] == [
        "DB_URL",
        "project/p-42 [*]",
        "1",
        "secret://project/p-42/DB_URL",
        "organization/acme [*]",
    ]
    assert table["OPENAI_API_KEY"][1:4] == ["project/p-42 [production]", "2", REF]
    expanded = {row[0]: row for row in rows(secretctl(server, *context, "--expand"))}
    assert expanded["DB_URL"][-1] == f"{REF} (v2)"
    explained = {
        item["name"]: item
        for item in as_json(secretctl(server, *context, "--expand", "-o", "json"))
    }
    db_url = explained["DB_URL"]
    assert "value" not in db_url  # an explanation never prints a value
    assert [shadow["reference"] for shadow in db_url["shadows"]] == [
        "secret://organization/acme/DB_URL"
    ]
    assert db_url["expansions"] == [{"reference": REF, "secret_id": secret_id, "version": 2}]
    assert "sk-second" not in ok(secretctl(server, *context, "--expand", "-o", "yaml")).stdout
