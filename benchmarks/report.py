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

# Targets of issue 20, against OpenBao on raft storage with a file audit device (checked, not
# asserted, in the summary).
READ_VS_RAFT = 1.5
WRITE_VS_RAFT = 1.0
LIST_VS_RAFT = 1.0
RESOLVE_VS_RAFT_READS = 10.0
WORKER_RSS_MIB = 150.0
GROWTH = {"read_by_id": 1.2, "read_by_path": 1.2, "write_version": 1.2, "list_page_100": 1.5}
SERVICES = ("ours", "before")
OPENBAOS = ("bao-dev", "bao-raft")
DERIVED_LIST = "list_then_metadata_100"


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


def _ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}" if ours and theirs else "-"


def rows_of(measured: dict[str, dict[str, Measured]]) -> dict[str, dict[str, float]]:
    """Requests per second by workload and target, with the derived rows: OpenBao's list
    followed by 100 metadata reads (the time of one LIST plus 100 reads, at the measured rates)
    and its resolution of 40 values one read at a time (reads by path per second / 40)."""
    rows = {
        name: {target: result.requests_per_second for target, result in results.items()}
        for name, results in measured.items()
        if name != "metadata_read"
    }
    lists, metadata = measured.get("list_page_100", {}), measured.get("metadata_read", {})
    if lists:
        derived = {name: lists[name].requests_per_second for name in SERVICES if name in lists}
        for bao in OPENBAOS:
            if bao in lists and bao in metadata:
                seconds = 1 / lists[bao].requests_per_second
                seconds += 100 / metadata[bao].requests_per_second
                derived[bao] = 1 / seconds
        rows[DERIVED_LIST] = derived
    reads = measured.get("read_by_path", {})
    if "resolve_40" in rows:
        for bao in OPENBAOS:
            if bao in reads:
                rows["resolve_40"][bao] = reads[bao].requests_per_second / 40
    return rows


def table(measured: dict[str, dict[str, Measured]]) -> str:
    """One size: req/s of every target, p99 of ours and OpenBao raft's, and the ratios."""
    rows = rows_of(measured)
    present = {target for results in rows.values() for target in results}
    before = "before" in present
    header = ["workload", "ours req/s", "p50", "p99"]
    if before:
        header += ["before req/s", "ours/before"]
    header += ["bao-dev req/s", "bao-raft req/s", "raft p99", "ours/dev", "ours/raft"]
    lines = [header]
    for name, figures in rows.items():
        result = measured.get(name, {})
        ours = figures.get("ours")
        row = [
            name,
            _number(ours),
            _latency(result.get("ours"), "p50"),
            _latency(result.get("ours"), "p99"),
        ]
        if before:
            row += [_number(figures.get("before")), _ratio(ours, figures.get("before"))]
        raft = (
            result.get("bao-raft")
            if name in ("read_by_id", "read_by_path", "write_version", "list_page_100")
            else None
        )
        row += [
            _number(figures.get("bao-dev")),
            _number(figures.get("bao-raft")),
            _latency(raft, "p99"),
            _ratio(ours, figures.get("bao-dev")),
            _ratio(ours, figures.get("bao-raft")),
        ]
        if "ceiling" in figures:
            row[0] += f" (ceiling {figures['ceiling']:,.0f})"
        lines.append(row)
    return _aligned(lines)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _latency(result: Measured | None, which: str) -> str:
    if result is None:
        return "-"
    return f"{getattr(result, which + '_ms'):.1f}"


