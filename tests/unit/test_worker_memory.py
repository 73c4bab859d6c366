"""A server worker caps glibc's arenas (entrypoints/memory.py): the operator's
MALLOC_ARENA_MAX, else 2."""

from __future__ import annotations

import platform

import pytest

from entrypoints.memory import MALLOC_ARENAS, limit_malloc_arenas, start_trimming

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")


@glibc
def test_a_worker_caps_the_arenas_at_two_by_default() -> None:
    assert MALLOC_ARENAS == 2
    assert limit_malloc_arenas({}) == 2
    assert limit_malloc_arenas({"MALLOC_ARENA_MAX": "not a number"}) == 2


@glibc
def test_the_operators_cap_wins() -> None:
    assert limit_malloc_arenas({"MALLOC_ARENA_MAX": "4"}) == 4


@glibc
def test_a_worker_gives_free_memory_back_periodically() -> None:
    thread = start_trimming(0.01)
    assert thread is not None and thread.daemon and thread.name == "malloc-trim"
    thread.join(0.1)
    assert thread.is_alive()  # trims for as long as the worker runs
