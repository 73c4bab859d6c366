"""Versions and rotation from the command line, on SQLite and PostgreSQL: `versions`,
`rollback`, `version disable|enable|destroy`, `rotate` (to a value given, or by the policy's
rotator) and `rotation show|set|clear`."""

from __future__ import annotations

import pytest
import yaml

from tests.e2e.cli_harness import as_json, env_lines, ok, rows, secretctl
from tests.e2e.test_transfer_cli import server  # the app over real HTTP on loopback

__all__ = ["server"]
NAME = ("DB_PASSWORD", "--scope", "project:p-42")


@pytest.fixture
def three_versions(server: str) -> str:
    for value in ("first-value", "second-value", "third-value"):
        ok(secretctl(server, "set", *NAME, stdin=value))
    return server


def test_versions_in_each_format(three_versions: str) -> None:
    server = three_versions
    table = rows(secretctl(server, "versions", *NAME))
    listed = as_json(secretctl(server, "versions", *NAME, "-o", "json"))
    as_yaml = yaml.safe_load(ok(secretctl(server, "versions", *NAME, "-o", "yaml")).stdout)
    states = env_lines(secretctl(server, "versions", *NAME, "-o", "env"))

    assert [row[:3] for row in table] == [
        ["1", "", "enabled"],
        ["2", "previous", "enabled"],
        ["3", "current", "enabled"],
    ]
    assert [item["version"] for item in listed] == [1, 2, 3] and as_yaml == listed
    assert states == {"V1": "enabled", "V2": "enabled", "V3": "enabled"}
    assert "third-value" not in str(listed)


def test_rollback_and_a_version_disabled_enabled_destroyed(three_versions: str) -> None:
    server = three_versions
    rolled = ok(secretctl(server, "rollback", *NAME, "1"))
    disabled = as_json(secretctl(server, "version", "disable", *NAME, "2", "--json"))
    unreadable = secretctl(server, "get", *NAME, "--version", "2")
    enabled = ok(secretctl(server, "version", "enable", *NAME, "2"))
    unconfirmed = secretctl(server, "version", "destroy", *NAME, "2")
    destroyed = as_json(secretctl(server, "version", "destroy", *NAME, "2", "--yes", "-o", "json"))
    current = secretctl(server, "version", "disable", *NAME, "4")

    assert "version 4 has version 1's value" in rolled.stdout
    assert ok(secretctl(server, "get", *NAME)).stdout == "first-value\n"
    assert disabled["state"] == "disabled"
    assert unreadable.exit_code == 5 and "version_unavailable" in unreadable.stderr
    assert enabled.stdout == "version 2: enabled\n"
    assert unconfirmed.exit_code == 2
    assert destroyed["state"] == "destroyed"
    assert current.exit_code == 5  # the current version is never disabled


def test_rotate_to_a_value_given_then_by_the_policys_rotator(server: str) -> None:
    ok(secretctl(server, "set", *NAME, stdin="before-rotation"))

    given = ok(secretctl(server, "rotate", *NAME, "-", stdin="after-rotation\n"))
    no_policy = secretctl(server, "rotate", *NAME)
    policy = as_json(
        secretctl(
            server,
            "rotation",
            "set",
            *NAME,
            "--rotator",
            "random",
            "--every",
            "30d",
            "--grace",
            "1h",
            "--setting",
            "length=40",
            "--setting",
            "alphabet=hex",
            "--json",
        )
    )
    shown = dict(rows(secretctl(server, "rotation", "show", *NAME)))
    rotated = as_json(secretctl(server, "rotate", *NAME, "-o", "json"))
    value = ok(secretctl(server, "get", *NAME)).stdout.strip()

    assert "rotated to version 2" in given.stdout
    assert no_policy.exit_code != 0
    assert (policy["rotator"], policy["interval_seconds"], policy["grace_seconds"]) == (
        "random",
        30 * 86400,
        3600,
    )
    assert policy["settings"] == {"length": 40, "alphabet": "hex"}
    assert shown["rotator"] == "random" and shown["interval_seconds"] == str(30 * 86400)
    assert rotated["current_version"] == 3 and len(value) == 40
    assert ok(secretctl(server, "get", *NAME, "--version", "2")).stdout == "after-rotation\n"

    cleared = ok(secretctl(server, "rotation", "clear", *NAME))
    assert cleared.stdout == "no rotation schedule any more\n"
    assert secretctl(server, "rotation", "show", *NAME).exit_code == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rotator", "random"), "give one of --every or --cron"),
        (("--rotator", "random", "--every", "30d", "--cron", "0 3 * * *"), "one of --every"),
        (("--rotator", "random", "--every", "soon"), "a number and s, m, h, d or w"),
        (("--rotator", "random", "--every", "1d", "--setting", "nokey"), "KEY=VALUE"),
    ],
)
def test_a_bad_policy_is_a_usage_error(server: str, args: tuple[str, ...], message: str) -> None:
    ok(secretctl(server, "set", *NAME, stdin="v"))
    result = secretctl(server, "rotation", "set", *NAME, *args)
    assert result.exit_code == 2 and message in result.stderr


def test_a_rotator_that_refuses_its_settings_is_invalid_input(server: str) -> None:
    ok(secretctl(server, "set", *NAME, stdin="v"))
    result = secretctl(
        server,
        "rotation",
        "set",
        *NAME,
        "--rotator",
        "random",
        "--cron",
        "0 3 * * *",
        "--setting",
        "length=2",
    )
    assert result.exit_code == 6 and "length" in result.stderr
