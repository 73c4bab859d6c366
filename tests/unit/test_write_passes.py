"""A write of a value sealed with its row takes one unit of work (everything checked under the
secret's lock); a write to an external store still puts its value before the transaction, even
where the default backend seals (issue 20)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.errors import InvalidInput
from core.domain.values import Principal, ScopeRef, SecretValue, VersionKey
from core.policy import SecretPolicy, ValueChecksum
from core.reads import ReadService, ValueReader
from core.secrets import NewSecret, SecretService
from core.writes import WriteService
from ports.storage import BackendCapabilities
from tests.fakes import (
    FakeDatabase,
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
    make_audit_trail,
)

NOW = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
KEY = b"unit-test-checksum-key-of-32-byt"
ALICE = Principal("user:alice", "user")


class SealingBackend(InMemoryBackend):
    """Seals values to be stored with their rows, as the local backend does."""

    def seal(self, key: VersionKey, value: SecretValue) -> tuple[str, bytes]:
        self.sealed.append(key.version)
        return f"{key.secret_id}/{key.version}", b"sealed"

    def __init__(self) -> None:
        super().__init__(
            "sealed", BackendCapabilities(max_value_bytes=64, stored_with_metadata=True)
        )
        self.sealed: list[int] = []


class CountingFactory(FakeUnitOfWorkFactory):
    def __init__(self, database: FakeDatabase) -> None:
        super().__init__(database)
        self.opened: list[bool] = []  # read_only of each unit of work opened

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        self.opened.append(read_only)
        return super().__call__(read_only=read_only)


@pytest.fixture
def setup() -> tuple[
    CountingFactory, SealingBackend, InMemoryBackend, SecretService, WriteService, ReadService
]:
    database = FakeDatabase()
    database.grant(ALICE.id, Role.ADMIN)
    db = CountingFactory(database)
    sealed = SealingBackend()
    external = InMemoryBackend("external")
    registry = BackendRegistry({"sealed": sealed, "external": external}, default="sealed")
    clock = FixedClock(NOW)
    checksum = ValueChecksum(KEY)
    audit = make_audit_trail(db, clock)
    service = SecretService(db, registry, clock, checksum, SecretPolicy(), audit)
    writes = WriteService(db, registry, clock, checksum, SecretPolicy(), audit)
    reads = ReadService(
        db, ValueReader(registry, clock, checksum), clock, make_audit_trail(db, clock)
    )
    return db, sealed, external, service, writes, reads


def test_a_sealed_value_is_written_in_one_unit_of_work(setup):
    db, sealed, _, service, writes, _ = setup
    secret = service.create_secret(
        ALICE, NewSecret(ScopeRef.global_scope(), "S"), SecretValue(b"1")
    )
    db.opened.clear()
    written = writes.write_value(ALICE, secret.id, SecretValue(b"2"))
    assert written.current_version == 2
    assert db.opened == [False]  # no look before the transaction
    assert sealed.sealed == [1, 2]
    with pytest.raises(InvalidInput):  # the sealing backend's limit, checked under the lock
        writes.write_value(ALICE, secret.id, SecretValue(b"x" * 65))
    assert sealed.sealed == [1, 2]
    assert service.get_secret(ALICE, secret.id).current_version == 2


def test_an_external_value_is_put_before_the_transaction_once(setup):
    db, _, external, service, writes, reads = setup
    draft = NewSecret(ScopeRef.global_scope(), "E", backend="external")
    secret = service.create_secret(ALICE, draft, SecretValue(b"1"))
    db.opened.clear()
    puts: list[int] = []
    external.on_put = lambda key: puts.append(key.version)
    written = writes.write_value(ALICE, secret.id, SecretValue(b"2"))
    assert written.current_version == 2
    assert puts == [2]  # put once, before its transaction
    assert db.opened[-2:] == [True, False]  # a look, then the transaction
    assert reads.read_value(ALICE, secret.id).value.reveal() == b"2"
    assert len(external.values) == 2  # nothing left behind
