"""The read cache's compact entries (core/read_entries.py, issue 20): a secret and its version
packed into one `bytes` object come back equal, as new objects, field for field; the keys name one
lookup each; a read by id fills the lookup by path (and the reverse); and nothing of a plaintext
value is ever packed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.secrets import Secret, SecretVersion, Stage, VersionState
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.policy import SecretPolicy, ValueChecksum
from core.read_cache import ReadCache
from core.read_entries import NotPackable, id_key, pack, paired_key, path_key, unpack
from core.reads import ReadService, ValueReader
from core.secrets import NewSecret, SecretService
from tests.fakes import (
    FakeDatabase,
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
    make_audit_trail,
)

NOW = datetime(2026, 12, 5, 7, 0, 1, 123456, tzinfo=UTC)
ALICE = Principal("user:alice", "user")
GLOBAL = ScopeRef.global_scope()
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
CHECKSUM_KEY = b"unit-test-checksum-key-of-32-byt"
PLAINTEXT = b"sk-live-plaintext-never-cached-4d2a"


def every_field_set() -> tuple[Secret, SecretVersion]:
    """A secret and version whose every field differs from its default."""
    secret_id = uuid.uuid4()
    secret = Secret(
        id=secret_id,
        scope=PROJECT,
        name="DB_PASSWORD",
        backend="database",
        created_at=NOW,
        created_by="user:alice",
        environment="production",
        scope_path="global/acme/t-1/p-42",
        type="password",
        description="the primary's password, ünïcode",
        tags={"team": "platform", "tier": "1"},
        consumer="database",
        current_version=3,
        expires_at=NOW + timedelta(days=30),
        not_before=NOW - timedelta(days=1),
        max_versions=10,
        updated_at=NOW + timedelta(seconds=5),
        updated_by="service:ci",
        deleted_at=None,
        purge_after=NOW + timedelta(days=60),
        revision=7,
        latest_version=4,
        previous_version=2,
        pending_version=4,
    )
    version = SecretVersion(
        secret_id=secret_id,
        version=3,
        backend="database",
        locator=str(uuid.uuid4()),
        checksum="ab" * 32,
        created_at=NOW - timedelta(microseconds=1),
        created_by="user:alice",
        state=VersionState.DISABLED,
        expires_at=NOW + timedelta(hours=1),
        not_before=NOW - timedelta(hours=1),
        disable_at=NOW + timedelta(minutes=5),
        stage=Stage.CURRENT,
        stored=b"\x01envelope-ciphertext\x00\xff",
    )
    return secret, version


def test_a_packed_secret_and_version_come_back_equal_field_for_field() -> None:
    secret, version = every_field_set()
    again_secret, again_version = unpack(pack((secret, version)))
    assert again_secret == secret and again_version == version
    for original, copy in ((secret, again_secret), (version, again_version)):
        for field in fields(original):  # `stage` and `stored` are left out of ==
            assert getattr(copy, field.name) == getattr(original, field.name), field.name
            assert type(getattr(copy, field.name)) is type(getattr(original, field.name))
    assert again_secret.created_at.tzinfo is UTC
    assert again_secret.created_at.isoformat() == secret.created_at.isoformat()


def test_each_unpacking_makes_new_objects_so_no_request_shares_one() -> None:
    blob = pack(every_field_set())
    first, second = unpack(blob), unpack(blob)
    assert first[0] is not second[0] and first[0].tags is not second[0].tags
    first[0].tags["changed"] = "by one request"
    assert "changed" not in unpack(blob)[0].tags


def test_a_secret_without_the_asked_for_version_and_defaults_pack_too() -> None:
    secret = Secret(
        id=uuid.uuid4(),
        scope=GLOBAL,
        name="X",
        backend="memory",
        created_at=NOW,
        created_by="user:alice",
    )
    assert unpack(pack((secret, None))) == (secret, None)


def test_a_time_not_in_utc_is_not_packed_since_it_would_come_back_otherwise() -> None:
    secret, version = every_field_set()
    elsewhere = Secret(
        **{**secret.__dict__, "created_at": NOW.astimezone(timezone(timedelta(hours=1)))}
    )
    with pytest.raises(NotPackable):
        pack((elsewhere, version))


def test_an_entry_is_a_few_hundred_bytes() -> None:
    """The objects took ~3.6 KiB an entry in a worker; the packed form a sixth of that."""
    blob = pack(every_field_set())
    assert len(blob) < 640, len(blob)


def test_keys_name_one_lookup_each() -> None:
    one, other = uuid.uuid4(), uuid.uuid4()
    ids = {id_key(one, None), id_key(one, 1), id_key(one, 12), id_key(other, 1)}
    assert len(ids) == 4
    tricky = "A', 'B"  # what a repr-based key must not confuse with two parts
    paths = {
        path_key(PROJECT, None, "A", None),
        path_key(PROJECT, None, "A", 1),
        path_key(PROJECT, "prod", "A", None),
        path_key(PROJECT, None, tricky, None),
        path_key(ScopeRef(ScopeType.PROJECT, "A', 'B"), None, "A", None),
        path_key(ScopeRef(ScopeType.TEAM, "p-42"), None, "A", None),
    }
    assert len(paths) == 6
    assert path_key(PROJECT, None, "A", None) == path_key(PROJECT, "", "A", None)


def test_the_paired_key_is_the_other_way_to_the_same_row_and_none_once_deleted() -> None:
    secret, version = every_field_set()
    assert paired_key((secret, version), 3, by_id=True) == path_key(
        PROJECT, "production", "DB_PASSWORD", 3
    )
    assert paired_key((secret, version), None, by_id=False) == id_key(secret.id, None)
    deleted = Secret(**{**secret.__dict__, "deleted_at": NOW})
    assert paired_key((deleted, version), None, by_id=True) is None


# -- through ReadService, on the fakes --------------------------------------------------------


class CountingFactory(FakeUnitOfWorkFactory):
    """Counts the read-only units of work: a value read opens one only when it misses."""

    def __init__(self, database: FakeDatabase) -> None:
        super().__init__(database)
        self.lookups = 0

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        self.lookups += read_only
        return super().__call__(read_only=read_only)


def reading(cache: ReadCache) -> tuple[ReadService, CountingFactory, Callable[..., Any]]:
    database = FakeDatabase()
    database.grant(ALICE.id, Role.ADMIN)
    db = CountingFactory(database)
    clock = FixedClock(NOW)
    backend = InMemoryBackend("memory")
    registry = BackendRegistry({"memory": backend}, default="memory")
    checksum = ValueChecksum(CHECKSUM_KEY)
    audit = make_audit_trail(db, clock)
    secrets = SecretService(db, registry, clock, checksum, SecretPolicy(), audit)
    reads = ReadService(db, ValueReader(registry, clock, checksum), clock, audit, cache=cache)
    secret = secrets.create_secret(
        ALICE, NewSecret(scope=GLOBAL, name="API_KEY"), SecretValue(PLAINTEXT)
    )
    with db() as uow:
        cache.observe(uow.audit.generation())

    def by_path() -> Any:
        return reads.read_value_by_name(ALICE, GLOBAL, "API_KEY", None)

    def by_id() -> Any:
        return reads.read_value(ALICE, secret.id)

    return reads, db, lambda how: {"id": by_id, "path": by_path}[how]()


@pytest.mark.parametrize(("first", "then"), [("id", "path"), ("path", "id")])
def test_a_read_one_way_fills_the_lookup_the_other_way(first: str, then: str) -> None:
    cache = ReadCache(max_entries=100, ttl_seconds=60)
    _, db, read = reading(cache)
    assert read(first).value.reveal() == PLAINTEXT
    lookups = db.lookups
    answer = read(then)
    assert answer.value.reveal() == PLAINTEXT
    assert db.lookups == lookups  # served from the cache: no lookup in the database
    packed = [value for _, value, _ in cache._entries.values() if isinstance(value, bytes)]
    assert len(packed) == 2 and packed[0] is packed[1]  # one packed entry under both keys
    assert read(first).version.version == answer.version.version == 1


def test_no_cache_entry_holds_the_plaintext_and_the_cache_shows_none_of_them() -> None:
    cache = ReadCache(max_entries=100, ttl_seconds=60)
    _, _, read = reading(cache)
    read("id")
    read("path")
    entries = list(cache._entries.values())
    assert len(entries) >= 2
    for _, value, _ in entries:
        assert PLAINTEXT not in (value if isinstance(value, bytes) else repr(value).encode())
    assert PLAINTEXT.decode() not in repr(cache)
