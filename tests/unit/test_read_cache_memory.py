"""The read cache's default bound keeps a worker's memory within issue 20's budget (≤ 150 MiB
per worker, of which ~108 MiB is the imported code): a full cache of secrets read by id, with
their current version and its ciphertext, as the value reads keep them (packed, see
core/read_entries.py, each also under its path)."""

from __future__ import annotations

import gc
import os
import tracemalloc
import uuid
from datetime import UTC, datetime

from core.domain.secrets import Secret, SecretVersion
from core.domain.values import ScopeRef, ScopeType
from core.read_cache import DEFAULT_MAX_ENTRIES, ReadCache
from core.read_entries import id_key, pack, paired_key
from entrypoints.config import READ_CACHE_DEFAULTS

# What one entry may take, the cache's own bookkeeping included (the key, the expiry, its
# place in the LRU order). As objects (a Secret and a SecretVersion) they took ~1.7 KiB each
# here, ~3.6 KiB built from database rows in a worker (/work/notes/memory.md): the bound was
# 4,000 (~14 MiB). Packed they take ~0.75 KiB (~0.5 KiB with the key by path beside the one by
# id), the same built from rows: 24,000 of them ~17 MiB at most.
BUDGET_PER_ENTRY = 1024


def entry(n: int) -> tuple[Secret, SecretVersion]:
    secret_id = uuid.uuid4()
    now = datetime(2026, 12, 5, 4, 0, n % 60, n, tzinfo=UTC)
    secret = Secret(
        id=secret_id,
        scope=ScopeRef(ScopeType.PROJECT, "p-bulk"),
        name=f"BULK_{n:06d}",
        backend="database",
        created_at=now,
        created_by="user:bench-admin",
        scope_path="global/o-0/t-0-0/p-bulk",
        tags={"team": "platform"},
        current_version=3,
        updated_at=now,
        updated_by="user:bench-admin",
        revision=3,
        latest_version=3,
        previous_version=2,
    )
    version = SecretVersion(
        secret_id=secret_id,
        version=3,
        backend="database",
        locator=str(uuid.uuid4()),
        checksum=os.urandom(32).hex(),
        created_at=now,
        created_by="user:bench-admin",
        stored=os.urandom(140),  # the envelope: header, wrapped key, nonce, ciphertext, tag
    )
    return secret, version


def test_the_default_bound_is_the_configured_one() -> None:
    assert READ_CACHE_DEFAULTS["max_entries"] == DEFAULT_MAX_ENTRIES


def test_a_full_cache_at_the_default_bound_stays_within_its_memory_budget() -> None:
    cache = ReadCache()
    cache.observe(1)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(2 * DEFAULT_MAX_ENTRIES):  # twice as many secrets as it may keep
            secret, version = entry(n)
            cache.put(id_key(secret.id, None), pack((secret, version)), generation=1)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == cache.size == DEFAULT_MAX_ENTRIES
    assert held <= BUDGET_PER_ENTRY * DEFAULT_MAX_ENTRIES, f"{held / len(cache):.0f} B an entry"


def test_a_secret_read_by_id_and_by_path_shares_one_packed_entry() -> None:
    """Its two keys hold one `bytes` object: the second costs a key, not a copy."""
    cache = ReadCache(max_entries=10)
    cache.observe(1)
    secret, version = entry(1)
    packed = pack((secret, version))
    cache.put(id_key(secret.id, None), packed, generation=1)
    cache.put(paired_key((secret, version), None, by_id=True), packed, generation=1)
    [first, second] = [value for _, value, _ in cache._entries.values()]
    assert first is second and len(cache) == 2


def test_the_default_bound_holds_the_benchmarks_10000_secrets_by_id_and_by_path() -> None:
    assert DEFAULT_MAX_ENTRIES >= 2 * 10_000
