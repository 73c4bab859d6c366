"""The local encrypted backend on migrated SQLite and PostgreSQL databases."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from adapters.crypto import key_id_of
from adapters.db.engine import create_engine_from_url
from adapters.db.tables import encrypted_values
from adapters.keys import FileKeyProvider
from core.domain.errors import BackendUnavailable, ValueIntegrityError
from core.domain.values import SecretValue, VersionKey
from plugins.local_backend import LocalEncryptedBackend
from plugins.manager import backend_plugins, build_plugin_manager, create_backend
from plugins.testing import BackendContract, canary
from ports.storage import BackendContext


@pytest.fixture
def key_provider(tmp_path: Path) -> FileKeyProvider:
    return FileKeyProvider(tmp_path / "master.key", create=True)


@pytest.fixture
def local(engine: Engine, key_provider: FileKeyProvider) -> LocalEncryptedBackend:
    """Built the way the service builds it: through the plugin's entry point."""
    plugins = backend_plugins(build_plugin_manager())
    backend = create_backend(
        "local", {"plugin": "local"}, plugins, BackendContext(engine, key_provider)
    )
    assert isinstance(backend, LocalEncryptedBackend)
    return backend


class TestLocalBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, local: LocalEncryptedBackend) -> LocalEncryptedBackend:
        return local


def _blobs(engine: Engine) -> list[bytes]:
    with engine.connect() as connection:
        return list(connection.scalars(select(encrypted_values.c.blob)))


def test_the_database_holds_no_plaintext(engine: Engine, local: LocalEncryptedBackend) -> None:
    value = canary()
    local.put(VersionKey(uuid.uuid4(), 1), SecretValue(value))

    assert all(value not in blob for blob in _blobs(engine))
    if engine.dialect.name == "sqlite":
        database = Path(engine.url.database or "")
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                assert value not in path.read_bytes(), path.name


def test_a_ciphertext_copied_to_another_version_does_not_decrypt(
    engine: Engine, local: LocalEncryptedBackend
) -> None:
    first = VersionKey(uuid.uuid4(), 1)
    second = VersionKey(first.secret_id, 2)
    first_locator = local.put(first, SecretValue(b"first value"))
    second_locator = local.put(second, SecretValue(b"second value"))
    with engine.begin() as connection:
        first_blob = connection.scalar(
            select(encrypted_values.c.blob).where(encrypted_values.c.id == uuid.UUID(first_locator))
        )
        connection.execute(
            update(encrypted_values)
            .where(encrypted_values.c.id == uuid.UUID(second_locator))
            .values(blob=first_blob)
        )

    with pytest.raises(ValueIntegrityError):
        local.get(second, second_locator)


def test_values_written_before_a_key_rotation_still_decrypt(
    engine: Engine, local: LocalEncryptedBackend, key_provider: FileKeyProvider, tmp_path: Path
) -> None:
    old_key_id = key_provider.active_key().id
    before = VersionKey(uuid.uuid4(), 1)
    before_locator = local.put(before, SecretValue(b"written under the old key"))

    new_key_id = key_provider.rotate().id
    after = VersionKey(before.secret_id, 2)
    after_locator = local.put(after, SecretValue(b"written under the new key"))

    assert new_key_id != old_key_id
    assert sorted(key_id_of(blob) for blob in _blobs(engine)) == sorted([old_key_id, new_key_id])
    with engine.connect() as connection:
        stored_key_id = connection.scalar(
            select(encrypted_values.c.key_id).where(
                encrypted_values.c.id == uuid.UUID(after_locator)
            )
        )
    assert stored_key_id == new_key_id
    restarted = LocalEncryptedBackend(
        "local", engine, FileKeyProvider(tmp_path / "master.key", create=False)
    )
    assert restarted.get(before, before_locator).reveal() == b"written under the old key"
    assert restarted.get(after, after_locator).reveal() == b"written under the new key"


def test_an_unreachable_database_is_backend_unavailable(key_provider: FileKeyProvider) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = create_engine_from_url(f"postgresql://nobody@127.0.0.1:{closed_port}/none")
    backend = LocalEncryptedBackend("local", unreachable, key_provider)

    with pytest.raises(BackendUnavailable, match="'local'"):
        backend.put(VersionKey(uuid.uuid4(), 1), SecretValue(b"value"))
    health = backend.health()
    assert not health.ok
    assert health.latency_ms >= 0
