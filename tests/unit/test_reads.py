"""ValueReader: the one path a value takes out of its backend, for a read by id, name or
reference, a resolution and an export. `read` raises why a version may not be served;
`read_or_reason` (a resolution's, an export's) answers it as a code and goes on; neither serves
a value that does not match its checksum."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from core.backends import BackendRegistry
from core.domain.errors import Expired, NotYetValid, ValueIntegrityError, VersionUnavailable
from core.domain.secrets import Secret, SecretVersion, VersionState
from core.domain.values import Principal, ScopeRef, SecretValue
from core.policy import ValueChecksum
from core.reads import ValueReader
from core.stored_values import store_value
from tests.fakes import FixedClock, InMemoryBackend

NOW = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
CHECKSUM = ValueChecksum(b"unit-test-checksum-key-of-32-byt")
ALICE = Principal("user:alice", "user")


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend("memory")


@pytest.fixture
def reader(backend: InMemoryBackend) -> ValueReader:
    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    return ValueReader(registry, FixedClock(NOW), CHECKSUM)


def stored(backend: InMemoryBackend, value: bytes = b"s3cret") -> tuple[Secret, SecretVersion]:
    secret = Secret(
        id=uuid4(),
        scope=ScopeRef.global_scope(),
        name="KEY",
        backend=backend.name,
        created_at=NOW,
        created_by=ALICE.id,
        current_version=1,
    )
    record = store_value(backend, CHECKSUM, secret.id, 1, SecretValue(value), ALICE, NOW)
    return secret, record


def test_a_servable_version_gives_its_value_both_ways(
    reader: ValueReader, backend: InMemoryBackend
) -> None:
    secret, record = stored(backend)

    assert reader.read(secret, record).reveal() == b"s3cret"
    value, reason = reader.read_or_reason(secret, record)
    assert (value.reveal() if value else None, reason) == (b"s3cret", None)


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        ({"state": VersionState.DISABLED}, VersionUnavailable, "version_unavailable"),
        ({"expires_at": NOW - timedelta(seconds=1)}, Expired, "secret_expired"),
        ({"not_before": NOW + timedelta(seconds=1)}, NotYetValid, "secret_not_yet_valid"),
        ({"disable_at": NOW}, VersionUnavailable, "version_unavailable"),
    ],
)
def test_a_version_that_may_not_be_served_is_refused_or_answered_with_why(
    reader: ValueReader,
    backend: InMemoryBackend,
    change: dict[str, object],
    error: type[Exception],
    code: str,
) -> None:
    secret, record = stored(backend)
    record = replace(record, **change)

    with pytest.raises(error):
        reader.read(secret, record)
    assert reader.read_or_reason(secret, record) == (None, code)


def test_a_tampered_value_is_never_answered_as_a_reason(
    reader: ValueReader, backend: InMemoryBackend
) -> None:
    secret, record = stored(backend)
    backend.tamper(record.locator, b"attacker")

    for read in (reader.read, reader.read_or_reason):
        with pytest.raises(ValueIntegrityError) as caught:
            read(secret, record)
        assert "attacker" not in str(caught.value)
        assert "s3cret" not in str(caught.value)
