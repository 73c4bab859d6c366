"""What the client commands print: `-o table|json|yaml|env` (and `--json`) on each of them.

- `table` (the default) is for people: a table at a terminal; piped, the same columns as
  tab-separated lines without a header, one line per row, for `cut` and `awk`.
- `json` is for scripts: the API's objects as it answers them, keys sorted, lists as lists.
- `yaml` is the same data as YAML.
- `env` is `KEY=value` lines a shell can `eval` or `source` (values quoted for the shell): a
  secret's value as `NAME=value`, lists as each item's key and value, an object as its fields.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import click
import yaml
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

FORMATS = ("table", "json", "yaml", "env")
NOT_ENV = re.compile(r"[^A-Za-z0-9_]")
# The columns of a table: a header and how to get the cell's text from an item.
Columns = Sequence[tuple[str, Callable[[dict[str, Any]], Any]]]
EnvPair = Callable[[dict[str, Any]], tuple[str, Any]]


def field(key: str) -> Callable[[dict[str, Any]], Any]:
    """A column of the value at `key` (`scope.type` reaches into nested objects)."""

    def get(item: dict[str, Any]) -> Any:
        value: Any = item
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    return get


def scope_text(scope: dict[str, Any] | None) -> str:
    return "" if not scope else f"{scope['type']}/{scope['id']}"


@dataclass(frozen=True)
class Output:
    format: str

    @property
    def for_people(self) -> bool:
        return self.format == "table"

    def items(
        self, items: Iterable[dict[str, Any]], columns: Columns, env: EnvPair | None = None
    ) -> None:
        """A list: a row per item, or the list as JSON/YAML, or one `KEY=value` per item."""
        rows = [public(item) for item in items]
        if self.format == "table":
            show_table([[text(get(row)) for _, get in columns] for row in rows], columns)
        elif self.format == "env":
            pairs = [env(row) for row in rows] if env else flat_items(rows)
            echo_env(pairs)
        else:
            self.data(rows)

    def record(self, item: dict[str, Any], columns: Columns | None = None) -> None:
        """One object: field and value per line, or the object itself."""
        item = public(item)
        if self.format == "table":
            columns = columns or [(key, field(key)) for key in item]
            show_table([[header, text(get(item))] for header, get in columns], None)
        elif self.format == "env":
            echo_env(flatten(item))
        else:
            self.data(item)

    def result(self, item: Any, message: str) -> None:
        """What an action did: a sentence for people, the object for scripts."""
        if self.format == "table":
            click.echo(message)
        elif self.format == "env":
            echo_env(flatten(public(item)) if isinstance(item, dict) else [])
        else:
            self.data(public(item) if isinstance(item, dict) else item)

    def data(self, data: Any) -> None:
        if self.format == "yaml":
            click.echo(yaml.safe_dump(data, sort_keys=True, allow_unicode=True), nl=False)
        else:
            click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


def output_options(command: Any) -> Any:
    """`-o/--output FORMAT` and `--json`; the command receives `out: Output`."""

    @functools.wraps(command)
    def with_output(*args: Any, output: str, as_json: bool, **kwargs: Any) -> Any:
        return command(*args, out=Output("json" if as_json else output), **kwargs)

    with_output = click.option("--json", "as_json", is_flag=True, help="Same as -o json.")(
        with_output
    )
    return click.option(
        "-o",
        "--output",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        envvar="SECRETCTL_OUTPUT",
        help="table (people), json or yaml (scripts), env (KEY=value lines).",
    )(with_output)


def progress_bar(columns: Sequence[Any], quiet: bool) -> Progress:
    """A progress bar on standard error, shown only at a terminal and unless `quiet` (-q)."""
    console = Console(stderr=True)
    return Progress(*columns, console=console, disable=quiet or not console.is_terminal)


def public(item: Any) -> Any:
    """The object without what the client keeps for itself (`_etag`)."""
    if isinstance(item, dict):
        return {key: value for key, value in item.items() if not key.startswith("_")}
    return item


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if set(value) == {"type", "id"}:
            return scope_text(value)
        return ", ".join(f"{key}={text(inner)}" for key, inner in value.items())
    if isinstance(value, list):
        return ", ".join(text(inner) for inner in value)
    return str(value)


def show_table(rows: list[list[str]], columns: Columns | None) -> None:
    console = Console()
    if not console.is_terminal:
        for row in rows:
            click.echo("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row))
        return
    table = Table(box=box.SIMPLE_HEAD, show_header=columns is not None)
    for header in [header for header, _ in columns] if columns else ("field", "value"):
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # a cell's text is never markup
    console.print(table)


def env_name(key: str) -> str:
    name = NOT_ENV.sub("_", key).upper()
    return name if not name[:1].isdigit() else f"_{name}"


def flatten(item: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for key, value in item.items():
        if isinstance(value, dict) and value:
            pairs += flatten(value, f"{prefix}{key}_")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def flat_items(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [pair for number, row in enumerate(rows, 1) for pair in flatten(row, f"item{number}_")]


def echo_env(pairs: Iterable[tuple[str, Any]]) -> None:
    for key, value in pairs:
        shown = str(value).lower() if isinstance(value, bool) else text(value)  # true, false
        click.echo(f"{env_name(key)}={shlex.quote(shown)}")
