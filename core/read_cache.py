"""A per-process cache of what a value read looks up in the database: a secret with one version
(with the ciphertext of a value kept in the service's own database, never a plaintext value)
and a caller's role bindings.

Correct by construction, whatever the number of processes: every transaction that changes
secrets, versions, scopes, bindings or service accounts increments the *change generation* on the
audit chain's head row as it commits (adapters/db/engine.py). The cache holds entries of one
generation only, the last one this process saw under the chain's lock. A read served from the
cache requires that generation when its audit event is committed (`GroupCommit` checks it under
the same lock, in the same transaction): if anything changed in between, the read is refused as
stale and done again from the database before anything is answered. So no value is served after
it was rotated, disabled or deleted, or after the caller's binding was removed, once that change
committed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_TTL_SECONDS = 60.0


class ReadCache:
    """Entries of the current generation, least recently used evicted first, each for at most
    `ttl_seconds`. Thread-safe; one per process."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, ttl_seconds: float = DEFAULT_TTL_SECONDS
    ) -> None:
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()  # expiry, value
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self._max_entries > 0

    def generation(self) -> int | None:
        """The generation entries filled now will carry (None: none seen yet, nothing cached)."""
        return self._generation

    def get(self, key: Hashable) -> tuple[Any, int] | None:
        """A live entry and its generation, or None."""
        with self._lock:
            found = self._entries.get(key)
            if found is None or self._generation is None:
                self.misses += 1
                return None
            expires, value = found
            if time.monotonic() > expires:
                del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value, self._generation

    def put(
        self, key: Hashable, value: Any, generation: int | None, ttl_seconds: float | None = None
    ) -> None:
        """Keep `value`, looked up after `generation` was seen, if that is still the current
        generation (an older label only makes a later read retry; a newer one cannot occur),
        for `ttl_seconds` at most (the cache's own by default)."""
        if generation is None or not self.enabled:
            return
        with self._lock:
            if generation != self._generation:
                return
            ttl = self._ttl if ttl_seconds is None else min(ttl_seconds, self._ttl)
            self._entries[key] = (time.monotonic() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def observe(self, generation: int) -> None:
        """The generation read under the chain's lock: a new one empties the cache."""
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._generation = generation

    def forget(self) -> None:
        """A change committed in this process: drop everything and cache nothing more until
        the next generation is seen under the chain's lock."""
        with self._lock:
            self._entries.clear()
            self._generation = None

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ReadCache(entries={len(self._entries)}, generation={self._generation})"
