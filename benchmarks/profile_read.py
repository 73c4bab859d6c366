"""Profile one request of the hot path in-process: what it costs and how many SQL statements it
runs. Not the benchmark (that is `python -m benchmarks`): a tool to see where a request's time
goes, against a throwaway PostgreSQL (durable settings) and the real app.

    .venv/bin/python -m benchmarks.profile_read [--requests 2000] [--profile] [--workload read]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.support.postgres import NO_DURABILITY, throwaway_postgres

ROOT = "profile-root-token-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--workload", choices=("read", "path", "resolve", "list", "write"))
    parser.add_argument(
        "--no-durability", action="store_true", help="fsync off: what the request costs in CPU"
    )
    parser.add_argument("--database-url", help="an existing database instead of a new cluster")
    args = parser.parse_args()
    if args.database_url:
        run(args, args.database_url)
        return
    with throwaway_postgres(NO_DURABILITY if args.no_durability else ()) as url:
        run(args, url)


def run(args: argparse.Namespace, database_url: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="profile-read-"))
    settings = Settings(
        data_dir=workdir,
        database_url=database_url,
        dev_root_token=ROOT,
        keys={"provider": "file", "path": str(workdir / "master.key")},
        log_level="WARNING",
    )
    from entrypoints.server import prepare

    prepare(settings, migrate=True)
    app = create_app(settings)
    client = app.test_client()
    token, requests = seed(client, args.workload or "read")
    statements: Counter[str] = Counter()
    engine = app.extensions["container"].engine()

    spent: Counter[str] = Counter()
    begun: list[float] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements[statement.split()[0].upper()] += 1
        begun.append(time.perf_counter())

    def timed(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        spent[" ".join(statement.split())[:70]] += time.perf_counter() - begun.pop()

    headers = {"Authorization": f"Bearer {token}"}
    for method, path, body in requests[:50]:  # warm up caches and the pool
        client.open(path, method=method, headers=headers, json=body)
    event.listen(engine, "before_cursor_execute", count)
    event.listen(engine, "after_cursor_execute", timed)
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for index in range(args.requests):
        method, path, body = requests[index % len(requests)]
        response = client.open(path, method=method, headers=headers, json=body)
        if response.status_code >= 300:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.get_json()}")
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    event.remove(engine, "before_cursor_execute", count)
    event.remove(engine, "after_cursor_execute", timed)
    per = elapsed / args.requests * 1000
    print(f"{args.requests} requests: {per:.3f} ms each ({args.requests / elapsed:.0f}/s)")
    total = sum(statements.values()) / args.requests
    detail = ", ".join(f"{k} {v / args.requests:.2f}" for k, v in statements.most_common())
    print(f"SQL statements per request: {total:.2f} ({detail})")
    for statement, seconds in spent.most_common(8):
        print(f"  {seconds / args.requests * 1000:.3f} ms  {statement}")
    if profiler:
        stats = pstats.Stats(profiler)
        by_package: Counter[str] = Counter()
        for (filename, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            by_package[package_of(filename)] += own
        for package, seconds in by_package.most_common(14):
            print(f"  {seconds / args.requests * 1000:.3f} ms in {package}")
        stats.sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(45)
        if os.environ.get("PROFILE_CALLERS"):  # e.g. "hostname|_has_code_flag": who calls them
            stats.print_callers(os.environ["PROFILE_CALLERS"])
    app.extensions["container"].shutdown_resources()


def package_of(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    if "/work/" in filename:
        return "/".join(filename.split("/")[3:5])
    return "python" if filename.startswith("/") else filename


def seed(client: Any, workload: str) -> tuple[str, list[tuple[str, str, Any]]]:
    """A project with 40 secrets over 5 levels and a service account that may read them."""
    root = {"Authorization": f"Bearer {ROOT}"}

    def call(method: str, path: str, body: Any = None) -> Any:
        response = client.open(f"/api/v1{path}", method=method, headers=root, json=body)
        assert response.status_code < 300, (path, response.get_json())
        return response.get_json()

    chain = [("organization", "o1"), ("team", "t1"), ("project", "p1")]
    parent = {"type": "global", "id": "global"}
    for kind, scope_id in chain:
        call("POST", "/scopes", {"type": kind, "id": scope_id, "parent": parent})
        parent = {"type": kind, "id": scope_id}
    ids = []
    levels = [("global", None), *chain]
    for number in range(40):
        kind, scope_id = levels[number % len(levels)]
        body: dict[str, Any] = {"name": f"S_{number:02d}", "value": os.urandom(16).hex()}
        body["scope"] = {"type": kind} if scope_id is None else {"type": kind, "id": scope_id}
        ids.append(call("POST", "/secrets", body)["id"])
    global_scope = {"type": "global"}
    account = call("POST", "/service-accounts", {"name": "reader", "scope": global_scope})
    binding = {"principal": account["principal"], "role": "editor", "scope": global_scope}
    call("POST", "/role-bindings", binding)
    token = call("POST", f"/service-accounts/{account['id']}/tokens", {})["token"]
    project = "/api/v1/scopes/project/p1/secrets"
    if workload == "read":
        return token, [("GET", f"/api/v1/secrets/{i}/value", None) for i in ids]
    if workload == "path":
        return token, [("GET", f"{project}/S_{n:02d}/value", None) for n in range(3, 40, 4)]
    if workload == "resolve":
        query = "project=p1&include_values=true"
        return token, [("GET", f"/api/v1/resolve?{query}", None)]
    if workload == "list":
        return token, [("GET", "/api/v1/secrets?scope_type=global&page_size=100", None)]
    writes = [
        ("POST", f"/api/v1/secrets/{i}/versions", {"value": os.urandom(8).hex()}) for i in ids
    ]
    return token, writes


if __name__ == "__main__":
    main()
