"""An import written a chunk of entries at a time (`core.import_writes`, issue 20) behaves as one
written at once: every version in one transaction with its audit events in file order (the
chain unbroken across the parts it is appended in, its checkpoints signed, the sinks sent every
event), and a failure in any chunk or at the commit imports nothing and destroys every value
put by every chunk."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from core import import_writes
from core.audit_chain import verify_chain
from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.errors import BackendUnavailable, Conflict, PreconditionFailed
from core.domain.values import Principal, ScopeRef, ScopeType
from core.formats import FormatRegistry
from core.imports import ImportService
from core.policy import SecretPolicy, ValueChecksum
from core.transfer_requests import ConflictStrategy, ImportRequest
from core.types import TypeRegistry
from tests.fakes import (
    CHECKPOINT_KEY,
    FakeCipher,
    FakeDatabase,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
    RecordingSink,
    RecordsFormat,
    fake_secret_types,
    make_audit_trail,
    recorded,
)

ALICE = Principal("user:alice", "user")
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
ORGANIZATION = ScopeRef(ScopeType.ORGANIZATION, "acme")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(import_writes, "IMPORT_CHUNK", 2)
    monkeypatch.setattr(import_writes, "PUT_BATCH", 1)


@pytest.fixture
def db() -> FakeUnitOfWorkFactory:
    database = FakeDatabase()
    database.add_scope(ORGANIZATION, ScopeRef.global_scope())
    database.add_scope(PROJECT, ORGANIZATION)
    database.grant(ALICE.id, Role.ADMIN)
    return FakeUnitOfWorkFactory(database)


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend("memory")


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def importer(db: FakeUnitOfWorkFactory, backend: InMemoryBackend, sink: RecordingSink) -> Any:
    clock = FixedClock(datetime(2024, 3, 1, 9, 30, tzinfo=UTC))
    return ImportService(
        uow_factory=db,
        backends=BackendRegistry({backend.name: backend}, default=backend.name),
        clock=clock,
        checksum=ValueChecksum(b"unit-test-checksum-key-of-32-byt"),
        policy=SecretPolicy(),
        audit=make_audit_trail(db, clock, sinks=[sink], checkpoint_every=4),
        types=TypeRegistry(fake_secret_types()),
        formats=FormatRegistry({"records": RecordsFormat()}),
        cipher=FakeCipher(),
    )


def records(*items: dict[str, Any]) -> io.BytesIO:
    return io.BytesIO(("\n".join(json.dumps(item) for item in items) + "\n").encode())


def run(importer: ImportService, content: io.BytesIO, **request: Any) -> Any:
    request.setdefault("strategy", ConflictStrategy.OVERWRITE)
    request.setdefault("format", "records")
    return importer.import_secrets(ALICE, ImportRequest(scope=PROJECT, **request), content)


def first() -> io.BytesIO:
    """Five new secrets, eight versions: three chunks (of two entries), put one value a call."""
    return records(
        {"name": "A", "value": "a1", "history": ["a0"]},
        {"name": "B", "value": "b1"},
        {"name": "C", "value": "c1"},
        {"name": "D", "value": "d1", "history": ["d-1", "d0"]},
        {"name": "E", "value": "e1"},
    )


def test_every_chunk_lands_in_one_chain_in_file_order(
    db: FakeUnitOfWorkFactory, importer: ImportService, sink: RecordingSink
) -> None:
    run(importer, first())
    with recorded(db) as events:
        report = run(
            importer,
            records(
                {"name": "A", "value": "plaintext-a2"},
                {"name": "B", "value": "b1"},  # unchanged
                {"name": "F", "value": "f1"},
                {"name": "C", "value": "c2"},
                {"name": "G", "value": "plaintext-g1"},
            ),
        )

    assert report.counts == {"create": 2, "update": 2, "unchanged": 1, "skipped": 0, "conflict": 0}
    assert [(e.action, e.details.get("name"), e.version) for e in events] == [
        ("secret.import", None, None),
        ("secret.write_value", "A", 3),
        ("secret.create", "F", 1),
        ("secret.write_value", "C", 2),
        ("secret.create", "G", 1),
    ]
    chain = db.database.audit_events()
    assert [event.seq for event in chain] == list(range(1, len(chain) + 1))
    checkpoints = db.database.audit_checkpoints()
    assert verify_chain(chain, checkpoints, CHECKPOINT_KEY, checkpoint_every=4) == (
        len(chain),
        None,
    )
    assert [event.seq for event in sink.events] == [event.seq for event in chain]
    assert all(e.details["value_hmac"].startswith("hmac-sha256:") for e in events[1:])
    assert "plaintext-" not in repr(chain) and "plaintext-" not in repr(sink.events)


def test_a_backend_failing_in_a_later_chunk_destroys_the_earlier_chunks_values(
    db: FakeUnitOfWorkFactory, backend: InMemoryBackend, importer: ImportService
) -> None:
    puts = []

    def fail_the_fifth(key: object) -> None:
        puts.append(key)
        if len(puts) == 4:
            backend.fail_next_put = True

    backend.on_put = fail_the_fifth

    with pytest.raises(BackendUnavailable):
        run(importer, first())

    assert len(backend.destroyed) == 4 and backend.values == {}
    assert db.database.tables.secrets == {}


def test_a_failing_commit_or_a_moved_secret_imports_nothing_and_destroys_every_value(
    db: FakeUnitOfWorkFactory, backend: InMemoryBackend, importer: ImportService
) -> None:
    db.database.fail_next_commit(RuntimeError("the database went away"))
    with pytest.raises(RuntimeError):
        run(importer, first())
    assert backend.values == {} and len(backend.destroyed) == 8
    assert db.database.tables.secrets == {}

    run(importer, first())
    stored = dict(backend.values)
    db.database.fail_next_update(PreconditionFailed("moved on"))
    with pytest.raises(Conflict, match="nothing was imported"):
        run(importer, records({"name": "A", "value": "plaintext-a2"}, {"name": "N", "value": "n1"}))
    assert backend.values == stored
    assert {secret.name for secret in db.database.tables.secrets.values()} == set("ABCDE")
