"""glibc's allocator in a server worker: at most `MALLOC_ARENAS` arenas, and the free memory
at the top of its heaps given back every `TRIM_SECONDS` (malloc_trim).

glibc gives each thread that allocates concurrently an arena of its own, up to 8 per CPU; a
granian worker runs its requests on `threads` blocking threads, so a burst (a bulk import, a
run of reads) leaves memory freed but kept in several arenas. Measured with
benchmarks/memory_probe.py at 10,000 secrets (/work/notes/memory.md): the worker that served
the bulk imports held 233-237 MiB with glibc's default, 197 MiB with 2 arenas; a reading worker
164 and 152 MiB. Requests wait on the database far more than they contend for the allocator
(the rates of those runs moved within their noise; the full benchmark is the judge). The
operator's MALLOC_ARENA_MAX, when set, is the cap instead. A malloc_trim every 2 s on top took
the import worker from 198 to 173 MiB (what remains is Python's own fragmented arenas).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time

MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h
TRIM_SECONDS = 10.0


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 (not glibc: musl has no mallopt nor malloc_trim)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(environ: dict[str, str] | None = None) -> int | None:
    """Cap glibc's arenas in this process (a forked worker does not read MALLOC_ARENA_MAX
    again): the operator's MALLOC_ARENA_MAX if set, else `MALLOC_ARENAS`. The cap set, or None
    where the C library is not glibc."""
    environ = dict(os.environ) if environ is None else environ
    wanted = environ.get("MALLOC_ARENA_MAX", "")
    arenas = int(wanted) if wanted.isdigit() and int(wanted) > 0 else MALLOC_ARENAS
    libc = _glibc()
    if libc is None:
        return None
    return arenas if libc.mallopt(M_ARENA_MAX, arenas) == 1 else None


def start_trimming(seconds: float = TRIM_SECONDS) -> threading.Thread | None:
    """A daemon thread of this process that calls malloc_trim(0) every `seconds` (a few
    milliseconds each); None where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        return None

    def trim() -> None:
        while True:
            time.sleep(seconds)
            libc.malloc_trim(0)

    thread = threading.Thread(target=trim, name="malloc-trim", daemon=True)
    thread.start()
    return thread
