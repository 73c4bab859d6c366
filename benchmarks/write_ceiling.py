"""The ceiling of a durable write in this stack on this machine: a minimal Flask app whose POST
does only what any durable write must (one INSERT of a row the size of a version and its
ciphertext, then COMMIT, with PostgreSQL's durable defaults: no authentication, no
authorization, no encryption, no audit, no change record), served like the service
(`entrypoints.server.run_server`: granian, the same workers and threads), on the same throwaway
PostgreSQL cluster as the service, driven by the same wrk settings as `benchmarks.write_probe`,
alternating with the service's own writes of a new version (and OpenBao raft + file audit with
`--openbao`). No write of the service can be faster than this one.

    .venv/bin/python -m benchmarks.write_ceiling [--openbao] [--rounds 3] [--duration 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, request
from sqlalchemy import (
    Column,
    DateTime,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    insert,
)

from adapters.db.engine import create_engine_from_url
from benchmarks import servers
from benchmarks.load import LoadGenerator, Request, Target
from benchmarks.write_probe import (
    SECRETS,
    arguments,
    load_settings,
    openbao_target,
    report,
    service_target,
)
from tests.support.postgres import free_port

DATABASE_VARIABLE = "WRITE_CEILING_DATABASE_URL"
# A benchmark's scratch table, in a database of its own on the throwaway cluster (never in a
# service's database): the columns of a version row and its ciphertext, in one row.
schema = MetaData()
rows = Table(
    "bench_write_ceiling",
    schema,
    Column("id", Integer, Identity(), primary_key=True),
    Column("secret_id", Uuid, nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("locator", String(64), nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("blob", LargeBinary, nullable=False),
)
INSERT = insert(rows).returning(rows.c.id)
# The ciphertext's overhead over the value: key id, nonce and tag (`adapters.crypto`).
SEALING_BYTES = 60


def create_write_ceiling_app() -> Flask:
    engine = create_engine_from_url(os.environ[DATABASE_VARIABLE], track_changes=False)
    app = Flask("write_ceiling")

    @app.get("/healthz")
    def healthy() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/ceiling/<uuid:key>/versions")
    def write(key: uuid.UUID) -> tuple[dict[str, Any], int]:
        value = str((request.get_json(silent=True) or {}).get("value", "")).encode()
        row = {
            "secret_id": key,
            "version": 1,
            "state": "enabled",
            "locator": str(uuid.uuid4()),
            "checksum": "0" * 64,
            "created_at": datetime.now(UTC),
            "created_by": "serviceaccount:ceiling",
            "blob": os.urandom(len(value) + SEALING_BYTES),
        }
        with engine.begin() as connection:  # BEGIN, INSERT, COMMIT (fsync)
            number = connection.execute(INSERT, row).scalar_one()
        return {"id": str(key), "row": number}, 201

    return app


@contextmanager
def ceiling_server(database_url: str, workers: int, workdir: Path) -> Iterator[Target]:
    """The minimal durable write served like the service, and its load (the same number of
    keys as the service's secrets, the same body)."""
    engine = create_engine_from_url(database_url, track_changes=False)
    try:
        schema.create_all(engine)
    finally:
        engine.dispose()
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.write_ceiling", "--serve", "--port", str(port)]
    with servers.running(
        "write ceiling",
        [*command, "--workers", str(workers)],
        port=port,
        health_path="/healthz",
        log_path=workdir / "write-ceiling.log",
        env=os.environ | {DATABASE_VARIABLE: database_url},
        cwd=Path(__file__).resolve().parent.parent,
    ) as process:
        keys = [uuid.uuid4() for _ in range(SECRETS)]
        calls = [
            Request("POST", f"/ceiling/{key}/versions", json.dumps({"value": f"x{key}"}))
            for key in keys
        ]
        headers = {"Content-Type": "application/json"}
        yield Target("write ceiling", process.url, headers, calls, status=201)


def serve(args: argparse.Namespace) -> None:
    from entrypoints.config import Settings
    from entrypoints.server import run_server

    settings = Settings(port=args.port, workers=args.workers, log_level="INFO")
    run_server(settings, target="benchmarks.write_ceiling:create_write_ceiling_app")


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    wrk = servers.ensure_wrk(install=False)
    with tempfile.TemporaryDirectory(prefix="write-ceiling-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        ours_url, ceiling_url = stack.enter_context(servers.postgres_databases(None, True, 2))
        targets = [
            service_target(stack, workdir, ours_url, args.workers),
            stack.enter_context(ceiling_server(ceiling_url, args.workers, workdir)),
        ]
        if args.openbao:
            targets.append(openbao_target(stack.enter_context(servers.openbao_raft(workdir))))
        measured = LoadGenerator(wrk, load_settings(args), workdir).compare("write", targets)
        report(measured)
        means = {
            name: sum(run.requests_per_second for run in result.runs) / len(result.runs)
            for name, result in measured.items()
        }
        ceiling = means["write ceiling"]
        for name, mean in means.items():
            print(f"{name} / write ceiling: {mean / ceiling:.2f}")


if __name__ == "__main__":
    main()
