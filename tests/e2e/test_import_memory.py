"""An import's working memory does not grow with its file (issue 20: <= 150 MiB per worker).

A worker keeps the peak of what it ever allocated resident (freed memory stays with the
process), and a bulk import was a worker's largest peak: every entry's value, plan, rows and
audit events at once, 50-64 MB for 9,800 lines. The import now plans keeping only each line's
diff item and puts values and writes rows `IMPORT_CHUNK` entries at a time. Measured with
tracemalloc around the import use case on the real container (SQLite): its peak above what it
leaves allocated, for 2 and for 8 chunks of new secrets, then of updates of them all: what
each line adds beyond a chunk's share is a fraction of what it was."""

from __future__ import annotations

import gc
import io
import tracemalloc

import pytest
from flask import Flask

from adapters.identity import ROOT
from core import import_writes
from core.domain.values import ScopeRef, ScopeType
from core.transfer_requests import ConflictStrategy, ImportRequest
from tests.e2e.conftest import ApiClient

CHUNK = 100  # entries per chunk in this test: the same code, a quicker run


def dotenv(prefix: str, lines: int, round_: int) -> io.BytesIO:
    return io.BytesIO(
        "".join(
            f"{prefix}_{n:06d}=bench-value-{prefix}-{n:06d}-v{round_}-{n:016x}{'x' * 40}\n"
            for n in range(lines)
        ).encode()
    )


def working_memory(app: Flask, prefix: str, lines: int) -> tuple[int, int]:
    """The most an import of `lines` new secrets, then one updating them all, held at their
    peak beyond what stayed allocated after each."""
    service = app.extensions["container"].import_service()
    scope = ScopeRef(ScopeType.PROJECT, prefix.lower())
    request = ImportRequest(scope=scope, format="dotenv", strategy=ConflictStrategy.OVERWRITE)
    held = []
    for round_ in (0, 1):
        content = dotenv(prefix, lines, round_)
        gc.collect()
        tracemalloc.start()
        try:
            report = service.import_secrets(ROOT, request, content)
            assert report.counts["create" if round_ == 0 else "update"] == lines
            del report
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        held.append(peak - current)
    return held[0], held[1]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_imports_working_memory_grows_little_with_its_file(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_writes, "IMPORT_CHUNK", CHUNK)
    api = ApiClient(app.test_client())
    api.register_scope("organization", "acme", ("global", "global"))
    for project in ("warm", "small", "large"):
        api.register_scope("project", project, ("organization", "acme"))
    working_memory(app, "WARM", CHUNK)  # the first import's caches and compiled statements

    small = working_memory(app, "SMALL", 2 * CHUNK)
    large = working_memory(app, "LARGE", 8 * CHUNK)

    # Bytes per line beyond the chunk's own: what the whole file keeps (its report's items,
    # where each value went, the checksums for the audit events; an update, the secret it
    # updates). Before the chunks: 5.1 KB per line created, 6.7 KB per line updated
    # (0.7 and 2.4 KB after).
    created, updated = ((big - few) / (6 * CHUNK) for few, big in zip(small, large, strict=True))
    shown = f"{small} B for {2 * CHUNK} lines, {large} B for {8 * CHUNK}"
    assert created < 1200, shown
    assert updated < 3000, shown
