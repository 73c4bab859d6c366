"""One benchmark run: start PostgreSQL, the service as deployed, OpenBao with a file audit device
and the framework ceiling; seed them; drive them with wrk in alternating runs; time the batch
jobs; print a table and write benchmarks/results/<timestamp>.json. Everything it started is
stopped when it ends, fails or is interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import requests
from sqlalchemy import text

from adapters.db.engine import create_engine_from_url
from benchmarks import batch, report, servers
from benchmarks.dataset import VERSIONS, Dataset, Scope, TreeShape, build_dataset
from benchmarks.load import LoadGenerator, LoadSettings, Measured
from benchmarks.seed import OpenBaoCallers, ServiceCallers, seed_openbao, seed_service
from benchmarks.workloads import Endpoints, Workload, build_workloads
from tests.support.postgres import PostgresUnavailable, free_port

FULL_SHAPE = TreeShape(organizations=2, teams_per_organization=2, projects_per_team=4)
QUICK_SHAPE = TreeShape(organizations=1, teams_per_organization=1, projects_per_team=2)


@dataclass(frozen=True)
class RunConfig:
    quick: bool
    secrets: int
    shape: TreeShape
    workers: int
    load: LoadSettings
    workloads: tuple[str, ...] | None  # None: all of them
    import_lines: int
    rekey_versions: int
    audit_events: int
    batches: bool
    durable_postgres: bool
    database_url: str | None
    seed_threads: int


def parse_args(argv: list[str] | None) -> RunConfig:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the service against OpenBao KV v2 and the framework ceiling.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 200 secrets, 3 s runs, small batches"
    )
    parser.add_argument("--secrets", type=int, help="secrets to seed (1000; quick 200)")
    parser.add_argument("--duration", type=float, help="seconds per measured run (10; quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per target (3; quick 1)")
    parser.add_argument("--rounds", type=int, help="measured runs per target (2; quick 1)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument(
        "--workers",
        type=int,
        default=max(2, os.cpu_count() or 2),
        help="server workers of the service and of the ceiling (the number of CPUs, at least 2)",
    )
    parser.add_argument(
        "--workloads", help="comma-separated workloads to run (all; read_by_id is always run)"
    )
    parser.add_argument("--import-lines", type=int, help=".env lines to import (10000; quick 1000)")
    parser.add_argument(
        "--audit-events", type=int, help="audit chain length to verify (1000000; quick 20000)"
    )
    parser.add_argument("--no-batch", action="store_true", help="skip the batch jobs")
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="run the throwaway PostgreSQL without fsync, as the tests do (default: durable)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SECRETS_BENCH_DATABASE_URL"),
        help="an empty PostgreSQL database to use instead of a throwaway cluster "
        "(SECRETS_BENCH_DATABASE_URL)",
    )
    parser.add_argument("--seed-threads", type=int, default=8, help="parallel seeding requests")
    args = parser.parse_args(argv)

    def pick(value: Any, full: Any, quick: Any) -> Any:
        return value if value is not None else (quick if args.quick else full)

    workloads = None
    if args.workloads:
        workloads = tuple({"read_by_id", *(name.strip() for name in args.workloads.split(","))})
    return RunConfig(
        quick=args.quick,
        secrets=pick(args.secrets, 1000, 200),
        shape=QUICK_SHAPE if args.quick else FULL_SHAPE,
        workers=args.workers,
        load=LoadSettings(
            threads=args.threads,
            connections=args.connections,
            duration=pick(args.duration, 10.0, 3.0),
            warmup=pick(args.warmup, 3.0, 1.0),
            rounds=pick(args.rounds, 2, 1),
        ),
        workloads=workloads,
        import_lines=pick(args.import_lines, 10_000, 1_000),
        rekey_versions=100_000,
        audit_events=pick(args.audit_events, 1_000_000, 20_000),
        batches=not args.no_batch,
        durable_postgres=not args.no_fsync,
        database_url=args.database_url,
        seed_threads=args.seed_threads,
    )


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds the ExitStack: every server is stopped


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        record = run(config)
    except (servers.HarnessError, PostgresUnavailable) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted: everything it started is stopped", file=sys.stderr)
        return 130
    print(f"\nresults: {report.write_json(record)}")
    return 0


def say(message: str) -> None:
    print(message, flush=True)


def run(config: RunConfig) -> dict[str, Any]:
    record: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "config": asdict(config),
    }
    wrk = servers.ensure_wrk(install=True)
    say(f"machine: {record['machine']}")
    with tempfile.TemporaryDirectory(prefix="secret-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        database_url = stack.enter_context(
            servers.postgres_database(config.database_url, config.durable_postgres)
        )
        env = servers.service_environment(database_url, workdir, free_port(), config.workers)
        service = stack.enter_context(servers.service(env, workdir))
        openbao = stack.enter_context(servers.openbao(workdir))
        ceiling = stack.enter_context(servers.ceiling(config.workers, workdir))
        record["versions"] = versions(wrk, database_url)
        say(f"versions: {record['versions']}")

        dataset = build_dataset(config.secrets, config.shape)
        service_callers, openbao_callers, record["dataset"] = seed_both(
            config, dataset, env, service, openbao, workdir
        )
        endpoints = Endpoints(
            service.url, openbao.url, ceiling.url, service_callers, openbao_callers
        )
        generator = LoadGenerator(wrk, config.load, workdir)
        measured: dict[str, dict[str, Measured]] = {}
        for workload in build_workloads(endpoints, dataset):
            if config.workloads is not None and workload.name not in config.workloads:
                continue
            measured[workload.name] = measure(generator, workload)
            if workload.name == "read_by_id":
                record["memory_mib"] = memory(service, ceiling, openbao)
        record["workloads"] = {
            name: {target: result.as_json() for target, result in results.items()}
            for name, results in measured.items()
        }
        record["openbao_audit_log"] = audit_log_size(servers.openbao_audit_log(workdir))

        batches: list[batch.BatchResult] = []
        if config.batches:
            team = dataset.projects[0].parent
            assert team is not None
            batches = run_batches(config, service.url, env, service_callers.admin, team)
        record["batches"] = [result.as_json() for result in batches]

    rss = record.get("memory_mib", {}).get("service_workers", [])
    lines = [report.table(measured), "", *report.summary_lines(measured, rss, batches)]
    record["table"] = lines
    say("\n" + "\n".join(lines))
    say(f"machine: {record['machine']['cpus']} CPUs, {record['machine']['memory_gib']} GiB")
    return record


def seed_both(
    config: RunConfig,
    dataset: Dataset,
    env: dict[str, str],
    service: servers.Process,
    openbao: servers.Process,
    workdir: Path,
) -> tuple[ServiceCallers, OpenBaoCallers, dict[str, Any]]:
    started = time.perf_counter()
    service_callers = seed_service(service.url, env, dataset, config.seed_threads)
    service_seconds = time.perf_counter() - started
    started = time.perf_counter()
    openbao_callers = seed_openbao(openbao.url, dataset, config.seed_threads)
    openbao_seconds = time.perf_counter() - started
    check_openbao_audit(openbao.url, openbao_callers, workdir)
    say(
        f"seeded {len(dataset.secrets)} secrets x {VERSIONS} versions over HTTP: service "
        f"{service_seconds:.1f} s, OpenBao {openbao_seconds:.1f} s"
    )
    described = {
        "secrets": len(dataset.secrets),
        "versions_each": VERSIONS,
        "scopes": len(dataset.scopes) + 2,  # global and the user's personal scope
        "resolve_contexts": len(dataset.projects),
        "bulk_scope_secrets": len(dataset.bulk_secrets),
        "seed_service_seconds": round(service_seconds, 1),
        "seed_openbao_seconds": round(openbao_seconds, 1),
        "seeded_through": "each server's HTTP API (requests, parallel)",
    }
    return service_callers, openbao_callers, described


def measure(generator: LoadGenerator, workload: Workload) -> dict[str, Measured]:
    targets = [
        target
        for target in (workload.ours, workload.openbao, workload.ceiling)
        if target is not None
    ]
    say(f"\n== {workload.name}: {workload.description}")
    results = generator.compare(workload.name, targets)
    for name, result in results.items():
        say(
            f"  {name:8} {result.requests_per_second:9,.0f} req/s  p50 {result.p50_ms:7.1f} ms  "
            f"p99 {result.p99_ms:7.1f} ms  errors {result.errors}"
        )
    return results


def run_batches(
    config: RunConfig, service_url: str, env: dict[str, str], admin_token: str, parent: Scope
) -> list[batch.BatchResult]:
    say("\n== batch jobs")
    results = [batch.import_dotenv(service_url, admin_token, config.import_lines, parent)]
    results += batch.verify_audit_chain(service_url, env, admin_token, config.audit_events)
    results += batch.rekey(env, config.rekey_versions)  # last: the service keeps the old key
    for result in results:
        say(f"  {result.job}: {result.status} {result.seconds if result.seconds else ''}")
    return results


def memory(
    service: servers.Process, ceiling: servers.Process, openbao: servers.Process
) -> dict[str, Any]:
    """Resident memory of each server worker (the main process's children), and of OpenBao."""
    found = {
        "service_workers": [
            round(servers.rss_mib(pid), 1) for pid in servers.children_of(service.pid)
        ],
        "ceiling_workers": [
            round(servers.rss_mib(pid), 1) for pid in servers.children_of(ceiling.pid)
        ],
        "openbao": round(servers.rss_mib(openbao.pid), 1),
    }
    say(f"  RSS after read_by_id, MiB: {found}")
    return found


def check_openbao_audit(url: str, callers: OpenBaoCallers, workdir: Path) -> None:
    """The file audit device must really receive the benchmark's requests."""
    log = servers.openbao_audit_log(workdir)
    before = audit_log_size(log)["lines"]
    requests.get(
        f"{url}/v1/secret/metadata/?list=true",
        headers={"X-Vault-Token": callers.reader},
        timeout=10,
    )
    after = audit_log_size(log)["lines"]
    if after < before + 2:  # a request entry and a response entry
        raise servers.HarnessError(f"OpenBao's file audit device did not log a request ({log})")


def audit_log_size(path: Path) -> dict[str, int]:
    if not path.exists():
        return {"lines": 0, "bytes": 0}
    with path.open("rb") as handle:
        lines = sum(1 for _ in handle)
    return {"lines": lines, "bytes": path.stat().st_size}


def versions(wrk: str, database_url: str) -> dict[str, str]:
    engine = create_engine_from_url(database_url)
    try:
        with engine.connect() as connection:
            postgres = str(connection.execute(text("SHOW server_version")).scalar())
    finally:
        engine.dispose()
    wrk_banner = subprocess.run(  # noqa: S603 - the wrk found on PATH
        [wrk, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return {
        "postgresql": postgres,
        "openbao": servers.openbao_version(),
        "wrk": (wrk_banner.stdout or wrk_banner.stderr).split("\n")[0],
    }
