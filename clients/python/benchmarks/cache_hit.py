"""µs per cache hit of `Client.get` (target: ≤ 10 µs). No server needed: the entry is put in
the cache as a read would, then read N times.

    python clients/python/benchmarks/cache_hit.py [N]
"""

from __future__ import annotations

import sys
import time

from secret_management_client import Client, SecretValue
from secret_management_client.client import _Entry

REFERENCE = "secret://project/shop/DB_PASSWORD?env=production"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    client = Client("http://127.0.0.1:9", "benchmark-token", cache_ttl=3600)
    forever = time.monotonic() + 3600
    client._cache[REFERENCE] = _Entry(SecretValue(b"x" * 32, version=1), forever, forever)
    get = client.get
    for _ in range(1000):  # warm up
        get(REFERENCE)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            get(REFERENCE)
        best = min(best, (time.perf_counter() - started) / count)
    print(f"cache hit: {best * 1e6:.2f} µs per get ({count} gets, best of 5)")
    assert client.stats.requests == 0


if __name__ == "__main__":
    main()
