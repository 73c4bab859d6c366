"""The ceiling of a durable write in this stack on this machine: a minimal Flask app whose POST
does only what any durable write must (one INSERT of a row the size of a version and its
ciphertext, then COMMIT, with PostgreSQL's durable defaults: no authentication, no
authorization, no encryption, no audit, no change record), served like the service
(`entrypoints.server.run_server`: granian, the same workers and threads), on the same throwaway
PostgreSQL cluster as the service, driven by the same wrk settings as `benchmarks.write_probe`,
alternating with the service's own writes of a new version (and OpenBao raft + file audit with
`--openbao`). No write of the service can be faster than this one.

A second target of the same app, `versioned ceiling`, does what a write of a new version must do
at the least, still without authentication, authorization, encryption, a hash chain or a change
record: BEGIN; the secret's row locked and read (its version); the version row inserted; the
secret's row updated; one audit row inserted; COMMIT.

    .venv/bin/python -m benchmarks.write_ceiling [--openbao] [--rounds 3] [--duration 8]
"""

from __future__ import annotations

import json
import os
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
    bindparam,
    insert,
    select,
    update,
)

from adapters.db.engine import create_engine_from_url
from benchmarks import ceilings
from benchmarks.ceilings import ceiling_app, ceiling_process
from benchmarks.load import Request, Target
from benchmarks.write_probe import (
    SECRETS,
    openbao_target,
    service_target,
)

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
# The second ceiling, `versioned`: what a write of a new version must do at the least, on its
# secret's row and an audit row (no chain, no change record, no ciphertext table of its own).
heads = Table(
    "bench_write_ceiling_heads",
    schema,
    Column("secret_id", Uuid, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
audit_rows = Table(
    "bench_write_ceiling_audit",
    schema,
    Column("seq", Integer, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("resource", String(255), nullable=False),
    Column("version", Integer, nullable=False),
)
LOCK_HEAD = select(heads.c.version).where(heads.c.secret_id == bindparam("key")).with_for_update()
BUMP_HEAD = (
    update(heads)
    .where(heads.c.secret_id == bindparam("key"))
    .values(version=bindparam("version"), revision=heads.c.revision + 1, updated_at=bindparam("at"))
)
# The ciphertext's overhead over the value: key id, nonce and tag (`adapters.crypto`).
SEALING_BYTES = 60


def create_write_ceiling_app() -> Flask:
    app, engine = ceiling_app("write_ceiling", DATABASE_VARIABLE)

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

    @app.post("/ceiling/<uuid:key>/versioned")
    def write_versioned(key: uuid.UUID) -> tuple[dict[str, Any], int]:
        """BEGIN; the secret's row locked and read; the version and its ciphertext inserted;
        the secret's row updated; one audit row inserted; COMMIT (fsync)."""
        value = str((request.get_json(silent=True) or {}).get("value", "")).encode()
        now = datetime.now(UTC)
        with engine.begin() as connection:
            current = connection.execute(LOCK_HEAD, {"key": key}).scalar_one()
            version = current + 1
            row = {
                "secret_id": key,
                "version": version,
                "state": "enabled",
                "locator": str(uuid.uuid4()),
                "checksum": "0" * 64,
                "created_at": now,
                "created_by": "serviceaccount:ceiling",
                "blob": os.urandom(len(value) + SEALING_BYTES),
            }
            connection.execute(INSERT, row)
            connection.execute(BUMP_HEAD, {"key": key, "version": version, "at": now})
            audit = {
                "at": now,
                "actor": "serviceaccount:ceiling",
                "action": "secret.write_value",
                "resource": f"secret:{key}",
                "version": version,
            }
            connection.execute(insert(audit_rows), audit)
        return {"id": str(key), "version": version}, 201

    return app


def seed_heads(database_url: str, keys: list[uuid.UUID]) -> None:
    """The tables, and one secret row (at version 1) for each key the versioned writes use."""
    engine = create_engine_from_url(database_url, track_changes=False)
    now = datetime.now(UTC)
    try:
        schema.create_all(engine)
        with engine.begin() as connection:
            rows = [{"secret_id": k, "version": 1, "revision": 1, "updated_at": now} for k in keys]
            connection.execute(insert(heads), rows)
    finally:
        engine.dispose()


@contextmanager
def ceiling_server(database_url: str, workers: int, workdir: Path) -> Iterator[list[Target]]:
    """The minimal durable writes served like the service, and their loads (the same number of
    keys as the service's secrets, the same body): one INSERT (`write ceiling`), and what a
    versioned, audited write must do at the least (`versioned ceiling`)."""
    keys = [uuid.uuid4() for _ in range(SECRETS)]
    seed_heads(database_url, keys)
    module = "benchmarks.write_ceiling"
    with ceiling_process(module, DATABASE_VARIABLE, database_url, workers, workdir) as process:
        headers = {"Content-Type": "application/json"}
        yield [
            Target(
                name,
                process.url,
                headers,
                [
                    Request("POST", f"/ceiling/{key}/{path}", json.dumps({"value": f"x{key}"}))
                    for key in keys
                ],
                status=201,
            )
            for name, path in (("write ceiling", "versions"), ("versioned ceiling", "versioned"))
        ]


def targets(
    stack: ExitStack, workdir: Path, ours_url: str, ceiling_url: str, workers: int
) -> list[Target]:
    return [
        service_target(stack, workdir, ours_url, workers),
        *stack.enter_context(ceiling_server(ceiling_url, workers, workdir)),
    ]


if __name__ == "__main__":
    ceilings.main(
        __doc__,
        "benchmarks.write_ceiling:create_write_ceiling_app",
        targets,
        openbao_target,
        "write",
        "writes/s",
        "write ceiling",
    )
