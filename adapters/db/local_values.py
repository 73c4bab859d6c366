"""The local backend's ciphertext rows (`secret_encrypted_values`) as the secret repository
meets them: the local backend (`plugins/local_backend.py`) keeps a value's ciphertext in the
service's own database, one row per version, the row id as the version's locator.

A value read needs the secret, the version and the ciphertext: the repository's read and
resolution statements join the row here, so such a read is one statement, and a version whose
value the local backend sealed (`SecretVersion.stored`) is stored in the transaction that adds
the version. Everything the repository knows of that table is in this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, FromClause, Join, Row, Select, insert

from adapters.crypto import key_id_of
from adapters.db.tables import encrypted_values
from core.domain.secrets import SecretVersion

INSERT_SEALED = insert(encrypted_values)

# The columns a read adds: the row's id (the locator it answers to) and its ciphertext.
STORED_COLUMNS: tuple[ColumnElement[Any], ...] = (
    encrypted_values.c.id.label("stored_id"),
    encrypted_values.c.blob.label("stored_blob"),
)


Joinable = TypeVar("Joinable", Join, Select[Any])


def with_stored(joined: Joinable, versions: FromClause) -> Joinable:
    """`joined` and, where the local backend holds the value of `versions`' row, its
    ciphertext row (an outer join: other backends' versions have none)."""
    return joined.outerjoin(
        encrypted_values,
        (encrypted_values.c.secret_id == versions.c.secret_id)
        & (encrypted_values.c.version == versions.c.version),
    )


def holds_value_of(row: Row[Any], version: SecretVersion) -> bool:
    """Whether `row`'s ciphertext is `version`'s value. More than one ciphertext row per
    version exists only after an interrupted write: the one the version's locator names is
    the value, the others are strays."""
    return row.stored_id is not None and str(row.stored_id) == version.locator


def row_of_value(rows: Sequence[Row[Any]], locator_column: str) -> Row[Any]:
    """Of a read's rows (one per ciphertext row of the version), the one holding the value
    that the version's locator (in `locator_column`) names; the first when none does."""
    return next((r for r in rows if str(r.stored_id) == r._mapping[locator_column]), rows[0])


def stored_value(row: Row[Any], version: SecretVersion) -> SecretVersion:
    """`version` with its ciphertext from `row`, when that row holds its value."""
    if holds_value_of(row, version):
        return version.with_stored(bytes(row.stored_blob))
    return version


def store_sealed(connection: Connection, version: SecretVersion) -> None:
    """Store the ciphertext of a version whose value the local backend sealed, in the
    transaction that adds the version (nothing for a version of another backend)."""
    if version.stored is None:
        return
    row = {
        "id": UUID(version.locator),
        "secret_id": version.secret_id,
        "version": version.version,
        "key_id": key_id_of(version.stored),
        "blob": version.stored,
        "created_at": version.created_at,
    }
    connection.execute(INSERT_SEALED, row)  # a statement built once: no per-call compiling
