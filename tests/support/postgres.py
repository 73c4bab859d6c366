"""A throwaway PostgreSQL cluster (Debian's initdb and pg_ctl) on a free loopback port.

Used by the test fixtures and by the benchmark harness. As root, the cluster runs as the
`postgres` OS user, since initdb refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POSTGRES_ROOT = Path("/usr/lib/postgresql")
# For tests: nothing needs to survive a crash, so nothing waits for the disk. A deployment keeps
# PostgreSQL's durable defaults (pass `settings=()`).
NO_DURABILITY = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresUnavailable(Exception):
    """The server binaries are missing or the cluster did not start; the message says why."""


@contextmanager
def throwaway_postgres(settings: tuple[str, ...] = NO_DURABILITY) -> Iterator[str]:
    """Start a new cluster with these server settings; yield the superuser URL; remove it all.

    The URL is `postgresql+psycopg://postgres@127.0.0.1:<port>/postgres` (trust authentication
    on loopback only)."""
    bindir = postgres_bindir()
    workdir = Path(tempfile.mkdtemp(prefix="secret-tests-pg-"))
    run_as = _run_as_postgres_owner(workdir)

    def command(tool: str, *args: str) -> list[str]:
        return [*run_as, str(bindir / tool), "-D", str(workdir / "data"), *args]

    port = free_port()
    server_settings = ("listen_addresses=127.0.0.1", *settings)
    options = " ".join(f"-c {setting}" for setting in server_settings) + f" -p {port} -k {workdir}"
    try:
        _run(command("initdb", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"), workdir)
        _run(command("pg_ctl", "-l", str(workdir / "log"), "-w", "-o", options, "start"), workdir)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop = command("pg_ctl", "-m", "immediate", "stop")
        subprocess.run(stop, cwd=workdir, capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def postgres_bindir() -> Path:
    """The newest installed server version's bin directory."""
    bindirs = sorted(
        (initdb.parent for initdb in POSTGRES_ROOT.glob("*/bin/initdb")),
        key=lambda bindir: int(bindir.parent.name) if bindir.parent.name.isdigit() else 0,
    )
    if not bindirs or not (bindirs[-1] / "pg_ctl").exists():
        raise PostgresUnavailable(
            f"PostgreSQL server binaries not found in {POSTGRES_ROOT}/*/bin: install them "
            "(apt-get install postgresql-15) or set SECRETS_TEST_DATABASE_URL to a server URL"
        )
    return bindirs[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as_postgres_owner(workdir: Path) -> list[str]:
    """initdb refuses to run as root: then the server runs as the `postgres` OS user."""
    if os.geteuid() != 0:
        return []
    shutil.chown(workdir, user="postgres", group="postgres")
    return ["runuser", "-u", "postgres", "--"]


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log = cwd / "log"
        raise PostgresUnavailable(
            f"could not start the test PostgreSQL server: {' '.join(command)} failed:\n"
            f"{result.stdout}{result.stderr}{log.read_text() if log.exists() else ''}"
        )
