"""The storage backend contract: cases every backend passes, importable by plugin authors.

Subclass `BackendContract` in a test module and give it a `backend` fixture that returns a
fresh backend instance (plain pytest, nothing else needed)::

    from plugins.testing import BackendContract

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self):
            backend = MyBackend("mine", {...})
            yield backend
            backend.close()

Besides the signatures of `ports.storage.StorageBackend`, the contract checks these rules:

- A value is served only under the version key it was put for: `get` with a locator and any
  other `VersionKey` raises `ValueIntegrityError` or `NotFound`, never returns the value. The
  service trusts that a value read for version N *is* version N's value.
- `destroy` and `purge` are idempotent; `purge` touches only the secret it names.
- A value over `capabilities.max_value_bytes` is refused with `ValueTooLarge`, naming the limit.
- Values the backend wrote itself are never offered for adoption by `list_external`.
- No value appears in `repr(backend)`, in the message of any exception the backend raises, nor
  in any log record, even with every logger (SDKs included) at DEBUG.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from core.domain.errors import NotFound, ValueIntegrityError, ValueTooLarge
from core.domain.values import SecretValue, VersionKey
from plugins.testing.leaks import assert_not_leaked, canary
from ports.storage import BackendCapabilities, StorageBackend

ROUND_TRIP_VALUES = {
    "empty": b"",
    "binary-with-nuls": b"\x00starts\x00\xff\xfe\x80 and ends with NULs\x00\x00",
    "64-kib": bytes(range(256)) * 256,
    "unicode-text": "pässwörd ✓ 🔑 пароль 密码".encode(),
}


def new_key(version: int = 1) -> VersionKey:
    return VersionKey(uuid.uuid4(), version)


class BackendContract:
    """The contract cases. A subclass provides the `backend` fixture."""

    @pytest.fixture
    def backend(self) -> StorageBackend:
        raise NotImplementedError("a BackendContract subclass provides the `backend` fixture")

    @pytest.mark.parametrize("value", ROUND_TRIP_VALUES.values(), ids=ROUND_TRIP_VALUES.keys())
    def test_put_then_get_returns_the_value(self, backend: StorageBackend, value: bytes) -> None:
        if len(value) > backend.capabilities.max_value_bytes:
            pytest.skip(f"the backend stores at most {backend.capabilities.max_value_bytes} bytes")
        key = new_key()
        locator = backend.put(key, SecretValue(value))
        assert isinstance(locator, str)
        assert backend.get(key, locator).reveal() == value

    def test_every_version_stays_readable_by_its_own_locator(self, backend: StorageBackend) -> None:
        secret_id = uuid.uuid4()
        written = {}
        for version in (1, 2, 3):
            value = canary()
            written[version] = (
                backend.put(VersionKey(secret_id, version), SecretValue(value)),
                value,
            )
        assert len({locator for locator, _ in written.values()}) == 3
        for version, (locator, value) in written.items():
            assert backend.get(VersionKey(secret_id, version), locator).reveal() == value

    def test_a_value_is_never_served_under_another_version_key(
        self, backend: StorageBackend
    ) -> None:
        first, value = new_key(1), canary()
        locator = backend.put(first, SecretValue(value))
        backend.put(VersionKey(first.secret_id, 2), SecretValue(canary()))
        for wrong_key in (VersionKey(first.secret_id, 2), VersionKey(uuid.uuid4(), 1)):
            with pytest.raises((ValueIntegrityError, NotFound)) as raised:
                backend.get(wrong_key, locator)
            assert_not_leaked(raised.value, value)

    def test_destroy_removes_the_value_and_is_idempotent(self, backend: StorageBackend) -> None:
        key, value = new_key(1), canary()
        locator = backend.put(key, SecretValue(value))
        kept_key, kept_value = VersionKey(key.secret_id, 2), canary()
        kept_locator = backend.put(kept_key, SecretValue(kept_value))

        backend.destroy(key, locator)
        backend.destroy(key, locator)

        with pytest.raises(NotFound) as raised:
            backend.get(key, locator)
        assert_not_leaked(raised.value, value)
        assert backend.get(kept_key, kept_locator).reveal() == kept_value

    def test_purge_removes_every_version_of_that_secret_only(self, backend: StorageBackend) -> None:
        purged = uuid.uuid4()
        purged_locators = {
            VersionKey(purged, version): backend.put(
                VersionKey(purged, version), SecretValue(canary())
            )
            for version in (1, 2)
        }
        other_key, other_value = new_key(1), canary()
        other_locator = backend.put(other_key, SecretValue(other_value))

        backend.purge(purged)
        backend.purge(purged)
        backend.purge(uuid.uuid4())

        for key, locator in purged_locators.items():
            with pytest.raises(NotFound):
                backend.get(key, locator)
        assert backend.get(other_key, other_locator).reveal() == other_value

    def test_health_reports_ok_with_its_latency(self, backend: StorageBackend) -> None:
        health = backend.health()
        assert health.ok, health.detail
        assert health.latency_ms >= 0

    def test_name_and_capabilities_are_sane(self, backend: StorageBackend) -> None:
        assert isinstance(backend.name, str) and backend.name
        assert isinstance(backend.capabilities, BackendCapabilities)
        assert backend.capabilities.max_value_bytes > 0

    def test_repr_never_shows_a_value(self, backend: StorageBackend) -> None:
        value = canary()
        backend.put(new_key(), SecretValue(value))
        assert value.decode() not in repr(backend)
        assert value.decode() not in str(backend)

    def test_a_value_over_the_limit_is_refused_naming_the_limit(
        self, backend: StorageBackend
    ) -> None:
        limit = backend.capabilities.max_value_bytes
        with pytest.raises(ValueTooLarge) as raised:
            backend.put(new_key(), SecretValue(b"x" * (limit + 1)))
        assert str(limit) in raised.value.message

    def test_values_it_wrote_are_not_offered_for_adoption(self, backend: StorageBackend) -> None:
        locator = backend.put(new_key(), SecretValue(canary()))
        assert locator not in {found.locator for found in backend.list_external("")}

    def test_no_value_reaches_a_log_record(
        self, backend: StorageBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        value = canary()
        caplog.set_level(logging.DEBUG)
        key = new_key()
        locator = backend.put(key, SecretValue(value))
        backend.get(key, locator)
        backend.destroy(key, locator)
        backend.purge(key.secret_id)
        for record in caplog.records:
            assert value.decode() not in record.getMessage(), record.name
            assert value.decode() not in repr(record.__dict__), record.name
