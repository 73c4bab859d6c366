"""`when_parent_gone` (entrypoints/server.py): how a process started by `secretctl serve` (the
embedded worker, an HTTP worker) learns that the server is gone. The whole of it, with real
processes, is in tests/e2e/test_serve_worker.py."""

from __future__ import annotations

import os
import threading

from entrypoints.server import PARENT_CHECK_SECONDS, when_parent_gone


def test_a_parent_that_is_not_the_one_named_is_gone() -> None:
    """Compared with the pid the server named, not with the parent found at start: a server
    that died before the watch began (its workers now init's) is seen gone all the same."""
    gone = threading.Event()
    when_parent_gone(os.getpid(), gone.set)  # never this process's parent
    assert gone.wait(PARENT_CHECK_SECONDS * 3)


def test_a_living_parent_is_not_gone_and_the_watch_ends_when_told() -> None:
    gone, until = threading.Event(), threading.Event()
    when_parent_gone(os.getppid(), gone.set, until)
    assert not gone.wait(PARENT_CHECK_SECONDS * 2.5)
    until.set()
    watchers = [t for t in threading.enumerate() if t.name == "parent-watch"]
    for watcher in watchers:
        watcher.join(PARENT_CHECK_SECONDS * 3)
    assert not any(t.is_alive() for t in watchers)
