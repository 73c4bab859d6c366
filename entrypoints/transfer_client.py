"""`secretctl import` and `secretctl export`: files of secrets to and from a running server, with
progress bars while they travel (at a terminal, unless -q) and a summary at the end (a table, or
`-o json|yaml|env`).

A passphrase (to open a sealed file, or to seal an export) comes from the environment variable
`SECRETCTL_PASSPHRASE` (or the one `--passphrase-env` names) or from a hidden prompt — never
from an argument, which other users of the machine could see.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import click
import requests
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from adapters.sealed_export import MAGIC
from entrypoints.client import Client, api_error, client_options, with_options
from entrypoints.commands.exits import ExitCode
from entrypoints.commands.output import Output, output_options, progress_bar
from entrypoints.commands.references import parse_scope

PASSPHRASE_ENV = "SECRETCTL_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
CHUNK = 64 * 1024
TRANSFER_TIMEOUT = 600
ACTION_STYLES = {
    "create": "green",
    "update": "yellow",
    "unchanged": "dim",
    "skipped": "cyan",
    "conflict": "red",
}

passphrase_option = click.option(
    "--passphrase-env",
    default=PASSPHRASE_ENV,
    show_default=True,
    help="Environment variable holding the passphrase (else it is asked for).",
)


def transfer_bar(quiet: bool) -> Progress:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    return progress_bar(columns, quiet)


quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


def passphrase_from(variable: str, *, confirm: bool) -> str:
    passphrase = os.environ.get(variable)
    if passphrase:
        return passphrase
    if not sys.stdin.isatty():
        raise click.UsageError(f"no passphrase: set {variable} or run in a terminal")
    return str(click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm))


class MultipartBody:
    """A `multipart/form-data` body that streams its file (and reports each chunk read), with
    a known length, so that neither side holds the whole file in memory twice."""

    def __init__(
        self,
        form: dict[str, str],
        file: BinaryIO,
        filename: str,
        size: int,
        on_read: Callable[[int], None],
    ) -> None:
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        safe_name = filename.replace('"', "%22").replace("\r", "").replace("\n", "")
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
            for key, value in form.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{safe_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        self._length = len(head) + size + len(tail)
        self._parts: list[BinaryIO] = [io.BytesIO(head), file, io.BytesIO(tail)]
        self._file = file
        self._on_read = on_read

    def __len__(self) -> int:
        return self._length

    def read(self, size: int | None = -1) -> bytes:
        size = CHUNK if size is None or size < 0 else size
        while self._parts:
            chunk = self._parts[0].read(size)
            if chunk:
                if self._parts[0] is self._file:
                    self._on_read(len(chunk))
                return chunk
            self._parts.pop(0)
        return b""

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "file_format", help="dotenv, json, json-flat… [from the file name]")
@click.option(
    "--strategy",
    type=click.Choice(["skip", "overwrite", "fail"]),
    default="skip",
    show_default=True,
    help="What to do with a name that already holds another value.",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--parent", help="TYPE:ID of the parent, to create the scope on first use.")
@click.option("--backend", help="Storage backend of the new secrets [the default one].")
@passphrase_option
@quiet_option
@output_options
@with_options(client_options)
def import_(
    out: Output,
    quiet: bool,
    file: Path,
    file_format: str | None,
    strategy: str,
    dry_run: bool,
    parent: str | None,
    backend: str | None,
    passphrase_env: str,
    addr: str | None,
    token: str | None,
    scope: str,
    environment: str | None,
) -> None:
    """Import FILE (.env, JSON, or a sealed export) into a scope and environment.

    Nothing is imported from a file with errors (exit 6, a dry run too), nor, with --strategy
    fail, if a name already holds another value (exit 5).

    \b
      secretctl import app.env --scope project:p-42 --env production --dry-run
      secretctl import app.env --scope project:p-42 --env production --strategy overwrite
      SECRETCTL_PASSPHRASE=… secretctl import backup.sealed --scope project:p-42
    """
    client = Client(addr, token)
    form = {**parse_scope(scope).query(), "strategy": strategy}
    form["dry_run"] = "true" if dry_run else "false"
    optional = {"environment": environment, "format": file_format, "backend": backend}
    form.update({key: value for key, value in optional.items() if value})
    if parent:
        above = parse_scope(parent, "--parent")
        form["parent_type"], form["parent_id"] = above.type, above.id
    with file.open("rb") as handle:
        if handle.read(len(MAGIC)) == MAGIC:
            form["passphrase"] = passphrase_from(passphrase_env, confirm=False)
        handle.seek(0)
        response = upload(client, form, handle, file, quiet)
    if response.status_code in (409, 422) and out.for_people:
        show_refusal(response)
    if response.status_code >= 400:
        raise api_error(response)
    report = response.json()
    if out.for_people:
        show_import_report(report)
    else:
        out.record(report)
    if report["errors"]:  # a dry run: the import itself would be refused
        sys.exit(int(ExitCode.INVALID))
    if strategy == "fail" and report["counts"].get("conflict"):
        sys.exit(int(ExitCode.CONFLICT))


def upload(client: Client, form: dict[str, str], handle: BinaryIO, file: Path, quiet: bool) -> Any:
    size = file.stat().st_size
    with transfer_bar(quiet) as progress:
        task = progress.add_task(f"uploading {file.name}", total=size)
        body = MultipartBody(form, handle, file.name, size, lambda n: progress.advance(task, n))
        return client.call(
            "POST",
            "/imports",
            data=body,
            headers={"Content-Type": body.content_type},
            timeout=TRANSFER_TIMEOUT,
        )


def show_import_report(report: dict[str, Any]) -> None:
    console = Console()
    if report["dry_run"] or report["errors"]:
        items = Table(title="dry run: what the import would do" if report["dry_run"] else None)
        for column in ("line", "name", "action", "version", "reason"):
            items.add_column(column)
        for item in report["items"]:
            action = item["action"]
            items.add_row(
                str(item["line"]),
                item["name"],
                f"[{ACTION_STYLES.get(action, '')}]{action}[/]",
                str(item["version"] or ""),
                item["reason"],
            )
        console.print(items)
    if report["errors"]:
        console.print(errors_table(report["errors"]))
    counts = Table(title=f"{report['format']} import, strategy {report['strategy']}")
    for action in report["counts"]:
        counts.add_column(action, justify="right")
    counts.add_column("errors", justify="right")
    counts.add_row(*(str(n) for n in report["counts"].values()), str(len(report["errors"])))
    console.print(counts)


def listing(title: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Table:
    """A red table of the entries that stop an import, one row each."""
    table = Table(title=title, title_style="red")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(column) or "") for column in columns))
    return table


def errors_table(errors: list[dict[str, Any]]) -> Table:
    return listing("errors (nothing was imported)", ("line", "name", "field", "message"), errors)


def show_refusal(response: requests.Response) -> None:
    """The entries that stopped an import: errors by line, or conflicts under `fail`."""
    details = response.json().get("error", {}).get("details", {})
    console = Console(stderr=True)
    if "errors" in details:
        console.print(errors_table(details["errors"]))
    if "conflicts" in details:
        columns = ("line", "name", "reason")
        console.print(listing("conflicts (nothing was imported)", columns, details["conflicts"]))


@click.command("export")
@click.option(
    "--format",
    "file_format",
    default="json",
    show_default=True,
    help="json (metadata, optionally values and versions), json-flat or dotenv (values).",
)
@click.option("--values", "include_values", is_flag=True, help="Include values (admins; audited).")
@click.option("--versions", "include_versions", is_flag=True, help="Include every version.")
@click.option("--seal", is_flag=True, help="Seal the file with a passphrase (scrypt + AES-GCM).")
@click.option(
    "--file", "target", help="Where to write the file ('-' for standard output) [its own name]."
)
@passphrase_option
@quiet_option
@output_options
@with_options(client_options)
def export(
    out: Output,
    quiet: bool,
    file_format: str,
    include_values: bool,
    include_versions: bool,
    seal: bool,
    target: str | None,
    passphrase_env: str,
    addr: str | None,
    token: str | None,
    scope: str,
    environment: str | None,
) -> None:
    """Export a scope's secrets of one environment to a file: metadata only, unless --values.

    The file is written with mode 0600, and only once it is complete; with --seal it is
    encrypted by the server, so no plaintext copy ever reaches the disk. The summary goes to
    standard error as a table (`-o json`: to standard output, unless the file goes there).

    \b
      secretctl export --scope project:p-42 --env production --format dotenv --values
      SECRETCTL_PASSPHRASE=… secretctl export --scope project:p-42 --values --seal --file b.sealed
    """
    client = Client(addr, token)
    body: dict[str, Any] = {
        "scope": parse_scope(scope).body(),
        "environment": environment,
        "format": file_format,
        "include_values": include_values,
        "include_versions": include_versions,
    }
    if seal:
        body["passphrase"] = passphrase_from(passphrase_env, confirm=True)
    response = client.call("POST", "/exports", json=body, stream=True, timeout=TRANSFER_TIMEOUT)
    if response.status_code >= 400:
        raise api_error(response)
    suggested = response.headers.get("Content-Disposition", "").partition('filename="')[2]
    target = target or Path(suggested.rstrip('"')).name or "export"  # never a server's path
    written = download(response, target, quiet)
    if out.for_people:
        show_export_summary(response.headers, written, seal)
    else:
        summary = export_summary(response.headers, written, seal)
        if target == "-":
            click.echo(json.dumps(summary, sort_keys=True), err=True)
        else:
            out.record(summary)


def download(response: requests.Response, target: str, quiet: bool) -> str:
    """Write the answer to `target` (0600, complete or not at all), or to standard output."""
    total = int(response.headers.get("Content-Length") or 0) or None
    with transfer_bar(quiet) as progress:
        task = progress.add_task("downloading", total=total)
        chunks = response.iter_content(CHUNK)
        if target == "-":
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
                progress.advance(task, len(chunk))
            sys.stdout.buffer.flush()
            return "standard output"
        path = Path(target).resolve()
        descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "wb") as handle:  # mkstemp makes it 0600
                for chunk in chunks:
                    handle.write(chunk)
                    progress.advance(task, len(chunk))
            os.replace(partial, path)
        except BaseException:
            os.unlink(partial)
            raise
    return str(path)


def export_summary(headers: Any, written: str, sealed: bool) -> dict[str, Any]:
    return {
        "format": headers.get("X-Export-Format", ""),
        "secrets": int(headers.get("X-Export-Secrets") or 0),
        "values": int(headers.get("X-Export-Values") or 0),
        "sealed": sealed,
        "written_to": written,
        "omitted": json.loads(headers.get("X-Export-Omitted") or "[]"),
    }


def show_export_summary(headers: Any, written: str, sealed: bool) -> None:
    table = Table(title="export")
    for column in ("format", "secrets", "values", "sealed", "written to"):
        table.add_column(column)
    table.add_row(
        headers.get("X-Export-Format", ""),
        headers.get("X-Export-Secrets", ""),
        headers.get("X-Export-Values", ""),
        "yes" if sealed else "no",
        written,
    )
    console = Console(stderr=True)
    console.print(table)
    omitted = json.loads(headers.get("X-Export-Omitted") or "[]")
    if omitted:
        left_out = Table(title="values left out", title_style="yellow")
        left_out.add_column("name")
        left_out.add_column("why")
        for item in omitted:
            left_out.add_row(item["name"], item["reason"])
        console.print(left_out)


TRANSFER_COMMANDS = (import_, export)
