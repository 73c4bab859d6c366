"""What the ceiling benchmarks (`benchmarks.write_ceiling`, `benchmarks.list_ceiling`) share:
serving a minimal app under the service's own server setup, and the run that alternates it with
the service (and OpenBao raft with `--openbao`) under `benchmarks.write_probe`'s wrk settings,
printing each target's rate and its ratio to the ceiling."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from flask import Flask
from sqlalchemy import Engine

from adapters.db.engine import create_engine_from_url
from benchmarks import servers
from benchmarks.load import LoadGenerator, Measured, Target
from benchmarks.write_probe import arguments, load_settings
from tests.support.postgres import free_port

# (stack, workdir, the service's database, the ceiling's database, workers) -> the targets
BuildTargets = Callable[[ExitStack, Path, str, str, int], list[Target]]


def ceiling_app(name: str, database_variable: str) -> tuple[Flask, Engine]:
    """A ceiling's Flask app (with `/healthz`) and the engine of its database."""
    engine = create_engine_from_url(os.environ[database_variable], track_changes=False)
    app = Flask(name)

    @app.get("/healthz")
    def healthy() -> dict[str, str]:
        return {"status": "ok"}

    return app, engine


@contextmanager
def ceiling_process(
    module: str, database_variable: str, database_url: str, workers: int, workdir: Path
) -> Iterator[servers.Process]:
    """`python -m <module> --serve`: its app under granian, its database in the environment."""
    port = free_port()
    name = module.rsplit(".", 1)[-1]
    command = [sys.executable, "-m", module, "--serve", "--port", str(port)]
    with servers.running(
        name.replace("_", " "),
        [*command, "--workers", str(workers)],
        port=port,
        health_path="/healthz",
        log_path=workdir / f"{name}.log",
        env=os.environ | {database_variable: database_url},
        cwd=Path(__file__).resolve().parent.parent,
    ) as process:
        yield process


def report(measured: dict[str, Measured], unit: str, ceiling: str) -> None:
    """Each target's rate (mean and runs), latency, errors, load; then its ratio to `ceiling`."""
    means = {}
    for name, result in measured.items():
        runs = [round(run.requests_per_second, 1) for run in result.runs]
        means[name] = statistics.mean(runs)
        loads = [round(run.load_average, 1) for run in result.runs]
        print(
            f"{name}: {means[name]:.1f} {unit} (runs {runs}), p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms, errors {result.errors}, load {loads}"
        )
    for name, mean in means.items():
        print(f"{name} / {ceiling}: {mean / means[ceiling]:.2f}")


def main(
    description: str | None,
    app_target: str,
    build: BuildTargets,
    openbao: Callable[[servers.OpenBao], Target],
    kind: str,
    unit: str,
    ceiling: str,
) -> None:
    """The command line of a ceiling benchmark (`--serve` is how it serves its own app)."""
    parser = arguments(description)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        from entrypoints.config import Settings
        from entrypoints.server import run_server

        settings = Settings(port=args.port, workers=args.workers, log_level="INFO")
        run_server(settings, target=app_target)
        return
    wrk = servers.ensure_wrk(install=False)
    with tempfile.TemporaryDirectory(prefix=f"{kind}-ceiling-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        ours_url, ceiling_url = stack.enter_context(servers.postgres_databases(None, True, 2))
        targets = build(stack, workdir, ours_url, ceiling_url, args.workers)
        if args.openbao:
            targets.append(openbao(stack.enter_context(servers.openbao_raft(workdir))))
        measured = LoadGenerator(wrk, load_settings(args), workdir).compare(kind, targets)
        report(measured, unit, ceiling)
