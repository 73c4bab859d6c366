"""The audit trail's storage: events, the chain head row, and signed checkpoints.

`lock_head` updates the single head row first: that takes the row lock on PostgreSQL and the
write lock on SQLite, so concurrent appends queue up and the chain order is well defined.
A database that cannot be written becomes `AuditUnavailable`: a value read then fails closed.
One that refuses an event's data becomes `AuditEventRefused` (see `write_error`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Text, cast, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, StatementError

from adapters.db.engine import BUMPED, CHANGED
from adapters.db.tables import audit_checkpoints, audit_events, audit_head
from core.audit_chain import CheckpointDue, canonical_fields, chain_hash
from core.domain.audit import (
    CONTENT_FIELDS,
    AuditEvent,
    AuditFilter,
    ChainLink,
    Checkpoint,
    with_fields,
)
from core.domain.errors import AuditEventRefused, AuditUnavailable
from ports.repositories.audit import AuditRepository

CHAIN_FIELDS = ("seq", "prev_hash", "hash")
# PostgreSQL's append in one statement: the events as one JSON document of rows (parsed by the
# server), and the head moved in the same go. Built from constants only.
APPEND_COLUMNS = ", ".join(column.name for column in audit_events.c)
APPEND_SQL = (
    f"WITH appended AS (INSERT INTO secret_audit_events ({APPEND_COLUMNS}) "  # noqa: S608
    f"SELECT {APPEND_COLUMNS} FROM json_populate_recordset(NULL::secret_audit_events, %s::json)) "
    "UPDATE secret_audit_head SET seq = %s, hash = %s WHERE id = 1"
)
LOCK_HEAD_SQL = (
    "UPDATE secret_audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash, generation"
)
# The append sent with the COMMIT (`append_at_commit`): `secret_audit_append` (migration 0007)
# inside the transaction; a batch that would reach a seq needing a signed checkpoint writes
# nothing, and dividing by its `out_written` (false: 0) then aborts the transaction, so that
# the COMMIT sent behind it rolls back instead (SQLSTATE 22012, `CheckpointDue`).
APPEND_AT_COMMIT_SQL = (
    "SELECT out_seq, out_hash, 1 / out_written::int FROM secret_audit_append("
    "string_to_array(%s, E'\\n'), '{}'::bigint[], %s)"
)
BUMP_GENERATION_SQL = "UPDATE secret_audit_head SET generation = generation + 1 WHERE id = 1"
DIVISION_BY_ZERO = "22012"
STREAM_BATCH = 5000
LINK_BATCH = 20000
LINK_CONTENT_FIELDS = tuple(name for name in CONTENT_FIELDS if name != "time")
# `details` as its stored text: most events have none ("{}"), and parsing each row's JSON in
# the driver was a sixth of a verification; the text is parsed here only when it holds more.
LINK_COLUMNS = (
    audit_events.c.seq,
    audit_events.c.prev_hash,
    audit_events.c.hash,
    audit_events.c.time,
    *(
        cast(audit_events.c[name], Text).label(name) if name == "details" else audit_events.c[name]
        for name in LINK_CONTENT_FIELDS
    ),
)
NO_DETAILS = frozenset({None, "", "{}", "null"})


def write_error(error: Exception, dbapi: Any) -> AuditUnavailable:
    """A failed write of audit events as the trail sees it: `AuditEventRefused` when the
    store refused an event's data (PEP 249's `DataError` or `IntegrityError` of the driver
    `dbapi`, or a value the driver could not convert), so the events written with it are
    tried again without it; `AuditUnavailable` when the store cannot be written at all."""
    cause = error.orig if isinstance(error, StatementError) and error.orig else error
    message = f"the audit trail cannot be written: {type(error).__name__}"
    refused = (dbapi.DataError, dbapi.IntegrityError, ValueError, TypeError, OverflowError)
    if isinstance(cause, refused):
        return AuditEventRefused(message)
    return AuditUnavailable(message)


class SqlAuditRepository(AuditRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._generation: int | None = None
        self._postgres = connection.dialect.name == "postgresql"
        # What `append_at_commit` left for the commit: the events, their contents, the
        # checkpoint cadence and the list to fill with them as chained.
        self._pending: tuple[list[AuditEvent], list[str], int, list[AuditEvent]] | None = None

    def append_at_commit(
        self, events: Sequence[AuditEvent], contents: Sequence[str], checkpoint_every: int
    ) -> list[AuditEvent] | None:
        if not self._postgres or self._pending is not None or not events:
            return None
        linked: list[AuditEvent] = []
        self._pending = (list(events), list(contents), checkpoint_every, linked)
        return linked

    def commit_pending(self) -> bool:
        """Commit the transaction with the append `append_at_commit` left, if any (True then):
        the append, the change generation's increment when cached rows changed
        (`adapters.db.engine`), and COMMIT, pipelined in one round trip. The chain's lock is
        taken by the append and released by the COMMIT, inside the server."""
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        events, contents, every, linked = pending
        lines = "\n".join(contents)
        if lines.count("\n") != len(contents) - 1:  # not canonical JSON
            raise AuditEventRefused("the audit trail cannot be written: a newline in an event")
        info = self._connection.info
        bump = bool(info.get(CHANGED))
        driver = self._connection.connection.driver_connection
        assert driver is not None
        failed: list[Exception] = []  # the first error, as it arrives inside the pipeline
        try:
            with driver.pipeline():
                try:
                    appended = driver.cursor()
                    appended.execute(APPEND_AT_COMMIT_SQL, (lines, every))
                    if bump:
                        driver.execute(BUMP_GENERATION_SQL)
                    driver.execute("COMMIT")
                except Exception as error:  # the pipeline's end then says "aborted"
                    failed.append(error)
            if failed:
                raise failed[0]
            row = appended.fetchone()
        except Exception as error:  # the driver's own errors; the transaction is not committed
            error = failed[0] if failed else error
            if getattr(error, "sqlstate", None) == DIVISION_BY_ZERO:
                raise CheckpointDue() from None
            raise write_error(error, self._connection.dialect.dbapi) from None
        if bump:
            info[BUMPED] = True  # the engine's commit hook then only tells the read caches
        assert row is not None
        seq, prev_hash = int(row[0]), str(row[1])
        for event, canonical in zip(events, contents, strict=True):
            seq += 1
            digest = chain_hash(seq, prev_hash, canonical)
            linked.append(with_fields(event, seq=seq, prev_hash=prev_hash, hash=digest))
            prev_hash = digest
        return True

    def append(self, events: Sequence[AuditEvent]) -> None:
        if not self._postgres:
            super().append(events)
            return
        # One statement, whatever the number of events, with the same text each time (so the
        # server keeps it prepared).
        rows = []
        for event in events:
            row = event.content()  # its time as ISO 8601 with the offset, as hashed
            row.update(seq=event.seq, prev_hash=event.prev_hash, hash=event.hash)
            rows.append(row)
        last = events[-1]
        self._raw(APPEND_SQL, (json.dumps(rows), last.seq, last.hash))

    def _raw(self, sql: str, parameters: Sequence[Any]) -> Any:
        """Run `sql` on the driver's connection, inside this unit of work's transaction (the
        hot path of every request skips SQLAlchemy's statement machinery); its first row."""
        driver = self._connection.connection.driver_connection
        assert driver is not None
        try:
            with driver.cursor() as cursor:
                cursor.execute(sql, parameters)
                return cursor.fetchone() if cursor.description else None
        except Exception as error:  # the driver's own errors
            raise write_error(error, self._connection.dialect.dbapi) from None

    def lock_head(self) -> tuple[int, str]:
        if self._postgres:
            row = self._raw(LOCK_HEAD_SQL, ())
            assert row is not None
            self._generation = int(row[2])
            return int(row[0]), str(row[1])
        try:
            row = self._connection.execute(  # lock and read the head in one round trip
                update(audit_head)
                .where(audit_head.c.id == 1)
                .values(seq=audit_head.c.seq)
                .returning(audit_head.c.seq, audit_head.c.hash, audit_head.c.generation)
            ).one()
        except DBAPIError as error:
            raise AuditUnavailable(
                f"the audit trail cannot be written: {type(error).__name__}"
            ) from None
        self._generation = int(row.generation)
        return int(row.seq), str(row.hash)

    def generation(self) -> int:
        if self._generation is None:
            self._generation = int(
                self._connection.execute(
                    select(audit_head.c.generation).where(audit_head.c.id == 1)
                ).scalar_one()
            )
        return self._generation

    def insert(self, events: Sequence[AuditEvent]) -> None:
        rows = [_row_of(event) for event in events]
        try:
            self._connection.execute(insert(audit_events), rows)
        except (DBAPIError, ValueError, TypeError, OverflowError) as error:  # the driver's too
            raise write_error(error, self._connection.dialect.dbapi) from None

    def head(self) -> tuple[int, str]:
        row = self._connection.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).one()
        return int(row.seq), str(row.hash)

    def set_head(self, seq: int, digest: str) -> None:
        self._connection.execute(
            update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest)
        )

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._connection.execute(
            insert(audit_checkpoints).values(
                seq=checkpoint.seq,
                hash=checkpoint.hash,
                mac=checkpoint.mac,
                created_at=checkpoint.created_at,
            )
        )

    def checkpoints(self) -> list[Checkpoint]:
        rows = self._connection.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
        return [Checkpoint(row.seq, row.hash, row.mac, row.created_at) for row in rows]

    def events(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[AuditEvent]:
        statement = select(audit_events).where(audit_events.c.seq >= from_seq)
        if to_seq is not None:
            statement = statement.where(audit_events.c.seq <= to_seq)
        # On the statement, not the connection: a connection's options would outlive the query.
        result = self._connection.execute(
            statement.order_by(audit_events.c.seq).execution_options(yield_per=STREAM_BATCH)
        )
        for row in result:
            yield _event_of(row)

    def chain_links(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[ChainLink]:
        # Plain columns and tuples rather than events: verifying a million is bound by this.
        statement = select(*LINK_COLUMNS).where(audit_events.c.seq >= from_seq)
        if to_seq is not None:
            statement = statement.where(audit_events.c.seq <= to_seq)
        result = self._connection.execute(
            statement.order_by(audit_events.c.seq).execution_options(yield_per=LINK_BATCH)
        )
        names = LINK_CONTENT_FIELDS
        for seq, prev_hash, digest, time, *rest in result:
            content = dict(zip(names, rest, strict=True))
            content["time"] = time.isoformat()
            details = content["details"]
            content["details"] = {} if details in NO_DETAILS else json.loads(details) or {}
            yield ChainLink(seq, prev_hash, digest, canonical_fields(content))

    def search(self, criteria: AuditFilter, limit: int) -> list[AuditEvent]:
        columns = audit_events.c
        conditions: list[Any] = []
        for name in ("actor", "resource", "action", "outcome"):
            wanted = getattr(criteria, name)
            if wanted is not None:
                conditions.append(columns[name] == wanted)
        if criteria.scope_path is not None:
            conditions.append(columns.scope_path.startswith(criteria.scope_path))
        if criteria.since is not None:
            conditions.append(columns.time >= criteria.since)
        if criteria.until is not None:
            conditions.append(columns.time < criteria.until)
        if criteria.before_seq is not None:
            conditions.append(columns.seq < criteria.before_seq)
        rows = self._connection.execute(
            select(audit_events).where(*conditions).order_by(columns.seq.desc()).limit(limit)
        )
        return [_event_of(row) for row in rows]

    def resources_with(
        self, resources: Sequence[str], action: str, outcome: str, since: datetime
    ) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(resources), 500):  # bounded IN lists
            rows = self._connection.execute(
                select(audit_events.c.resource)
                .distinct()
                .where(
                    audit_events.c.resource.in_(resources[start : start + 500]),
                    audit_events.c.action == action,
                    audit_events.c.outcome == outcome,
                    audit_events.c.time >= since,
                )
            )
            found.update(row.resource for row in rows)
        return found

    def prune(self, through_seq: int) -> int:
        result = self._connection.execute(
            delete(audit_events).where(audit_events.c.seq <= through_seq)
        )
        return int(result.rowcount or 0)

    def first_seq(self) -> int | None:
        value = self._connection.execute(select(func.min(audit_events.c.seq))).scalar()
        return None if value is None else int(value)


def _row_of(event: AuditEvent) -> dict[str, Any]:
    return {**event.content(), "time": event.time, **{f: getattr(event, f) for f in CHAIN_FIELDS}}


def _event_of(row: Row[Any]) -> AuditEvent:
    fields = dict(row._mapping)
    fields["details"] = dict(fields["details"] or {})
    return AuditEvent(**fields)
