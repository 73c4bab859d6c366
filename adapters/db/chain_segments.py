"""Verifying a long audit chain in several processes (`ports.repositories.audit.ChainSegments`).

Verification is bound by one core: each event's canonical content is written and hashed in
Python. Segments that start right after a signed checkpoint can be checked side by side, each
in a process of its own (`python -m adapters.db.chain_segments`) with its own connection to
the database. The processes are started for one verification and end with it; what they are
to check, the checkpoint key included, reaches them through a pipe to their standard input,
never through their command line or environment, and their finding comes back on their
standard output.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import make_url

from adapters.db.audit_repository import SqlAuditRepository
from adapters.db.engine import create_engine_from_url
from core.audit_chain import verify_links
from core.domain.audit import BrokenLink, ChainSegment
from ports.repositories.audit import ChainSegments

log = logging.getLogger(__name__)

# Where `adapters` is imported from, for the processes (whatever their working directory).
PROJECT_ROOT = Path(__file__).resolve().parents[2]

Finding = tuple[int, BrokenLink | None]


class ProcessChainSegments(ChainSegments):
    def __init__(self, database_url: str, processes: int) -> None:
        # A database in memory is not shared with other processes: one process then.
        url = make_url(database_url)
        in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
        self.processes = 1 if in_memory else processes
        self._url = database_url

    def verify(
        self, segments: Sequence[ChainSegment], checkpoint_key: bytes, checkpoint_every: int
    ) -> list[Finding] | None:
        if self.processes < 2 or len(segments) < 2:
            return None
        environment = os.environ | {
            "PYTHONPATH": os.pathsep.join(
                filter(None, (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")))
            )
        }
        started: list[subprocess.Popen[bytes]] = []
        try:
            for segment in segments:  # one process each (the caller cut as many as it has)
                process = _start(environment)
                started.append(process)
                assert process.stdin is not None
                process.stdin.write(
                    pickle.dumps((self._url, segment, checkpoint_key, checkpoint_every))
                )
                process.stdin.close()
            findings = []
            for process in started:  # they run side by side; each answer is a few bytes
                assert process.stdout is not None
                output = process.stdout.read()
                if process.wait() != 0:
                    raise ChildProcessError(f"exit status {process.returncode}")
                findings.append(_finding(pickle.loads(output)))  # noqa: S301 - our own child
            return findings
        except Exception as error:  # the caller verifies in one process, and reports what fails
            log.warning(
                "audit verification in %d processes failed (%s): verifying in one",
                len(started),
                type(error).__name__,
            )
            return None
        finally:
            for process in started:
                if process.poll() is None:
                    process.kill()
                    process.wait()

    def __repr__(self) -> str:
        return f"ProcessChainSegments(processes={self.processes})"


def _start(environment: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, this module, no shell
        [sys.executable, "-m", __name__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment,
    )


def _finding(value: object) -> Finding:
    checked, broken = value  # type: ignore[misc]
    if not isinstance(checked, int) or not (broken is None or isinstance(broken, BrokenLink)):
        raise TypeError("not a segment's finding")
    return checked, broken


def verify_segment(
    database_url: str, segment: ChainSegment, checkpoint_key: bytes, checkpoint_every: int
) -> Finding:
    """One segment: its own engine, one read-only statement."""
    engine = create_engine_from_url(database_url, track_changes=False)
    try:
        with engine.connect() as connection:
            return verify_links(
                SqlAuditRepository(connection).chain_links(segment.first, segment.last),
                segment.checkpoints,
                checkpoint_key,
                start_seq=segment.first,
                start_prev_hash=segment.anchor,
                checkpoint_every=checkpoint_every,
            )
    finally:
        engine.dispose()


def main() -> None:
    """A process of `ProcessChainSegments`: its work from standard input, its finding to
    standard output."""
    database_url, segment, checkpoint_key, checkpoint_every = pickle.load(sys.stdin.buffer)  # noqa: S301
    finding = verify_segment(database_url, segment, checkpoint_key, checkpoint_every)
    sys.stdout.buffer.write(pickle.dumps(finding))


if __name__ == "__main__":
    main()
