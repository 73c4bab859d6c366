"""A small in-memory cache for adapters: at most `entries` (the least recently used go first),
each for at most `seconds`. Thread-safe; its repr shows how many it holds, never what."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Generic, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")


class ExpiringCache(Generic[Key, Value]):
    def __init__(self, entries: int, seconds: float) -> None:
        self._entries = entries
        self._seconds = seconds
        self._lock = threading.Lock()
        self._kept: OrderedDict[Key, tuple[Value, float]] = OrderedDict()

    def get(self, key: Key) -> Value | None:
        with self._lock:
            found = self._kept.get(key)
            if found is None:
                return None
            if found[1] <= time.monotonic():
                del self._kept[key]
                return None
            self._kept.move_to_end(key)
            return found[0]

    def put(self, key: Key, value: Value) -> None:
        with self._lock:
            self._kept[key] = (value, time.monotonic() + self._seconds)
            self._kept.move_to_end(key)
            while len(self._kept) > self._entries:
                self._kept.popitem(last=False)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._kept.pop(key, None)

    def __len__(self) -> int:
        return len(self._kept)

    def __repr__(self) -> str:
        return f"ExpiringCache({len(self._kept)} kept)"
