"""The audit chain's append ceiling: events/s when 1, 2 and 4 service instances (separate
processes, one appending connection each, as each server worker has one) append audited
requests to one chain on one PostgreSQL on this machine; and, for the design that takes over
when one chain stops scaling, the same instances each appending to a chain of its own (a
database of its own on the same PostgreSQL: one chain per partition).

Each append is what the service's group commit sends: one call of `secret_audit_append`
(migration 0007) in autocommit mode, a whole durable transaction that takes the chain's head
row, hashes the events, inserts them and moves the head. `--batch` is the events per call: 1 is
a worker whose requests never share a commit, 8 a worker under load whose 8 threads' events
share one. The event is a real one (the `admin grant` the setup runs), each copy with its own
request id. Checkpoints are left out (`checkpoint_every` 0): one signed checkpoint per 1,000
events is a second round trip per 1,000 events.

    .venv/bin/python -m benchmarks.chain_ceiling [--instances 1,2,4] [--batch 1,8] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import make_url, text

from adapters.db.engine import create_engine_from_url
from benchmarks.servers import secretctl, service_environment
from tests.support.postgres import free_port, throwaway_postgres

APPEND_CALL = (
    "SELECT * FROM secret_audit_append("
    "string_to_array(%s, E'\\n'), string_to_array(%s, ',', '')::bigint[], %s)"
)
EVENT_COLUMNS = (
    "time, request_id, actor, actor_type, source_ip, user_agent, action, resource, scope, "
    "scope_path, version, outcome, reason, details"
)


def prepare(database_url: str, workdir: Path, name: str) -> str:
    """Migrate the database, audit one real request, and return that event's content."""
    env = service_environment(database_url, workdir, free_port(), 1, name)
    secretctl(env, "db", "upgrade")
    secretctl(env, "admin", "grant", "--principal", "user:chain-bench", "--role", "admin")
    engine = create_engine_from_url(database_url)
    try:
        with engine.connect() as connection:
            content = connection.execute(
                text(
                    f"SELECT row_to_json(e)::text FROM (SELECT {EVENT_COLUMNS} "  # noqa: S608
                    "FROM secret_audit_events ORDER BY seq DESC LIMIT 1) e"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return str(content)


def libpq_url(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


def append_for(
    database_url: str, content: str, batch: int, start_at: float, seconds: float, out: Any
) -> None:
    """One instance: append `batch` events per call from `start_at` for `seconds`."""
    template = json.loads(content)
    latencies: list[float] = []
    events = 0
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        time.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            lines = "\n".join(
                json.dumps(template | {"request_id": uuid.uuid4().hex}, separators=(",", ":"))
                for _ in range(batch)
            )
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(APPEND_CALL, (lines, ",".join([""] * batch), 0))
                cursor.fetchone()
            latencies.append(time.perf_counter() - started)
            events += batch
    out.put({"events": events, "began": began, "ended": time.time(), "latencies": latencies})


def measure(
    urls: list[str], content: str, instances: int, batch: int, seconds: float
) -> dict[str, Any]:
    """`instances` processes at once, instance i on `urls[i % len(urls)]`."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 5.0  # every process started and connected before the clock starts
    processes = [
        context.Process(
            target=append_for,
            args=(urls[i % len(urls)], content, batch, start_at, seconds, out),
        )
        for i in range(instances)
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    latencies = sorted(value for result in results for value in result["latencies"])
    events = sum(result["events"] for result in results)
    # Over the window from the first start to the last end: a late starter does not inflate it.
    window = max(r["ended"] for r in results) - min(r["began"] for r in results)
    return {
        "instances": instances,
        "batch": batch,
        "chains": min(instances, len(urls)),
        "events_per_second": round(events / window),
        "appends_per_second": round(len(latencies) / window),
        "window_seconds": round(window, 2),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", default="1,2,4", help="instances appending at once")
    parser.add_argument("--batch", default="1,8", help="events per append call")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument(
        "--no-partitions", action="store_true", help="skip the one-chain-per-instance rows"
    )
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.instances.split(",")]
    batches = [int(n) for n in args.batch.split(",")]
    chains = 1 if args.no_partitions else max(counts)
    rows = []
    with tempfile.TemporaryDirectory(prefix="chain-ceiling-") as tmp, ExitStack() as stack:
        server_url = stack.enter_context(throwaway_postgres(()))  # durable, as deployed
        admin = create_engine_from_url(server_url).execution_options(isolation_level="AUTOCOMMIT")
        names = [f"chain_{n}" for n in range(chains)]
        try:
            with admin.connect() as connection:
                for name in names:
                    connection.execute(text(f"CREATE DATABASE {name}"))
        finally:
            admin.dispose()
        urls = [make_url(server_url).set(database=name).render_as_string(False) for name in names]
        content = ""
        for n, url in enumerate(urls):
            content = prepare(url, Path(tmp), f"chain-{n}")
        print(f"event content: {len(content)} bytes", flush=True)
        for batch in batches:
            for instances in counts:
                row = measure(urls[:1], content, instances, batch, args.seconds)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if instances > 1 and not args.no_partitions:
                    row = measure(urls[:instances], content, instances, batch, args.seconds)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print()
    print(render(rows))
    return 0


def render(rows: list[dict[str, Any]]) -> str:
    header = ["instances", "chains", "events/call", "events/s", "appends/s", "p50 ms", "p99 ms"]
    table = [header] + [
        [
            str(row["instances"]),
            str(row["chains"]),
            str(row["batch"]),
            f"{row['events_per_second']:,}",
            f"{row['appends_per_second']:,}",
            f"{row['p50_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [
        " | ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in table
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
