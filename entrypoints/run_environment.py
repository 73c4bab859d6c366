"""What `secretctl run` asks the server for (a context and the names selected in it) and the
environment variables it gets back: the server maps secrets to variables (`GET
/api/v1/resolve?variables=true`), so every client names them alike. The notes on standard error
name secrets and variables only, never a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from entrypoints.client import Client
from entrypoints.commands.exits import CommandError


def note(text: str) -> None:
    click.echo(f"secretctl run: {text}", err=True)


@dataclass(frozen=True)
class Query:
    """What `run` asks the server for: a context and the names selected in it."""

    context: dict[str, str]
    names: tuple[str, ...] = ()
    prefix: str | None = None

    def params(self, *, variables: bool) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.context)
        if self.names:
            params["name"] = list(self.names)
        if self.prefix:
            params["prefix"] = self.prefix
        if variables:
            params["variables"] = "true"
        return params


@dataclass
class Environment:
    """The variables of a resolution, and what keeps some out: `blocking` stops a strict run,
    `notes` are said on standard error. Names only, never a value."""

    variables: dict[str, str] = field(default_factory=dict)
    blocking: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def refuse(self, problem: str, skip: bool) -> None:
        if skip:
            self.notes.append(f"skipped {problem}")
        else:
            self.blocking.append(problem)


def environment_from(items: list[dict[str, Any]], query: Query, skip: bool) -> Environment:
    """The variables the answer's entries set. An entry without a value (expired, not yet
    valid, disabled, forbidden), a value that makes no variable (binary), a variable two as
    specific secrets set, and a name of `--only` that resolves to nothing: blocking, or
    skipped with a note. A variable a more specific secret takes is a note."""
    environment = Environment()
    for missing in sorted(set(query.names) - {item["name"] for item in items}):
        outside = not missing.startswith(query.prefix or "")
        environment.refuse(f"{missing} ({'not under --prefix' if outside else 'not found'})", skip)
    contested: dict[str, set[str]] = {}
    for item in items:
        problem = item["value_error"] or item["variables_error"]
        if problem:
            environment.refuse(f"{item['name']} ({problem})", skip)
            continue
        environment.variables.update(item["variables"])
        for unset in item["unset_variables"]:
            if unset["reason"] == "shadowed":
                environment.notes.append(
                    f"{unset['name']} of {item['name']} is not set: "
                    f"{', '.join(unset['by'])} (more specific) sets it"
                )
            else:
                contested.setdefault(unset["name"], set()).update([item["name"], *unset["by"]])
    for variable, names in sorted(contested.items()):
        environment.refuse(
            f"{variable} (two secrets become the environment variable {variable}: "
            f"{', '.join(sorted(names))}; neither is more specific)",
            skip,
        )
    return environment


def resolve_environment(client: Client, query: Query, skip: bool) -> dict[str, str]:
    """The variables to run with; `CommandError` naming what blocks a strict run."""
    answer = client.json("GET", "/resolve", params=query.params(variables=True))
    environment = environment_from(answer["items"], query, skip)
    for text in environment.notes:
        note(text)
    if environment.blocking:
        raise CommandError(
            "not run: no variables for "
            + "; ".join(environment.blocking)
            + " (--skip-unavailable runs without them, --only NAME selects secrets)"
        )
    return environment.variables
