"""One benchmark run: start PostgreSQL, the service as deployed (and, with `--compare REV`,
the service at another revision), OpenBao's development server and OpenBao on raft storage
(each with a file audit device) and the framework ceiling; seed them; grow the audit trail; at
each data set size, grow the bulk scope and drive every server with wrk in alternating runs;
time the batch jobs; print the tables and write benchmarks/results/<timestamp>.json.
Everything it started is stopped when it ends, fails or is interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
from benchmarks.seed import (
    OpenBaoCallers,
    ServiceCallers,
    seed_openbao,
    seed_openbao_secrets,
    seed_service,
    seed_service_bulk,
)
from benchmarks.workloads import (
    Endpoints,
    OpenBaoEndpoint,
    ServiceEndpoint,
    Workload,
    build_workloads,
)
from tests.support.postgres import PostgresUnavailable, free_port

ROOT = Path(__file__).resolve().parent.parent
FULL_SHAPE = TreeShape(organizations=2, teams_per_organization=2, projects_per_team=4)
QUICK_SHAPE = TreeShape(organizations=1, teams_per_organization=1, projects_per_team=2)
FULL_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (300, 1_000)


@dataclass(frozen=True)
class RunConfig:
    quick: bool
    sizes: tuple[int, ...]
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
    compare: str | None  # a git revision to serve beside this checkout
    openbao: bool


def parse_args(argv: list[str] | None) -> RunConfig:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the service against OpenBao KV v2 (development server and raft "
        "storage) and the framework ceiling, at several data set sizes.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: sizes 300,1000, 3 s runs, 20,000 audit events, small batches",
    )
    parser.add_argument(
        "--sizes",
        help="comma-separated data set sizes, secrets of 3 versions each, ascending "
        "(1000,10000,100000; quick 300,1000)",
    )
    parser.add_argument("--duration", type=float, help="seconds per measured run (10; quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per target (3; quick 1)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="measured runs per target (2; quick 1; with --compare 3, quick 2)",
    )
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
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="also serve git revision REV (a worktree in /tmp, this .venv) and run the read, "
        "resolve, list and write workloads on both, alternating (issue 15's before/after)",
    )
    parser.add_argument(
        "--no-openbao",
        action="store_true",
        help="leave OpenBao out (with --compare: only the two revisions, faster)",
    )
    parser.add_argument("--import-lines", type=int, help=".env lines to import (10000; quick 1000)")
    parser.add_argument(
        "--audit-events",
        type=int,
        help="audit trail under the data sets, and the chain verified (1000000; quick 20000)",
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
        "(SECRETS_BENCH_DATABASE_URL; not with --compare)",
    )
    parser.add_argument("--seed-threads", type=int, default=8, help="parallel seeding requests")
    args = parser.parse_args(argv)

    def pick(value: Any, full: Any, quick: Any) -> Any:
        return value if value is not None else (quick if args.quick else full)

    workloads = None
    if args.workloads:
        workloads = tuple({"read_by_id", *(name.strip() for name in args.workloads.split(","))})
    sizes = pick(args.sizes, FULL_SIZES, QUICK_SIZES)
    if isinstance(sizes, str):
        sizes = tuple(int(size.replace("_", "")) for size in sizes.split(","))
    if list(sizes) != sorted(set(sizes)):
        parser.error("--sizes must be ascending, without repeats")
    return RunConfig(
        quick=args.quick,
        sizes=tuple(sizes),
        shape=QUICK_SHAPE if args.quick else FULL_SHAPE,
        workers=args.workers,
        load=LoadSettings(
            threads=args.threads,
            connections=args.connections,
            duration=pick(args.duration, 10.0, 3.0),
            warmup=pick(args.warmup, 3.0, 1.0),
            # Compared revisions need runs enough to show their own spread.
            rounds=pick(args.rounds, 3 if args.compare else 2, 2 if args.compare else 1),
        ),
        workloads=workloads,
        import_lines=pick(args.import_lines, 10_000, 1_000),
        rekey_versions=pick(None, 100_000, 10_000),
        audit_events=pick(args.audit_events, 1_000_000, 20_000),
        batches=not args.no_batch,
        durable_postgres=not args.no_fsync,
        database_url=args.database_url,
        seed_threads=args.seed_threads,
        compare=args.compare,
        openbao=not args.no_openbao,
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


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A checkout of `revision` in /tmp (`git worktree add --detach`), removed on leaving."""
    path = Path(tempfile.mkdtemp(prefix="secret-bench-before-"))
    path.rmdir()
    git = ["git", "-C", str(ROOT)]
    added = subprocess.run(  # noqa: S603 - git with the revision given on the command line
        [*git, "worktree", "add", "--detach", str(path), revision],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if added.returncode != 0:
        raise servers.HarnessError(f"git worktree add {revision} failed: {added.stderr}")
    try:
        yield path
    finally:
        subprocess.run(  # noqa: S603 - removes the worktree it added
            [*git, "worktree", "remove", "--force", str(path)],
            capture_output=True,
            timeout=120,
            check=False,
        )


@dataclass
class Service:
    name: str
    env: dict[str, str]
    process: servers.Process
    database_url: str
    ids: dict[str, str]
    callers: ServiceCallers | None = None


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
        urls = stack.enter_context(
            servers.postgres_databases(
                config.database_url, config.durable_postgres, 2 if config.compare else 1
            )
        )
        services = [start_service(stack, "ours", urls[0], workdir, config, None)]
        if config.compare:
            checkout = stack.enter_context(worktree(config.compare))
            record["compare"] = {"revision": config.compare, "commit": commit_of(config.compare)}
            say(f"before: {config.compare} ({record['compare']['commit']}) in {checkout}")
            services.append(start_service(stack, "before", urls[1], workdir, config, checkout))
        baos = []
        if config.openbao:
            baos = [
                stack.enter_context(servers.openbao(workdir)),
                stack.enter_context(servers.openbao_raft(workdir)),
            ]
        ceiling = stack.enter_context(servers.ceiling(config.workers, workdir))
        record["versions"] = versions(wrk, urls[0])
        say(f"versions: {record['versions']}")

        dataset = build_dataset(config.sizes[-1], config.shape)
        bao_callers, record["seeding"] = seed_tree(config, dataset, services, baos)
        record["seeding"]["audit_trail"] = grow_audit_trails(config, services)
        generator = LoadGenerator(wrk, config.load, workdir)
        endpoints = Endpoints(
            [ServiceEndpoint(s.name, s.process.url, s.callers, s.ids) for s in services],  # type: ignore[arg-type]
            [OpenBaoEndpoint(b.label, b.url, bao_callers[b.label]) for b in baos],
            ceiling.url,
        )
        by_size: dict[int, dict[str, dict[str, Measured]]] = {}
        record["sizes"] = {}
        seeded_bulk = 0
        for size in config.sizes:
            view = dataset.at(size)
            started = time.perf_counter()
            grown = grow_bulk(config, view, seeded_bulk, services, baos)
            seeded_bulk = len(view.bulk_secrets)
            say(f"\n######## {size:,} secrets x {VERSIONS} versions (grown: {grown})")
            measured: dict[str, dict[str, Measured]] = {}
            memory: dict[str, Any] = {}
            for workload in build_workloads(endpoints, view):
                if config.workloads is not None and workload.name not in config.workloads:
                    continue
                measured[workload.name] = measure(generator, workload)
                if workload.name == "read_by_id":
                    memory = memory_of(services, baos, ceiling)
            by_size[size] = measured
            record["sizes"][str(size)] = {
                "grown": grown,
                "seconds": round(time.perf_counter() - started, 1),
                "memory_mib": memory,
                "workloads": {
                    name: {target: result.as_json() for target, result in results.items()}
                    for name, results in measured.items()
                },
            }
            say(f"size {size:,} took {record['sizes'][str(size)]['seconds']:.0f} s")
        record["openbao_audit_logs"] = {b.label: audit_log_size(b.audit_log) for b in baos}

        batches: list[batch.BatchResult] = []
        if config.batches:
            team = dataset.projects[0].parent
            assert team is not None
            ours = services[0]
            assert ours.callers is not None
            batches = run_batches(config, ours.process.url, ours.env, ours.callers.admin, team)
        record["batches"] = [result.as_json() for result in batches]

    memories = {size: record["sizes"][str(size)]["memory_mib"] for size in config.sizes}
    lines = report.render(by_size, memories, batches)
    record["table"] = lines
    say("\n" + "\n".join(lines))
    say(f"machine: {record['machine']['cpus']} CPUs, {record['machine']['memory_gib']} GiB")
    return record


def start_service(
    stack: ExitStack,
    name: str,
    database_url: str,
    workdir: Path,
    config: RunConfig,
    checkout: Path | None,
) -> Service:
    env = servers.service_environment(database_url, workdir, free_port(), config.workers, name)
    process = stack.enter_context(servers.service(env, workdir, name=name, checkout=checkout))
    return Service(name, env, process, database_url, {})


def commit_of(revision: str) -> str:
    found = subprocess.run(  # noqa: S603 - git with the revision given on the command line
        ["git", "-C", str(ROOT), "rev-parse", "--short", revision],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return found.stdout.strip()


def seed_tree(
    config: RunConfig, dataset: Dataset, services: list[Service], baos: list[servers.OpenBao]
) -> tuple[dict[str, OpenBaoCallers], dict[str, Any]]:
    """The tree's secrets, over each server's HTTP API, and the callers."""
    timings: dict[str, Any] = {"tree_secrets": len(dataset.tree_secrets)}
    for service in services:
        started = time.perf_counter()
        service.callers = seed_service(
            service.process.url, service.env, dataset, config.seed_threads, service.ids
        )
        timings[f"{service.name}_tree_seconds"] = round(time.perf_counter() - started, 1)
    callers = {}
    for bao in baos:
        started = time.perf_counter()
        callers[bao.label] = seed_openbao(
            bao.url, bao.root_token, dataset.tree_secrets, config.seed_threads
        )
        timings[f"{bao.label}_tree_seconds"] = round(time.perf_counter() - started, 1)
        check_openbao_audit(bao, callers[bao.label])
    say(f"seeded the tree ({len(dataset.tree_secrets)} secrets x {VERSIONS}): {timings}")
    return callers, timings


def grow_audit_trails(config: RunConfig, services: list[Service]) -> dict[str, Any]:
    """Each service's audit chain grown to `audit_events` (bulk, through the chain's code)."""
    grown: dict[str, Any] = {}
    for service in services:
        started = time.perf_counter()
        try:
            batch.grow_audit_chain(service.env, config.audit_events)
        except Exception as error:  # another revision's schema: said, not hidden
            grown[service.name] = f"not grown: {type(error).__name__}: {error}"[:300]
            continue
        grown[service.name] = {
            "events": config.audit_events,
            "seconds": round(time.perf_counter() - started, 1),
        }
    say(f"audit trails: {grown}")
    return grown


def grow_bulk(
    config: RunConfig,
    view: Dataset,
    seeded: int,
    services: list[Service],
    baos: list[servers.OpenBao],
) -> dict[str, Any]:
    """Add the bulk scope's secrets of this size not seeded yet: the service's with its bulk
    import, OpenBao's with parallel writes; the ids of the new ones from the database."""
    new = view.bulk_secrets[seeded:]
    grown: dict[str, Any] = {"secrets": len(new), "versions_each": VERSIONS}
    for service in services:
        assert service.callers is not None
        started = time.perf_counter()
        seed_service_bulk(service.process.url, service.callers.admin, new)
        grown[f"{service.name}_import_seconds"] = round(time.perf_counter() - started, 1)
        service.ids.update(bulk_ids(service.database_url, view.bulk))
    for bao in baos:
        started = time.perf_counter()
        seed_openbao_secrets(bao.url, bao.root_token, new, config.seed_threads)
        grown[f"{bao.label}_write_seconds"] = round(time.perf_counter() - started, 1)
    return grown


def bulk_ids(database_url: str, scope: Scope) -> dict[str, str]:
    """kv path -> id of the bulk scope's secrets (the import answers names, not ids)."""
    engine = create_engine_from_url(database_url)
    query = text(
        "SELECT s.name, s.id FROM secret_secrets s JOIN secret_scopes c ON c.pk = s.scope_pk "
        "WHERE c.type = :type AND c.external_id = :id"
    )
    try:
        with engine.connect() as connection:
            rows = connection.execute(query, {"type": scope.type, "id": scope.id}).all()
    finally:
        engine.dispose()
    return {f"{scope.kv_path}/{name}": str(secret_id) for name, secret_id in rows}


def measure(generator: LoadGenerator, workload: Workload) -> dict[str, Measured]:
    say(f"\n== {workload.name}: {workload.description}")
    results = generator.compare(workload.name, workload.targets)
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


def memory_of(
    services: list[Service], baos: list[servers.OpenBao], ceiling: servers.Process
) -> dict[str, Any]:
    """Resident memory of each server worker (the main process's children), and of OpenBao."""
    found: dict[str, Any] = {
        f"{service.name}_workers": [
            round(servers.rss_mib(pid), 1) for pid in servers.children_of(service.process.pid)
        ]
        for service in services
    }
    found["ceiling_workers"] = [
        round(servers.rss_mib(pid), 1) for pid in servers.children_of(ceiling.pid)
    ]
    for bao in baos:
        found[bao.label] = round(servers.rss_mib(bao.pid), 1)
    say(f"  RSS after read_by_id, MiB: {found}")
    return found


def check_openbao_audit(bao: servers.OpenBao, callers: OpenBaoCallers) -> None:
    """The file audit device must really receive the benchmark's requests."""
    log = bao.audit_log
    before = audit_log_size(log)["lines"]
    requests.get(
        f"{bao.url}/v1/secret/metadata/?list=true",
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
