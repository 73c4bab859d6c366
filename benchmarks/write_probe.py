"""Writes of a new version, measured alone: `secretctl serve` on a durable throwaway PostgreSQL,
wrk sending `POST /api/v1/secrets/{id}/versions` over many secrets (2 threads, 16 connections,
as the benchmark's `write_version`), alternating with another revision when one is given.

    .venv/bin/python -m benchmarks.write_probe [--compare REV] [--rounds 3] [--duration 10]

Prints each run's writes/s and the machine's load; a quick check between the full benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks import servers
from benchmarks.harness import worktree
from benchmarks.load import LoadGenerator, LoadSettings, Measured, Request, Target
from benchmarks.seed import OPENBAO_POLICIES, Api, bearer, identity_token
from tests.support.postgres import free_port

ADMIN = "probe-admin"
SECRETS = 64


def prepare(url: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """An editor token and the ids of `SECRETS` secrets at the global scope."""
    servers.secretctl(env, "admin", "grant", "--principal", f"user:{ADMIN}", "--role", "admin")
    admin = Api(f"{url}/api/v1", bearer(identity_token(ADMIN, env[servers.JWT_KEY_VARIABLE])))
    scope = {"type": "global"}
    account = admin.call("POST", "/service-accounts", 201, json={"name": "w", "scope": scope})
    binding = {"principal": account["principal"], "role": "editor", "scope": scope}
    admin.call("POST", "/role-bindings", 201, json=binding)
    token = admin.call("POST", f"/service-accounts/{account['id']}/tokens", 201, json={})["token"]
    ids = [
        admin.call("POST", "/secrets", 201, json={"name": f"w{n}", "scope": scope, "value": "v"})[
            "id"
        ]
        for n in range(SECRETS)
    ]
    return token, ids


def openbao_target(bao: servers.OpenBao) -> Target:
    """OpenBao raft's side: a writer token (the benchmark's policy), the same number of paths,
    each written once before the load (KV v2 `POST secret/data/<path>`)."""
    root = Api(f"{bao.url}/v1", {"X-Vault-Token": bao.root_token})
    policy = OPENBAO_POLICIES["bench-write"]
    root.call("PUT", "/sys/policies/acl/bench-write", 204, json={"policy": policy})
    body = {"policies": ["bench-write"], "ttl": "2h"}
    token = root.call("POST", "/auth/token/create", json=body)["auth"]["client_token"]
    paths = [f"probe/w{n}" for n in range(SECRETS)]
    for path in paths:
        root.call("POST", f"/secret/data/{path}", json={"data": {"value": "v"}})
    calls = [
        Request("POST", f"/v1/secret/data/{path}", json.dumps({"data": {"value": f"x{path}"}}))
        for path in paths
    ]
    headers = {"X-Vault-Token": token, "Content-Type": "application/json"}
    return Target(bao.label, bao.url, headers, calls)


def service_target(
    stack: ExitStack,
    workdir: Path,
    database_url: str,
    workers: int,
    name: str = "ours",
    checkout: Path | None = None,
) -> Target:
    """`secretctl serve` (of `checkout`, else this tree) on `database_url`, prepared, and the
    writes sent to it: a new version of each of `SECRETS` secrets in turn."""
    env = servers.service_environment(database_url, workdir, free_port(), workers, name)
    process = stack.enter_context(servers.service(env, workdir, name=name, checkout=checkout))
    token, ids = prepare(process.url, env)
    calls = [
        Request("POST", f"/api/v1/secrets/{i}/versions", json.dumps({"value": f"x{i}"}))
        for i in ids
    ]
    headers = bearer(token) | {"Content-Type": "application/json"}
    return Target(name, process.url, headers, calls, status=201)


def report(measured: dict[str, Measured]) -> None:
    """Each target's writes/s (mean and runs), latency, errors and the machine's load."""
    for name, result in measured.items():
        runs = [run.requests_per_second for run in result.runs]
        loads = [run.load_average for run in result.runs]
        print(
            f"{name}: {statistics.mean(runs):.1f} writes/s (runs {runs}), "
            f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
            f"errors {result.errors}, load {loads}"
        )


def arguments(description: str | None = None) -> argparse.ArgumentParser:
    """The load's settings (those of the benchmark's `write_version`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument(
        "--openbao", action="store_true", help="OpenBao raft + file audit too, alternating"
    )
    return parser


def load_settings(args: argparse.Namespace) -> LoadSettings:
    return LoadSettings(2, args.connections, args.duration, 3, args.rounds)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--compare", default=None)
    args = parser.parse_args()
    wrk = servers.ensure_wrk(install=False)
    with tempfile.TemporaryDirectory(prefix="write-probe-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        count = 2 if args.compare else 1
        urls = stack.enter_context(servers.postgres_databases(None, True, count))
        checkouts: list[tuple[str, Path | None]] = [("ours", None)]
        if args.compare:
            checkouts.append(("before", stack.enter_context(worktree(args.compare))))
        targets = [
            service_target(stack, workdir, database_url, args.workers, name, checkout)
            for (name, checkout), database_url in zip(checkouts, urls, strict=True)
        ]
        if args.openbao:
            targets.append(openbao_target(stack.enter_context(servers.openbao_raft(workdir))))
        measured = LoadGenerator(wrk, load_settings(args), workdir).compare("write", targets)
        report(measured)


if __name__ == "__main__":
    main()
