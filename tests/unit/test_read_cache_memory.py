"""The read cache's default bound keeps a worker's memory within issue 20's budget (≤ 150 MiB
per worker, of which ~108 MiB is the imported code): a full cache of secrets read by id, with
their current version and its ciphertext, as the value reads keep them."""

from __future__ import annotations

import gc
import os
import tracemalloc
import uuid
from datetime import UTC, datetime

from core.domain.secrets import Secret, SecretVersion
from core.domain.values import ScopeRef, ScopeType
from core.read_cache import DEFAULT_MAX_ENTRIES, ReadCache
from entrypoints.config import READ_CACHE_DEFAULTS

# What a full cache of these entries may take at its default bound. They take ~1.7 KiB each;
# the ones a worker builds from database rows ~3.6 KiB (benchmarks/memory_probe.py,
# /work/notes/memory.md): 4,000 of them ~14 MiB in a worker; the former bound, 10,000, ~35 MiB.
BUDGET_MIB = 8


def entry(n: int) -> tuple[tuple[str, tuple[str, uuid.UUID, None]], tuple[Secret, SecretVersion]]:
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
    return ("secret", ("id", secret_id, None)), (secret, version)


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
            key, value = entry(n)
            cache.put(key, value, generation=1)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == cache.size == DEFAULT_MAX_ENTRIES
    assert held <= BUDGET_MIB * 1024 * 1024, f"{held / 1024 / 1024:.1f} MiB"
