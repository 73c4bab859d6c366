"""Where a value comes from: never an argument (other users of the machine see arguments in
`ps`), but a hidden prompt at a terminal, standard input, or a file; and the confirmation a
destructive command asks for at a terminal."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import click

from entrypoints.commands.exits import CommandError, ExitCode

# More than any server takes (64 KiB by default); a larger input is refused before it is sent.
MAX_VALUE_BYTES = 1024 * 1024


def value_options(command: Any) -> Any:
    """`[-]`, `--from-file`, `--keep-newline` and `--allow-empty`, as `set` and `rotate` take
    them."""
    for decorator in reversed(
        (
            click.argument("stdin_marker", metavar="[-]", required=False),
            click.option(
                "--from-file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Read the value from this file.",
            ),
            click.option(
                "--keep-newline",
                is_flag=True,
                help="Keep the newline that ends a value read from a pipe or a file (one \\n is "
                "dropped).",
            ),
            click.option(
                "--allow-empty", is_flag=True, help="Store an empty value (refused otherwise)."
            ),
        )
    ):
        command = decorator(command)
    return command


def read_value(
    stdin_marker: str | None, from_file: Path | None, keep_newline: bool, allow_empty: bool
) -> bytes:
    """The value to store, from the prompt, standard input or a file; never an argument."""
    if stdin_marker not in (None, "-"):  # never echoed: it is likely the value itself
        raise click.UsageError(
            "a value is never an argument (other users see arguments in `ps`): type it at the "
            "prompt, pipe it, or give --from-file PATH"
        )
    if stdin_marker == "-" and from_file is not None:
        raise click.UsageError("read the value from standard input (-) or --from-file, not both")
    if from_file is not None:
        with from_file.open("rb") as handle:
            raw = limited(handle)
    elif stdin_marker == "-" or not stdin_is_terminal():
        raw = limited(sys.stdin.buffer)
    else:
        typed = click.prompt(
            "Value",
            hide_input=True,
            confirmation_prompt=True,
            default="" if allow_empty else None,
            show_default=False,
            err=True,
        )
        return str(typed).encode()
    if not keep_newline and raw.endswith(b"\n") and is_text(raw):
        raw = raw[:-1]
    if not raw and not allow_empty:
        raise CommandError(
            "the value is empty: nothing stored (--allow-empty stores it)", ExitCode.INVALID
        )
    return raw


def confirmed(yes: bool, question: str) -> None:
    """A destructive command goes on with --yes, or when a person at a terminal says so."""
    if yes:
        return
    if not stdin_is_terminal():
        raise click.UsageError("this cannot be undone: add --yes to go on")
    click.confirm(question, abort=True, err=True)


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def limited(stream: Any) -> bytes:
    raw = bytes(stream.read(MAX_VALUE_BYTES + 1))
    if len(raw) > MAX_VALUE_BYTES:
        raise CommandError(f"the value is longer than {MAX_VALUE_BYTES} bytes", ExitCode.INVALID)
    return raw


def is_text(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def value_body(raw: bytes) -> dict[str, str]:
    """The `value` and `encoding` of a request body: UTF-8 text as it is, other bytes base64."""
    if is_text(raw):
        return {"value": raw.decode("utf-8"), "encoding": "utf-8"}
    return {"value": base64.b64encode(raw).decode("ascii"), "encoding": "base64"}
