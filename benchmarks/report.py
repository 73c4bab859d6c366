"""The results: a short table on stdout and the whole record as JSON under benchmarks/results/."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.batch import BatchResult
from benchmarks.load import Measured

RESULTS_DIR = Path(__file__).with_name("results")
ROOT = Path(__file__).resolve().parent.parent

# Targets of issue 7, checked (not asserted) in the summary.
READ_VS_OPENBAO = 1.0
READ_VS_CEILING = 0.7
P99_VS_OPENBAO = 2.0
RESOLVE_VS_READ = 0.5
WORKER_RSS_MIB = 150.0


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _git(*args: str) -> str:
    result = subprocess.run(  # noqa: S603 - git with fixed arguments
        ["git", *args],  # noqa: S607 - git from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout.strip()


def _ratio(ours: float, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}" if theirs else "-"


def _cells(measured: Measured | None) -> list[str]:
    if measured is None:
        return ["n/a", "", "", ""]
    return [
        f"{measured.requests_per_second:,.0f}",
        f"{measured.p50_ms:.1f}",
        f"{measured.p99_ms:.1f}",
        str(measured.errors),
    ]


def table(workloads: dict[str, dict[str, Measured]]) -> str:
    header = [
        "workload",
        "ours req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "OpenBao req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "ours/OpenBao",
    ]
    rows = [header]
    for name, measured in workloads.items():
        ours, bao = measured["ours"], measured.get("openbao")
        ratio = _ratio(ours.requests_per_second, bao.requests_per_second if bao else None)
        rows.append([name, *_cells(ours), *_cells(bao), ratio])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        " | ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def summary_lines(
    workloads: dict[str, dict[str, Measured]],
    worker_rss: list[float],
    batches: list[BatchResult],
) -> list[str]:
    read = workloads["read_by_id"]
    ours, bao, ceiling = read["ours"], read["openbao"], read["ceiling"]
    lines = [
        f"framework ceiling (constant JSON, same server setup): "
        f"{ceiling.requests_per_second:,.0f} req/s, p50 {ceiling.p50_ms:.1f} ms, "
        f"p99 {ceiling.p99_ms:.1f} ms; read_by_id ours/ceiling = "
        f"{_ratio(ours.requests_per_second, ceiling.requests_per_second)}",
        _check(
            "read_by_id ours/OpenBao",
            ours.requests_per_second / bao.requests_per_second,
            READ_VS_OPENBAO,
        ),
        _check(
            "read_by_id ours/ceiling",
            ours.requests_per_second / ceiling.requests_per_second,
            READ_VS_CEILING,
        ),
        _check("read_by_id p99 ours/OpenBao", ours.p99_ms / bao.p99_ms, P99_VS_OPENBAO, most=True),
    ]
    if "resolve_40" in workloads:
        resolve = workloads["resolve_40"]["ours"].requests_per_second
        lines.append(
            _check("resolve_40 / read_by_id", resolve / ours.requests_per_second, RESOLVE_VS_READ)
        )
    if worker_rss:
        rss = ", ".join(f"{value:.0f}" for value in worker_rss)
        lines.append(
            _check("worker RSS after read_by_id, MiB", max(worker_rss), WORKER_RSS_MIB, most=True)
            + f" (each: {rss})"
        )
    for batch in batches:
        if batch.status != "ok":
            took = f" after {batch.seconds:.1f} s" if batch.seconds is not None else ""
            lines.append(f"{batch.job} ({batch.size:,}): {batch.status}{took}: {batch.detail}")
        elif batch.target_seconds is None:
            lines.append(f"{batch.job} ({batch.size:,}): {batch.seconds or 0:.1f} s")
        else:
            lines.append(
                _check(
                    f"{batch.job} ({batch.size:,}), s", batch.seconds, batch.target_seconds, True
                )
            )
    return lines


def _check(what: str, value: float, target: float, most: bool = False) -> str:
    met = value <= target if most else value >= target
    bound = "<=" if most else ">="
    return f"{what}: {value:.2f} (target {bound} {target:g}: {'met' if met else 'NOT met'})"


def write_json(record: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path