def _aligned(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        " | ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def compare_lines(measured: dict[str, dict[str, Measured]]) -> list[str]:
    """With `--compare`: each run of both revisions (alternating), so the ratio can be read
    against the spread of one revision's own runs."""
    lines = []
    for name, results in measured.items():
        ours, before = results.get("ours"), results.get("before")
        if ours is None or before is None:
            continue
        runs = {
            label: ", ".join(f"{run.requests_per_second:,.0f}" for run in result.runs)
            for label, result in (("ours", ours), ("before", before))
        }
        spread = max(_spread(ours), _spread(before))
        lines.append(
            f"{name}: ours/before {ours.requests_per_second / before.requests_per_second:.2f} "
            f"(ours runs {runs['ours']}; before runs {runs['before']}; "
            f"spread of one side's runs up to {spread:.0%})"
        )
    return [*lines, ""] if lines else []


def _spread(result: Measured) -> float:
    values = [run.requests_per_second for run in result.runs]
    return (max(values) - min(values)) / result.requests_per_second if len(values) > 1 else 0.0


def growth_table(by_size: dict[int, dict[str, dict[str, Measured]]]) -> str:
    """Each workload's req/s at each size, and its ratio to the smallest size's, for ours and
    OpenBao raft (a ratio below 1 is slower than at the smallest size)."""
    sizes = sorted(by_size)
    rows_by_size = {size: rows_of(by_size[size]) for size in sizes}
    header = ["workload", "target", *(f"{size:,}" for size in sizes)]
    lines = [header]
    for name in rows_by_size[sizes[0]]:
        for target in ("ours", "bao-raft"):
            first = rows_by_size[sizes[0]][name].get(target)
            if first is None:
                continue
            cells = []
            for size in sizes:
                value = rows_by_size[size].get(name, {}).get(target)
                cells.append("-" if value is None else f"{_number(value)} ({value / first:.2f})")
            lines.append([name, target, *cells])
    return _aligned(lines)


def memory_table(memories: dict[int, dict[str, Any]]) -> str:
    sizes = sorted(memories)
    keys = (
        [key for key in memories[sizes[0]] if key != "ceiling_workers"]
        if memories[sizes[0]]
        else []
    )
    lines = [["RSS MiB after read_by_id", *(f"{size:,}" for size in sizes)]]
    for key in keys:
        cells = []
        for size in sizes:
            value = memories[size].get(key)
            if isinstance(value, list):
                cells.append("/".join(f"{item:.0f}" for item in value) or "-")
            else:
                cells.append("-" if value is None else f"{value:.0f}")
        lines.append([key, *cells])
    return _aligned(lines)


def render(
    by_size: dict[int, dict[str, dict[str, Measured]]],
    memories: dict[int, dict[str, Any]],
    batches: list[BatchResult],
) -> list[str]:
    lines: list[str] = []
    for size, measured in by_size.items():
        lines += [f"## {size:,} secrets x 3 versions", table(measured), ""]
        lines += compare_lines(measured)
    if len(by_size) > 1:
        lines += ["## req/s against size (ratio to the smallest size)", growth_table(by_size), ""]
    if any(memories.values()):
        lines += [memory_table(memories), ""]
    lines += summary_lines(by_size, memories, batches)
    return lines


def summary_lines(
    by_size: dict[int, dict[str, dict[str, Measured]]],
    memories: dict[int, dict[str, Any]],
    batches: list[BatchResult],
) -> list[str]:
    """Issue 20's targets at each size, against OpenBao raft + file audit."""
    lines = []
    first_rows = rows_of(by_size[min(by_size)]) if by_size else {}
    for size, measured in by_size.items():
        rows = rows_of(measured)
        checks = []
        for name in ("read_by_id", "read_by_path"):
            if "bao-raft" in rows.get(name, {}):
                checks.append(
                    _check(
                        f"{name} ours/raft",
                        rows[name]["ours"] / rows[name]["bao-raft"],
                        READ_VS_RAFT,
                    )
                )
                ours, raft = measured[name]["ours"], measured[name]["bao-raft"]
                checks.append(
                    _check(f"{name} p99 ours/raft", ours.p99_ms / raft.p99_ms, 1.0, most=True)
                )
        for name, target in (("write_version", WRITE_VS_RAFT), ("list_page_100", LIST_VS_RAFT)):
            if "bao-raft" in rows.get(name, {}):
                checks.append(
                    _check(f"{name} ours/raft", rows[name]["ours"] / rows[name]["bao-raft"], target)
                )
        if "bao-raft" in rows.get("resolve_40", {}):
            value = rows["resolve_40"]["ours"] / rows["resolve_40"]["bao-raft"]
            checks.append(_check("resolve_40 ours/(raft reads/40)", value, RESOLVE_VS_RAFT_READS))
        for name, bound in GROWTH.items():
            if size != min(by_size) and "ours" in rows.get(name, {}) and name in first_rows:
                slower = first_rows[name]["ours"] / rows[name]["ours"]
                checks.append(
                    _check(f"{name} slowdown vs {min(by_size):,}", slower, bound, most=True)
                )
        workers = memories.get(size, {}).get("ours_workers") or []
        if workers:
            checks.append(_check("worker RSS MiB", max(workers), WORKER_RSS_MIB, most=True))
        lines.append(f"targets at {size:,}: " + "; ".join(checks))
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


def _check(what: str, value: float | None, target: float, most: bool = False) -> str:
    if value is None:
        return f"{what}: -"
    met = value <= target if most else value >= target
    bound = "<=" if most else ">="
    return f"{what} {value:.2f} ({bound} {target:g}: {'met' if met else 'NOT met'})"


def write_json(record: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path
