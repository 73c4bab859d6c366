"""When the metadata of a value that reached an external store fails to commit, the value is
destroyed again: no value is left in a store without a version row pointing at it."""

from __future__ import annotations

from uuid import UUID

import pytest

from core.backends import BackendRegistry
from core.domain.errors import NotFound
from core.domain.values import Principal, ScopeRef, SecretValue, VersionKey
from core.policy import SecretPolicy, ValueChecksum
from core.secrets import NewSecret, SecretService
from ports.storage import BackendHealth, StorageBackend
from tests.fakes import FakeUnitOfWorkFactory, FixedClock, make_audit_trail

ROOT = Principal(id="root", kind="root", is_root=True)


class RecordingBackend(StorageBackend):
    """The real backend, remembering where each `put` stored its value."""

    def __init__(self, backend: StorageBackend) -> None:
        self.name, self.capabilities = backend.name, backend.capabilities
        self.backend = backend
        self.stored: list[tuple[VersionKey, str]] = []

    def put(self, key: VersionKey, value: SecretValue) -> str:
        locator = self.backend.put(key, value)
        self.stored.append((key, locator))
        return locator

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        return self.backend.get(key, locator)

    def destroy(self, key: VersionKey, locator: str) -> None:
        self.backend.destroy(key, locator)

    def purge(self, secret_id: UUID) -> None:
        self.backend.purge(secret_id)

    def health(self) -> BackendHealth:
        return self.backend.health()


def test_a_value_whose_metadata_does_not_commit_is_destroyed(
    external_backend: StorageBackend,
) -> None:
    backend = RecordingBackend(external_backend)
    uow_factory, clock = FakeUnitOfWorkFactory(), FixedClock()
    service = SecretService(
        uow_factory,
        BackendRegistry({backend.name: backend}, default=backend.name),
        clock,
        ValueChecksum(b"k" * 32),
        SecretPolicy(),
        make_audit_trail(uow_factory, clock),
    )
    uow_factory.database.fail_next_commit(RuntimeError("the database went away"))

    with pytest.raises(RuntimeError):
        service.create_secret(
            ROOT, NewSecret(ScopeRef.global_scope(), "DB_PASSWORD"), SecretValue(b"orphan?")
        )

    [(key, locator)] = backend.stored
    with pytest.raises(NotFound):
        external_backend.get(key, locator)
    assert uow_factory.database.all_versions() == []
