"""The compact form in which the read cache keeps what a value read looked up (issue 20).

A secret and its version as objects take ~3.6 KiB in a worker (two instance dicts, a UUID, a
ScopeRef, datetimes, strings of their own); the same fields packed into one `bytes` object (UUIDs
as 16 bytes, times as microseconds, enums as their values, through `marshal`) take ~0.5 KiB, so a
cache of the same memory holds ~5 times as many. Every hit unpacks new objects (~10 µs): nothing a
request holds is shared with another's. The packed form holds what the objects held: the value's
ciphertext where the backend keeps it in the service's own database (`SecretVersion.stored`),
never a plaintext value; and a `bytes` object's repr is never logged.

The keys are compact as well: `id_key` and `path_key` name one secret's lookup by id and by
path, and a lookup by one of them fills the other as well (`paired_key`): both find the same row
(a name is unique in its scope and environment, deleted or not).
"""

from __future__ import annotations

import marshal
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from core.domain.secrets import Secret, SecretVersion, Stage, VersionState
from core.domain.values import ScopeRef, ScopeType

Found = tuple[Secret, SecretVersion | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MARSHAL_VERSION = 4


class NotPackable(ValueError):
    """A value the compact form cannot keep exactly (e.g. a time not in UTC): not cached."""


def _pack_time(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is not UTC:  # another zone would come back as UTC: not the same answer
        raise NotPackable("a time not in UTC")
    return (moment - _EPOCH) // _MICROSECOND


def _unpack_time(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def _pack_uuid(value: UUID) -> bytes:
    return value.bytes


def _pack_scope(scope: ScopeRef) -> tuple[str, str]:
    return scope.type.value, scope.id


def _unpack_scope(packed: tuple[str, str]) -> ScopeRef:
    return ScopeRef(ScopeType(packed[0]), packed[1])


def _pack_enum(value: VersionState | Stage | None) -> str | None:
    return None if value is None else value.value


def _unpack_stage(value: str | None) -> Stage | None:
    return None if value is None else Stage(value)


def _plain(value: Any) -> Any:
    return value


_Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]
# Each field's form by its annotation; a field of another type fails at import (add it here).
_CODECS: dict[str, _Codec] = {
    "UUID": (_pack_uuid, lambda packed: UUID(bytes=packed)),
    "ScopeRef": (_pack_scope, _unpack_scope),
    "datetime": (_pack_time, _unpack_time),
    "datetime | None": (_pack_time, _unpack_time),
    "VersionState": (_pack_enum, VersionState),
    "Stage | None": (_pack_enum, _unpack_stage),
    "dict[str, str]": (_plain, _plain),  # marshal.loads makes a new dict: none is shared
    **{plain: (_plain, _plain) for plain in ("str", "str | None", "int", "int | None")},
    "bytes | None": (_plain, _plain),
}


def _codecs_of(cls: type) -> tuple[tuple[str, ...], tuple[_Codec, ...]]:
    names, codecs = [], []
    for field in fields(cls):
        annotation = str(field.type)
        if annotation not in _CODECS:
            raise TypeError(f"core.read_entries cannot pack {cls.__name__}.{field.name}")
        names.append(field.name)
        codecs.append(_CODECS[annotation])
    return tuple(names), tuple(codecs)


_SECRET_NAMES, _SECRET_CODECS = _codecs_of(Secret)
_VERSION_NAMES, _VERSION_CODECS = _codecs_of(SecretVersion)


def _pack_object(
    obj: object, names: tuple[str, ...], codecs: tuple[_Codec, ...]
) -> tuple[Any, ...]:
    state = obj.__dict__
    return tuple(codec[0](state[name]) for name, codec in zip(names, codecs, strict=True))


def _unpack_values(
    packed: tuple[Any, ...], names: tuple[str, ...], codecs: tuple[_Codec, ...]
) -> dict[str, Any]:
    return {name: codec[1](value) for name, codec, value in zip(names, codecs, packed, strict=True)}


def pack(found: Found) -> bytes:
    """`found` in one `bytes` object (`NotPackable` if it cannot be kept exactly)."""
    secret, record = found
    packed_secret = _pack_object(secret, _SECRET_NAMES, _SECRET_CODECS)
    packed_version = (
        None if record is None else _pack_object(record, _VERSION_NAMES, _VERSION_CODECS)
    )
    try:
        return marshal.dumps((packed_secret, packed_version), _MARSHAL_VERSION)
    except ValueError:  # a value of a type marshal does not know (never one of the above)
        raise NotPackable("a field marshal cannot keep") from None


def unpack(blob: bytes) -> Found:
    """New objects equal to those `pack` packed."""
    # Only ever bytes `pack` made in this process, held in its own memory: nothing from outside.
    packed_secret, packed_version = marshal.loads(blob)  # noqa: S302
    secret = Secret.of_stored(_unpack_values(packed_secret, _SECRET_NAMES, _SECRET_CODECS))
    if packed_version is None:
        return secret, None
    values = _unpack_values(packed_version, _VERSION_NAMES, _VERSION_CODECS)
    return secret, SecretVersion.of_stored(values)


def id_key(secret_id: UUID, version: int | None) -> bytes:
    """The key of a lookup by id (16 bytes of id, then the version asked for, if any)."""
    return b"i" + secret_id.bytes + (b"" if version is None else str(version).encode())


def path_key(scope: ScopeRef, environment: str | None, name: str, version: int | None) -> str:
    """The key of a lookup by path (the repr of its parts: no two paths share one). No
    environment and the empty one are the same lookup (the column holds '' for both)."""
    return "p" + repr((scope.type.value, scope.id, environment or "", name, version))


def paired_key(found: Found, version: int | None, by_id: bool) -> bytes | str | None:
    """The other key under which `found` is found: by path for one looked up by id
    (`by_id`), by id for one looked up by path; None for a deleted secret (a read refuses it
    anyway)."""
    secret = found[0]
    if secret.is_deleted:
        return None
    if by_id:
        return path_key(secret.scope, secret.environment, secret.name, version)
    return id_key(secret.id, version)
