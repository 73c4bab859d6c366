"""The ceiling of an audited list page in this stack on this machine, beside the service's list
and OpenBao raft's `LIST`.

Three targets under the same wrk settings (those of `benchmarks.write_probe`), alternating:

- `ours`: `secretctl serve` as deployed, a page of 100 secrets' metadata of one scope of
  `SECRETS` secrets, by keyset cursor (`after`), as a reader service account;
- `list ceiling`: a minimal Flask app served like the service (`entrypoints.server.run_server`:
  granian, the same workers and threads) doing only what an audited metadata page must: in one
  transaction, SELECT the 100 rows after a name from an index (the columns the service answers),
  INSERT one audit row, COMMIT, and answer the rows as JSON. It is given every advantage: no
  authentication, no authorization, no objects between the rows and the JSON, and its COMMIT
  does not wait for the disk (`synchronous_commit = off`; the service's audit event is durable
  before its answer leaves). No list of the service can be faster than this one;
- `bao-raft` (with `--openbao`): OpenBao with integrated storage and a file audit device, `LIST`
  of 100 keys of the same number (`limit`, `after`), with a read-and-list policy.

    .venv/bin/python -m benchmarks.list_ceiling [--openbao] [--rounds 3] [--duration 8]
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, request
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Identity,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    insert,
    select,
    text,
)

from adapters.db.engine import create_engine_from_url
from benchmarks import ceilings, servers
from benchmarks.ceilings import ceiling_app, ceiling_process
from benchmarks.load import Request, Target
from benchmarks.seed import OPENBAO_POLICIES, Api, bearer, identity_token
from tests.support.postgres import free_port

ADMIN = "list-admin"
SECRETS = 300
PAGE = 100
DATABASE_VARIABLE = "LIST_CEILING_DATABASE_URL"
schema = MetaData()
# A benchmark's scratch tables, in a database of their own on the throwaway cluster: the
# columns of a secret's metadata as the list answers them, and an audit row.
listed = Table(
    "bench_list_ceiling",
    schema,
    Column("id", Uuid, primary_key=True),
    Column("scope_type", String(16), nullable=False),
    Column("scope_id", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("environment", String(64)),
    Column("type", String(32), nullable=False),
    Column("description", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("consumer", String(128)),
    Column("backend", String(64), nullable=False),
    Column("current_version", Integer, nullable=False),
    Column("max_versions", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("revision", Integer, nullable=False),
)
audited = Table(
    "bench_list_ceiling_audit",
    schema,
    Column("seq", Integer, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("resource", String(255), nullable=False),
    Column("request_id", String(64), nullable=False),
)
PAGE_QUERY = (
    select(listed)
    .where(listed.c.scope_type == "project", listed.c.scope_id == "p-list")
    .order_by(listed.c.name)
    .limit(PAGE + 1)
)


def create_list_ceiling_app() -> Flask:
    app, engine = ceiling_app("list_ceiling", DATABASE_VARIABLE)

    @app.get("/ceiling/list")
    def page() -> dict[str, Any]:
        after = request.args.get("after", "")
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SET LOCAL synchronous_commit = off"))
            rows = connection.execute(PAGE_QUERY.where(listed.c.name > after)).all()
            connection.execute(
                insert(audited),
                {
                    "at": datetime.now(UTC),
                    "actor": "service:ceiling",
                    "action": "secret.list",
                    "resource": "scope:project/p-list",
                    "request_id": uuid.uuid4().hex,
                },
            )
        items = [
            {
                "id": str(row.id),
                "name": row.name,
                "scope": {"type": row.scope_type, "id": row.scope_id},
                "environment": row.environment,
                "type": row.type,
                "description": row.description,
                "tags": row.tags,
                "consumer": row.consumer,
                "backend": row.backend,
                "current_version": row.current_version,
                "max_versions": row.max_versions,
                "created_at": row.created_at.isoformat(),
                "created_by": row.created_by,
                "updated_at": row.updated_at.isoformat(),
                "updated_by": row.updated_by,
                "revision": row.revision,
                "reference": f"secret://project/p-list/{row.name}",
            }
            for row in rows[:PAGE]
        ]
        more = len(rows) > PAGE
        return {"items": items, "next": items[-1]["name"] if more else None}

    return app


def names() -> list[str]:
    return [f"LIST_{n:04d}" for n in range(SECRETS)]


def afters() -> list[str]:
    """Where each page starts: nothing, then the last name of each full page before it."""
    return ["", *names()[PAGE - 1 : -1 : PAGE]]


def seed(database_url: str) -> None:
    """The scratch tables, `SECRETS` rows in one scope and the index the page is read from."""
    engine = create_engine_from_url(database_url, track_changes=False)
    now = datetime.now(UTC)
    row = {
        "scope_type": "project",
        "scope_id": "p-list",
        "environment": None,
        "type": "generic",
        "description": "a database password",
        "tags": {"team": "payments"},
        "consumer": None,
        "backend": "local",
        "current_version": 3,
        "max_versions": None,
        "created_at": now,
        "created_by": "user:admin",
        "updated_at": now,
        "updated_by": "user:admin",
        "revision": 3,
    }
    try:
        schema.create_all(engine)
        with engine.begin() as connection:
            rows = [row | {"id": uuid.uuid4(), "name": name} for name in names()]
            connection.execute(insert(listed), rows)
            connection.execute(
                text(
                    "CREATE INDEX bench_list_ceiling_page "
                    "ON bench_list_ceiling (scope_type, scope_id, name)"
                )
            )
    finally:
        engine.dispose()


@contextmanager
def ceiling_server(database_url: str, workers: int, workdir: Path) -> Iterator[Target]:
    seed(database_url)
    module = "benchmarks.list_ceiling"
    with ceiling_process(module, DATABASE_VARIABLE, database_url, workers, workdir) as process:
        calls = [Request("GET", f"/ceiling/list?after={after}") for after in afters()]
        yield Target("list ceiling", process.url, {}, calls)


def service_target(stack: ExitStack, workdir: Path, database_url: str, workers: int) -> Target:
    """`secretctl serve` with `SECRETS` secrets in one project scope; keyset pages of 100."""
    env = servers.service_environment(database_url, workdir, free_port(), workers)
    process = stack.enter_context(servers.service(env, workdir))
    servers.secretctl(env, "admin", "grant", "--principal", f"user:{ADMIN}", "--role", "admin")
    admin = Api(
        f"{process.url}/api/v1", bearer(identity_token(ADMIN, env[servers.JWT_KEY_VARIABLE]))
    )
    admin.call(
        "POST",
        "/scopes",
        201,
        json={"type": "organization", "id": "o-list", "parent": {"type": "global"}},
    )
    scope = {"type": "project", "id": "p-list", "parent": {"type": "organization", "id": "o-list"}}
    for name in names():
        body = {"name": name, "scope": scope, "value": "v", "description": "a database password"}
        admin.call("POST", "/secrets", 201, json=body | {"tags": {"team": "payments"}})
    glob = {"type": "global"}
    account = admin.call("POST", "/service-accounts", 201, json={"name": "l", "scope": glob})
    binding = {"principal": account["principal"], "role": "reader", "scope": glob}
    admin.call("POST", "/role-bindings", 201, json=binding)
    token = admin.call("POST", f"/service-accounts/{account['id']}/tokens", 201, json={})["token"]
    reader = Api(f"{process.url}/api/v1", bearer(token))
    listing = "/secrets?scope_type=project&scope_id=p-list&page_size=100"
    cursors = [""]
    while len(cursors) < len(afters()):
        cursors.append(reader.call("GET", f"{listing}&after={cursors[-1]}")["next"])
    calls = [Request("GET", f"/api/v1{listing}&after={cursor}") for cursor in cursors]
    return Target("ours", process.url, bearer(token), calls)


def openbao_target(bao: servers.OpenBao) -> Target:
    root = Api(f"{bao.url}/v1", {"X-Vault-Token": bao.root_token})
    root.call(
        "PUT", "/sys/policies/acl/bench-read", 204, json={"policy": OPENBAO_POLICIES["bench-read"]}
    )
    body = {"policies": ["bench-read"], "ttl": "2h"}
    token = root.call("POST", "/auth/token/create", json=body)["auth"]["client_token"]
    for name in names():
        root.call("POST", f"/secret/data/list/{name}", json={"data": {"value": "v"}})
    calls = [
        Request(
            "GET",
            f"/v1/secret/metadata/list?list=true&limit={PAGE}" + (f"&after={a}" if a else ""),
        )
        for a in afters()
    ]
    return Target(bao.label, bao.url, {"X-Vault-Token": token}, calls)


def targets(
    stack: ExitStack, workdir: Path, ours_url: str, ceiling_url: str, workers: int
) -> list[Target]:
    return [
        service_target(stack, workdir, ours_url, workers),
        stack.enter_context(ceiling_server(ceiling_url, workers, workdir)),
    ]


if __name__ == "__main__":
    ceilings.main(
        __doc__,
        "benchmarks.list_ceiling:create_list_ceiling_app",
        targets,
        openbao_target,
        "list",
        "pages/s",
        "list ceiling",
    )
