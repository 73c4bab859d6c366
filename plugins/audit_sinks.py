"""Built-in audit sinks: JSON lines on stdout, or appended to a file."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from core.domain.audit import AuditEvent
from plugins.backend_settings import PluginSettings
from plugins.hookspecs import hookimpl
from ports.audit import AuditSink, AuditSinkPlugin


def json_line(event: AuditEvent) -> str:
    record = {**event.content(), "seq": event.seq, "prev_hash": event.prev_hash, "hash": event.hash}
    return json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"


class StreamSink(AuditSink):
    """One JSON object per line on a text stream; a lock keeps threads' lines whole."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name = name
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, events: Sequence[AuditEvent]) -> None:
        lines = "".join(json_line(event) for event in events)
        with self._lock:
            self._stream.write(lines)
            self._stream.flush()


class FileSink(StreamSink):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        super().__init__("file", os.fdopen(descriptor, "a", encoding="utf-8"))

    def close(self) -> None:
        self._stream.close()


def stdout_sink(settings: Mapping[str, Any]) -> AuditSink:
    PluginSettings("audit.stdout", settings, known=())
    return StreamSink("stdout", sys.stdout)


def file_sink(settings: Mapping[str, Any]) -> AuditSink:
    options = PluginSettings("audit.file", settings, known=("path",))
    path = Path(options.required_text("path"))
    try:
        return FileSink(path)
    except OSError as error:
        raise options.error("path", f"cannot append to {path}: {error.strerror}") from None


@hookimpl
def secret_management_register_audit_sinks() -> list[AuditSinkPlugin]:
    return [
        AuditSinkPlugin("stdout", stdout_sink, "JSON lines on standard output"),
        AuditSinkPlugin("file", file_sink, "JSON lines appended to a file (mode 0600)"),
    ]
