"""The README's CLI section is checked against the commands themselves: a command that exists
and is not listed fails, and so does one listed that does not exist. Every command's `--help`
shows examples, and every command that prints data takes `-o`."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from entrypoints.cli import main
from tests.e2e.test_readme import section

README = Path(__file__).resolve().parents[2] / "README.md"
CODE = re.compile(r"`([^`]+)`")
# Commands that print no data of their own: a server, a child program, a file, a script.
NO_DATA = {"serve", "worker", "db upgrade", "run", "completion", "login", "logout", "audit export"}
# Their help is the server's own, kept by those who keep the server.
NO_EXAMPLES = {"serve", "worker", "db upgrade"}


def leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if command.hidden:
            continue
        if isinstance(command, click.Group):
            found |= leaf_commands(command, f"{prefix}{name} ")
        else:
            found[f"{prefix}{name}"] = command
    return found


def listed_commands(text: str) -> set[str]:
    """Every command the section names: `scope create|list` is `scope create` and `scope list`;
    words after a command that is no group are its arguments; options are skipped."""
    named: set[str] = set()
    for snippet in CODE.findall(text):
        words = [word for word in snippet.split() if not word.startswith("-")]
        if not words or words[0] not in main.commands:
            continue
        command = main.commands[words[0]]
        if isinstance(command, click.Group) and len(words) > 1:
            named |= {f"{words[0]} {sub}" for sub in words[1].split("|")}
        else:
            named.add(words[0])
    return named


def mismatches(text: str) -> tuple[set[str], set[str]]:
    """The commands `text` names that do not exist, and those that exist and it does not name
    (a group named alone, `backends`, covers its subcommands)."""
    listed = listed_commands(text)
    commands = set(leaf_commands(main))
    unknown = {name for name in listed if name not in commands and name not in main.commands}
    missing = {name for name in commands if name not in listed and name.split(" ")[0] not in listed}
    return unknown, missing


def test_the_readme_lists_every_command_and_only_those() -> None:
    unknown, missing = mismatches(section(README.read_text(), "The CLI"))

    assert not unknown, f"the README names commands that do not exist: {sorted(unknown)}"
    assert not missing, f"commands the README does not name: {sorted(missing)}"


def test_the_check_sees_a_command_too_many_and_one_left_out() -> None:
    text = section(README.read_text(), "The CLI").replace("`types`", "`scope rename|list`")

    unknown, missing = mismatches(text)

    assert unknown == {"scope rename"} and missing == {"types"}


@pytest.mark.parametrize("name", sorted(leaf_commands(main)))
def test_every_command_shows_examples_and_data_commands_take_an_output_format(name: str) -> None:
    command = leaf_commands(main)[name]
    help_text = command.help or ""
    options = {param.name for param in command.params}

    if name not in NO_EXAMPLES:
        assert f"secretctl {name.split(' ')[0]}" in help_text, f"{name}: no example in --help"
    if name not in NO_DATA:
        assert "output" in options, f"{name}: no -o"
