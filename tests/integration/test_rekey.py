"""Key rotation and the re-wrap job on SQLite and PostgreSQL: values survive unchanged, the job
resumes, concurrent runs share the work, tampering is reported, key bytes never logged."""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from adapters.clock import SystemClock
from adapters.crypto import EnvelopeCipher, key_id_of
from adapters.db.key_registry import record_active_key
from adapters.db.rekey import SqlKeyUnitOfWork
from adapters.db.tables import encrypted_values
from adapters.db.uow import SqlUnitOfWork
from adapters.keys import FileKeyProvider
from core.domain.keys import KeyState
from core.domain.values import Principal, SecretValue, VersionKey
from core.keys import KeyService, RewrapProgress
from plugins.local_backend import LocalEncryptedBackend
from tests.fakes import make_audit_trail

OPERATOR = Principal(id="cli", kind="root", is_root=True)
VALUES = 23


class Setup:
    def __init__(self, engine: Engine, tmp_path: Path) -> None:
        self.engine = engine
        self.keys = FileKeyProvider(tmp_path / "master.key", create=True)
        record_active_key(engine, self.keys)
        self.backend = LocalEncryptedBackend("local", engine, self.keys)
        self.stored = {
            VersionKey(uuid.uuid4(), 1): SecretValue(f"value-{n}".encode()) for n in range(VALUES)
        }
        self.locators = dict(
            zip(self.stored, self.backend.put_many(list(self.stored.items())), strict=True)
        )

    def service(self) -> KeyService:
        trail = make_audit_trail(lambda: SqlUnitOfWork(self.engine), SystemClock())
        return KeyService(
            lambda: SqlKeyUnitOfWork(self.engine),
            self.keys,
            EnvelopeCipher(self.keys),
            trail,
            SystemClock(),
        )

    def key_ids(self) -> list[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(encrypted_values.c.key_id, encrypted_values.c.blob))
            return [row.key_id for row in rows if key_id_of(row.blob) == row.key_id]

    def read_back(self) -> dict[VersionKey, SecretValue]:
        return {key: self.backend.get(key, self.locators[key]) for key in self.stored}


@pytest.fixture
def setup(engine: Engine, tmp_path: Path) -> Setup:
    return Setup(engine, tmp_path)


def test_rotate_then_rewrap_moves_every_value_to_the_new_key(setup: Setup) -> None:
    service = setup.service()
    old = setup.keys.active_key().id
    new = service.rotate(OPERATOR)
    assert new.id != old and setup.keys.active_key().id == new.id
    assert {u.id: (u.state, u.blobs) for u in service.usage(OPERATOR)} == {
        old: (KeyState.PREVIOUS, VALUES),
        new.id: (KeyState.ACTIVE, 0),
    }
    progress: list[RewrapProgress] = []
    report = service.rewrap(OPERATOR, batch_size=10, on_batch=progress.append)
    assert (report.rewrapped, report.batches, report.failed) == (VALUES, 3, ())
    assert report.complete and report.retired == (old,)
    assert [p.rewrapped for p in progress] == [10, 20, VALUES]
    assert setup.key_ids() == [new.id] * VALUES
    assert {k: v.reveal() for k, v in setup.read_back().items()} == {
        k: v.reveal() for k, v in setup.stored.items()
    }
    assert {u.id: (u.state, u.blobs) for u in service.usage(OPERATOR)} == {
        old: (KeyState.RETIRED, 0),
        new.id: (KeyState.ACTIVE, VALUES),
    }
    again = service.rewrap(OPERATOR)  # idempotent: nothing left to do
    assert (again.rewrapped, again.batches, again.remaining) == (0, 0, 0)


def test_a_run_stopped_by_its_limit_is_resumed_by_the_next(setup: Setup) -> None:
    service = setup.service()
    new = service.rotate(OPERATOR)
    first = service.rewrap(OPERATOR, batch_size=5, limit=5)
    assert (first.rewrapped, first.batches, first.remaining, first.retired) == (5, 1, 18, ())
    assert setup.key_ids().count(new.id) == 5
    rest = service.rewrap(OPERATOR, batch_size=5)
    assert (rest.rewrapped, rest.remaining) == (VALUES - 5, 0)
    assert setup.key_ids() == [new.id] * VALUES
    assert all(setup.read_back()[k].reveal() == v.reveal() for k, v in setup.stored.items())


def test_a_tampered_blob_is_reported_and_left_as_it_is(setup: Setup) -> None:
    service = setup.service()
    victim = next(iter(setup.stored))
    row_id = uuid.UUID(setup.locators[victim])
    with setup.engine.begin() as connection:
        blob = connection.scalar(
            select(encrypted_values.c.blob).where(encrypted_values.c.id == row_id)
        )
        offset = 2 + blob[1] + 3  # inside the wrapped data key
        tampered = blob[:offset] + bytes([blob[offset] ^ 1]) + blob[offset + 1 :]
        connection.execute(
            update(encrypted_values).where(encrypted_values.c.id == row_id).values(blob=tampered)
        )
    old = setup.keys.active_key().id
    service.rotate(OPERATOR)
    report = service.rewrap(OPERATOR, batch_size=7)
    assert [(f.id, f.key_id) for f in report.failed] == [(row_id, old)]
    assert "altered" in report.failed[0].problem
    assert (report.rewrapped, report.remaining, report.retired) == (VALUES - 1, 1, ())
    assert {u.id: u.state for u in service.usage(OPERATOR)}[old] is KeyState.PREVIOUS


@pytest.mark.postgres
def test_concurrent_runs_on_postgres_rewrap_each_value_once(engine: Engine, tmp_path: Path) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only")
    setup = Setup(engine, tmp_path)
    setup.backend.put_many([(VersionKey(uuid.uuid4(), 1), SecretValue(b"x")) for _ in range(77)])
    total = len(setup.key_ids())
    setup.service().rotate(OPERATOR)
    reports = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        reports.append(setup.service().rewrap(OPERATOR, batch_size=2))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(report.rewrapped for report in reports) == total
    assert all(report.failed == () for report in reports)
    assert setup.key_ids() == [setup.keys.active_key().id] * total


def test_no_key_material_reaches_the_logs(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    service = setup.service()
    service.rotate(OPERATOR)
    service.rewrap(OPERATOR, batch_size=4)
    materials = [setup.keys.key(u.id).material for u in service.usage(OPERATOR)]
    text = caplog.text + repr(setup.keys.active_key()) + repr(service.usage(OPERATOR))
    for material in materials:
        assert material is not None
        assert base64.b64encode(material).decode() not in text
        assert material.hex() not in text
    assert "new active key" in caplog.text  # the log was captured
