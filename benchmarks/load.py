# ruff: noqa: S603 - runs this project's own tools with arguments it builds itself
"""Driving a server with wrk: the requests of a workload, one timed run, its summary.

wrk runs in its own process with the same threads, connections and duration for every target;
`wrk/requests.lua` cycles through the workload's requests (spread over the seeded secrets) and
prints its summary as JSON, latency percentiles included.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from benchmarks.servers import HarnessError

LUA_SCRIPT = Path(__file__).with_name("wrk") / "requests.lua"
LOOPBACK = "http://127.0.0.1:"
SUMMARY_PREFIX = "WRK_SUMMARY "
ERROR_KINDS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")


@dataclass(frozen=True)
class LoadSettings:
    threads: int
    connections: int
    duration: float  # seconds per measured run
    warmup: float  # seconds of unmeasured load before the first run of each target
    rounds: int  # measured runs per target, alternating between the targets
    timeout: float = 10.0  # a request slower than this counts as an error


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: str = ""


@dataclass
class Target:
    """One server's side of a workload: where, as whom, which requests, what success is."""

    name: str
    base_url: str
    headers: dict[str, str]
    calls: list[Request]
    status: int = 200
    check: Callable[[requests.Response], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(LOOPBACK):  # load goes to this machine only
            raise HarnessError(f"refusing to send load to {self.base_url}: not 127.0.0.1")

    def verify(self) -> None:
        """Send the first request once and check its answer before loading the server."""
        first = self.calls[0]
        response = requests.request(
            first.method,
            self.base_url + first.path,
            headers=self.headers,
            data=first.body or None,
            timeout=60,
        )
        if response.status_code != self.status:
            raise HarnessError(
                f"{self.name}: {first.method} {first.path} answered {response.status_code}, "
                f"not {self.status}: {response.text[:500]}"
            )
        if self.check is not None:
            self.check(response)


@dataclass(frozen=True)
class RunResult:
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connection errors, timeouts and answers other than 2xx/3xx
    load_average: float  # of the machine's last minute when the run ended: a noise indicator

    @classmethod
    def of(cls, summary: dict[str, Any]) -> RunResult:
        seconds = summary["duration_us"] / 1e6
        errors = sum(summary[key] for key in ERROR_KINDS)
        return cls(
            requests=summary["requests"],
            seconds=round(seconds, 3),
            requests_per_second=round(summary["requests"] / seconds, 1),
            p50_ms=summary["p50_us"] / 1000,
            p90_ms=summary["p90_us"] / 1000,
            p99_ms=summary["p99_us"] / 1000,
            max_ms=summary["max_us"] / 1000,
            errors=errors,
            load_average=os.getloadavg()[0],
        )


@dataclass(frozen=True)
class Measured:
    """A target's runs in one workload, and their means."""

    target: str
    runs: list[RunResult]

    @property
    def requests_per_second(self) -> float:
        return statistics.mean(run.requests_per_second for run in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.mean(run.p50_ms for run in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.mean(run.p99_ms for run in self.runs)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "errors": self.errors,
            "runs": [asdict(run) for run in self.runs],
        }


class LoadGenerator:
    def __init__(self, wrk: str, settings: LoadSettings, workdir: Path) -> None:
        self.wrk = wrk
        self.settings = settings
        self.workdir = workdir

    def compare(self, workload: str, targets: list[Target]) -> dict[str, Measured]:
        """Warm each target up, then measure them in alternating runs (the order flips every
        round, so a drift of the machine does not favour one side)."""
        files = {target.name: self._requests_file(workload, target) for target in targets}
        for target in targets:
            target.verify()
            if self.settings.warmup > 0:
                self._run(target, files[target.name], self.settings.warmup)
        runs: dict[str, list[RunResult]] = {target.name: [] for target in targets}
        for round_number in range(self.settings.rounds):
            order = targets if round_number % 2 == 0 else list(reversed(targets))
            for target in order:
                result = self._run(target, files[target.name], self.settings.duration)
                runs[target.name].append(RunResult.of(result))
        return {name: Measured(name, results) for name, results in runs.items()}

    def _requests_file(self, workload: str, target: Target) -> Path:
        path = self.workdir / f"{workload}-{target.name}.tsv"
        lines = [f"header\t{name}\t{value}" for name, value in target.headers.items()]
        for request in target.calls:
            if "\t" in request.path + request.body or "\n" in request.path + request.body:
                raise HarnessError(f"a request of {workload} holds a tab or a newline")
            lines.append(f"request\t{request.method}\t{request.path}\t{request.body}")
        path.write_text("\n".join(lines) + "\n")
        return path

    def _run(self, target: Target, requests_file: Path, seconds: float) -> dict[str, Any]:
        settings = self.settings
        command = [
            self.wrk,
            f"--threads={settings.threads}",
            f"--connections={settings.connections}",
            f"--duration={max(1, round(seconds))}s",
            f"--timeout={max(1, round(settings.timeout))}s",
            f"--script={LUA_SCRIPT}",
            target.base_url,
            "--",
            str(requests_file),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=seconds + 120, check=False
            )
        except subprocess.TimeoutExpired:
            raise HarnessError(f"wrk against {target.name} did not finish in time") from None
        for line in result.stdout.splitlines():
            if line.startswith(SUMMARY_PREFIX):
                return dict(json.loads(line[len(SUMMARY_PREFIX) :]))
        raise HarnessError(
            f"wrk against {target.name} printed no summary:\n{result.stdout}{result.stderr}"
        )
