"""The resident memory of the service's workers against the data set's size: `secretctl serve`
(production mode, the benchmark's setup) on a throwaway PostgreSQL, seeded with the benchmark's
data set at each size (the tree over the API, the bulk scope with the bulk import), then the
benchmark's read, resolve and list workloads under wrk; each worker's RSS after each.

    .venv/bin/python -m benchmarks.memory_probe [--sizes 1000,10000] [--duration 10]
        [--env NAME=VALUE ...]

`--env` passes variables to the service (e.g. `MALLOC_ARENA_MAX=2`, `SECRETS_READ_CACHE__...`)
to compare settings. A quick check of issue 20's "≤ 150 MiB per worker" between full runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks import servers
from benchmarks.dataset import build_dataset
from benchmarks.harness import FULL_SHAPE, bulk_ids
from benchmarks.load import LoadGenerator, LoadSettings
from benchmarks.seed import seed_service, seed_service_bulk
from benchmarks.workloads import Endpoints, ServiceEndpoint, build_workloads
from tests.support.postgres import free_port

WORKLOADS = ("read_by_id", "read_by_path", "resolve_40", "list_page_100")


def worker_rss(process: servers.Process) -> list[float]:
    return [round(servers.rss_mib(pid), 1) for pid in servers.children_of(process.pid)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the service")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    wrk = servers.ensure_wrk(install=False)
    dataset = build_dataset(sizes[-1], FULL_SHAPE)
    with tempfile.TemporaryDirectory(prefix="memory-probe-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        (database_url,) = stack.enter_context(servers.postgres_databases(None, False))
        env = servers.service_environment(database_url, workdir, free_port(), args.workers)
        env |= dict(item.split("=", 1) for item in args.env)
        process = stack.enter_context(servers.service(env, workdir))
        print(f"started: workers {worker_rss(process)} MiB", flush=True)
        ids: dict[str, str] = {}
        callers = seed_service(process.url, env, dataset, 8, ids)
        seeded = 0
        generator = LoadGenerator(wrk, LoadSettings(2, 16, args.duration, 1, 1), workdir)
        for size in sizes:
            view = dataset.at(size)
            new = view.bulk_secrets[seeded:]
            seed_service_bulk(process.url, callers.admin, new)
            seeded += len(new)
            ids.update(bulk_ids(database_url, view.bulk))
            print(f"{size}: seeded, workers {worker_rss(process)} MiB", flush=True)
            endpoint = ServiceEndpoint("ours", process.url, callers, ids)
            for workload in build_workloads(Endpoints([endpoint], []), view):
                if workload.name not in WORKLOADS:
                    continue
                measured = generator.compare(workload.name, workload.targets)["ours"]
                rate = measured.runs[0].requests_per_second
                print(
                    f"{size}: {workload.name} {rate:.0f}/s, workers {worker_rss(process)} MiB",
                    flush=True,
                )


if __name__ == "__main__":
    main()
