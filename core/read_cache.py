"""A per-process cache of what a value read looks up in the database: a secret with one version
(with the ciphertext of a value kept in the service's own database, never a plaintext value),
a caller's role bindings, and the candidates of a resolution (the same, for a whole context).

Correct by construction, whatever the number of processes: every transaction that changes
secrets, versions, scopes, bindings or service accounts increments the *change generation* on
the audit chain's head row as it commits (adapters/db/engine.py). The cache holds entries of one
generation only, the last one this process saw under the chain's lock. A read served from the
cache requires that generation when its audit event is committed (the audit log checks it under
the same lock, in the same transaction: `ports.audit_log.AuditLog.append`): if anything changed
in between, the read is refused as stale and done again from the database before anything is
answered. So no value is served after it was rotated, disabled or deleted, or after the caller's
binding was removed, once that change committed. An API token's lookup found here is confirmed
the same way by whatever else the caller does, in the transaction that does it
(`core.access.confirm_caller`): a token revoked, or an account deleted, in any process is
refused by every other's next request.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

# A value read's entry is packed (core/read_entries.py): ~0.75 KiB with the cache's bookkeeping,
# ~0.5 KiB when the same secret is also kept under its path; as objects it took ~3.6 KiB. 24,000
# entries (~17 MiB at most, about what 4,000 objects took) hold 10,000 secrets read by id and by
# path with room for the rest; with ~108 MiB of imported code a worker stays within 150 MiB
# (issue 20). A data set larger than the bound is read from the database.
DEFAULT_MAX_ENTRIES = 24_000
DEFAULT_TTL_SECONDS = 60.0


class ReadCache:
    """Entries of the current generation, least recently used evicted first, each for at most
    `ttl_seconds`. `max_entries` bounds the sum of the entries' sizes (a resolution's entry
    counts its candidates, not one). Thread-safe; one per process."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, ttl_seconds: float = DEFAULT_TTL_SECONDS
    ) -> None:
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._generation: int | None = None
        # key: (expiry, value, size)
        self._entries: OrderedDict[Hashable, tuple[float, Any, int]] = OrderedDict()
        self._size = 0
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
            expires, value, size = found
            if time.monotonic() > expires:
                del self._entries[key]
                self._size -= size
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value, self._generation

    def put(
        self,
        key: Hashable,
        value: Any,
        generation: int | None,
        ttl_seconds: float | None = None,
        size: int = 1,
    ) -> None:
        """Keep `value`, looked up after `generation` was seen, if that is still the current
        generation (an older label only makes a later read retry; a newer one cannot occur),
        for `ttl_seconds` at most (the cache's own by default). `size`: how many of
        `max_entries` it takes (a value larger than the whole cache is not kept)."""
        size = max(1, size)
        if generation is None or not self.enabled or size > self._max_entries:
            return
        with self._lock:
            if generation != self._generation:
                return
            ttl = self._ttl if ttl_seconds is None else min(ttl_seconds, self._ttl)
            replaced = self._entries.pop(key, None)
            if replaced is not None:
                self._size -= replaced[2]
            self._entries[key] = (time.monotonic() + ttl, value, size)
            self._size += size
            while self._size > self._max_entries:
                _, (_, _, evicted) = self._entries.popitem(last=False)
                self._size -= evicted

    def observe(self, generation: int) -> None:
        """The generation read under the chain's lock: a new one empties the cache."""
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._size = 0
                self._generation = generation

    def forget(self) -> None:
        """A change committed in this process: drop everything and cache nothing more until
        the next generation is seen under the chain's lock."""
        with self._lock:
            self._entries.clear()
            self._size = 0
            self._generation = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """The sum of the entries' sizes (at most `max_entries`)."""
        return self._size

    def __repr__(self) -> str:
        return f"ReadCache(entries={len(self._entries)}, generation={self._generation})"
