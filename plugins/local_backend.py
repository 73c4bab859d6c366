"""The built-in `local` backend: values envelope-encrypted in the service's own database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from adapters.crypto import EnvelopeCipher, key_id_of
from adapters.db.tables import encrypted_values
from core.domain.errors import BackendUnavailable, ConfigurationError, NotFound, ValueTooLarge
from core.domain.values import SecretValue, VersionKey
from plugins.hookspecs import hookimpl
from ports.security import KeyProvider
from ports.storage import (
    BackendCapabilities,
    BackendContext,
    BackendHealth,
    BackendPlugin,
    StorageBackend,
)

MAX_VALUE_BYTES = 1024 * 1024


class LocalEncryptedBackend(StorageBackend):
    """Ciphertexts in `secret_encrypted_values`, one row per version, the row id as locator.

    Each value is bound to its secret id and version by the associated data, so a ciphertext
    read under any other version's identity fails to decrypt.
    """

    capabilities = BackendCapabilities(max_value_bytes=MAX_VALUE_BYTES, stored_with_metadata=True)

    def __init__(self, name: str, engine: Engine, key_provider: KeyProvider) -> None:
        self.name = name
        self._engine = engine
        self._cipher = EnvelopeCipher(key_provider)

    def put(self, key: VersionKey, value: SecretValue) -> str:
        return self.put_many([(key, value)])[0]

    def put_many(self, items: Sequence[tuple[VersionKey, SecretValue]]) -> list[str]:
        """Every value encrypted first, then all rows inserted in one statement and one
        transaction: all or none."""
        now = datetime.now(UTC)
        rows = [self._row(key, value, now) for key, value in items]
        if rows:
            with self._database() as connection:
                connection.execute(insert(encrypted_values), rows)
        return [str(row["id"]) for row in rows]

    def _row(self, key: VersionKey, value: SecretValue, now: datetime) -> dict[str, Any]:
        if len(value) > MAX_VALUE_BYTES:
            raise ValueTooLarge(
                f"the {self.name} backend stores values up to {MAX_VALUE_BYTES} bytes",
                details={"limit": MAX_VALUE_BYTES},
            )
        blob = self._cipher.encrypt(value.reveal(), _associated_data(key))
        return {
            "id": uuid.uuid4(),
            "secret_id": key.secret_id,
            "version": key.version,
            "key_id": key_id_of(blob),
            "blob": blob,
            "created_at": now,
        }

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        with self._database() as connection:
            blob = connection.scalar(
                select(encrypted_values.c.blob).where(encrypted_values.c.id == _row_id(locator))
            )
        if blob is None:
            raise NotFound(f"no value is stored at locator {locator!r} in backend '{self.name}'")
        return SecretValue(self._cipher.decrypt(blob, _associated_data(key)))

    def seal(self, key: VersionKey, value: SecretValue) -> tuple[str, bytes]:
        # The secret repository inserts the row in the transaction that adds the version.
        row = self._row(key, value, datetime.now(UTC))
        return str(row["id"]), row["blob"]

    def open_stored(self, key: VersionKey, locator: str, stored: bytes) -> SecretValue:
        # The blob came with the version's row (the secret repository joins this table); the
        # associated data still binds it to this secret id and version.
        return SecretValue(self._cipher.decrypt(stored, _associated_data(key)))

    def destroy(self, key: VersionKey, locator: str) -> None:
        # Matching the version too means a wrong locator can never destroy another value.
        with self._database() as connection:
            connection.execute(
                delete(encrypted_values).where(
                    encrypted_values.c.id == _row_id(locator),
                    encrypted_values.c.secret_id == key.secret_id,
                    encrypted_values.c.version == key.version,
                )
            )

    def purge(self, secret_id: uuid.UUID) -> None:
        with self._database() as connection:
            connection.execute(
                delete(encrypted_values).where(encrypted_values.c.secret_id == secret_id)
            )

    def health(self) -> BackendHealth:
        started = time.perf_counter()
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            detail = f"database error: {type(error).__name__}"
            return BackendHealth(False, _elapsed_ms(started), detail)
        return BackendHealth(True, _elapsed_ms(started))

    def __repr__(self) -> str:
        return f"LocalEncryptedBackend(name={self.name!r})"

    @contextmanager
    def _database(self) -> Iterator[Any]:
        """A short transaction of its own; a lost database becomes `BackendUnavailable`."""
        try:
            with self._engine.begin() as connection:
                yield connection
        except (OperationalError, PoolTimeoutError) as error:
            raise BackendUnavailable(self.name, "the database is unreachable") from error
        except DBAPIError as error:
            if error.connection_invalidated:
                raise BackendUnavailable(self.name, "the database connection was lost") from error
            raise


def local_backend(
    name: str, settings: Mapping[str, Any], context: BackendContext
) -> StorageBackend:
    if settings:
        raise ConfigurationError(
            f"backend '{name}': unknown settings {', '.join(sorted(settings))} "
            "(the local backend takes none)",
            details={"key": f"backends.{name}"},
        )
    return LocalEncryptedBackend(name, context.database, context.key_provider)


@hookimpl
def secret_management_register_backends() -> list[BackendPlugin]:
    return [
        BackendPlugin(
            name="local",
            factory=local_backend,
            description="values envelope-encrypted (AES-256-GCM) in the service's own database",
        )
    ]


def _associated_data(key: VersionKey) -> bytes:
    return f"secret-management:v1:{key.secret_id}:{key.version}".encode()


def _row_id(locator: str) -> uuid.UUID:
    try:
        return uuid.UUID(locator)
    except ValueError:
        raise NotFound(f"'{locator}' is not a locator of the local backend") from None


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
