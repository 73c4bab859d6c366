"""The read cache and group commit on the fakes: generations, staleness, batching."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from adapters.group_commit import GroupCommit
from core.audit_chain import AuditChain
from core.domain.audit import AuditEvent
from core.read_cache import ReadCache
from ports.audit_log import StaleRead
from tests.fakes import CHECKPOINT_KEY, FakeUnitOfWorkFactory


def event(n: int) -> AuditEvent:
    return AuditEvent(
        time=datetime(2026, 11, 29, tzinfo=UTC),
        actor="service:reader",
        actor_type="service",
        action="secret.read_value",
        resource=f"secret:{n}",
        outcome="success",
    )


def test_the_cache_keeps_entries_of_the_generation_it_saw_only() -> None:
    cache = ReadCache(max_entries=10, ttl_seconds=60)
    cache.put("k", "v", generation=None)  # nothing seen yet: nothing kept
    assert cache.get("k") is None
    cache.observe(3)
    cache.put("k", "old", generation=2)  # looked up before generation 3 was seen
    assert cache.get("k") is None
    cache.put("k", "v", generation=3)
    assert cache.get("k") == ("v", 3)
    cache.observe(4)
    assert cache.get("k") is None and len(cache) == 0


def test_the_cache_evicts_the_least_recently_used_and_expires_entries() -> None:
    cache = ReadCache(max_entries=2, ttl_seconds=60)
    cache.observe(1)
    cache.put("a", 1, 1)
    cache.put("b", 2, 1)
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", 3, 1)
    assert cache.get("b") is None and cache.get("a") is not None
    cache.put("short", 4, 1, ttl_seconds=0.01)
    time.sleep(0.02)
    assert cache.get("short") is None


def test_the_bound_is_on_the_sum_of_the_entries_sizes() -> None:
    cache = ReadCache(max_entries=10, ttl_seconds=60)
    cache.observe(1)
    cache.put("small", 1, 1)
    cache.put("resolution", ["c"] * 6, 1, size=6)
    assert cache.size == 7
    cache.put("resolution", ["c"] * 4, 1, size=4)  # replaced: its old size is given back
    assert cache.size == 5 and len(cache) == 2
    cache.put("larger", ["c"] * 8, 1, size=8)  # the least recently used go until it fits
    assert cache.get("small") is None and cache.get("resolution") is None
    assert cache.get("larger") is not None and cache.size == 8
    cache.put("huge", ["c"] * 11, 1, size=11)  # more than the whole cache: not kept
    assert cache.get("huge") is None and cache.size == 8
    cache.observe(2)
    assert cache.size == 0


def test_forget_drops_everything_until_a_generation_is_seen_again() -> None:
    cache = ReadCache()
    cache.observe(1)
    cache.put("a", 1, 1)
    cache.forget()
    assert cache.get("a") is None and cache.generation() is None
    cache.put("a", 1, 1)
    assert cache.get("a") is None


def test_group_commit_refuses_a_read_of_another_generation_and_records_nothing_of_it() -> None:
    db = FakeUnitOfWorkFactory()
    seen: list[int] = []
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY), seen.append)
    assert [e.seq for e in group.append([event(1)], requires_generation=0)] == [1]
    assert seen == [0]
    with db() as uow:  # a change: the secrets table is written
        uow.secrets.delete(uuid.uuid4())
        uow.commit()
    with pytest.raises(StaleRead):
        group.append([event(2)], requires_generation=0)
    assert seen == [0, 1]
    assert [e.seq for e in group.append([event(3)], requires_generation=1)] == [2]
    assert [e.resource for e in db.database.audit_events()] == ["secret:1", "secret:3"]
