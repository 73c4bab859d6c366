# ruff: noqa: S311 - a reproducible order of requests, not security
"""The HTTP workloads: for each, the service's requests and OpenBao's nearest equivalent.

Targets are named: `ours` (this checkout), `before` (another revision, `--compare`), `bao-dev`
(OpenBao's development server: in memory), `bao-raft` (OpenBao on raft storage, on disk) and
`ceiling` (a constant JSON answer under the service's server setup).

OpenBao's KV v2 has one read, by path, so both of the service's reads (by id, by scope path and
name) are compared with it. Its list (`LIST …/metadata/<scope>?limit=100&after=<key>`) answers
names only; the service's page holds each secret's metadata, so OpenBao's closest equivalent is
that LIST and a metadata read for each of the 100 names: `metadata_read` measures the latter, and
the report derives the pair (`list_then_metadata_100`). It has no resolution of a context: the
report sets it against OpenBao serving the same 40 values one read at a time (reads/s ÷ 40).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from benchmarks.dataset import EFFECTIVE_PER_CONTEXT, Dataset, SecretSpec
from benchmarks.load import Request, Target
from benchmarks.seed import OpenBaoCallers, ServiceCallers, bearer
from benchmarks.servers import HarnessError
from core.domain.secrets import ListPosition
from entrypoints.http.cursor import encode_cursor

LIST_PAGE_SIZE = 100
JSON = {"Content-Type": "application/json"}
# The workloads `--compare` runs on both revisions (issue 15's "before and after").
COMPARED = ("read_by_id", "read_by_path", "resolve_40", "list_page_100", "write_version")


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    targets: list[Target]


@dataclass(frozen=True)
class ServiceEndpoint:
    name: str  # "ours" or "before"
    url: str
    callers: ServiceCallers
    ids: dict[str, str]  # kv path -> the secret's id on this server


@dataclass(frozen=True)
class OpenBaoEndpoint:
    name: str  # "bao-dev" or "bao-raft"
    url: str
    callers: OpenBaoCallers


@dataclass(frozen=True)
class Endpoints:
    services: list[ServiceEndpoint]
    openbaos: list[OpenBaoEndpoint]
    ceiling: str | None = None
    compared: tuple[str, ...] = field(default=COMPARED)


def build_workloads(endpoints: Endpoints, dataset: Dataset, seed: int = 11) -> list[Workload]:
    """Reads first, writes last. Writes never touch the secret the reads check, so reads at a
    later size still find its seeded value."""
    rng = random.Random(seed)
    shared = dataset.shared_secrets
    rng.shuffle(shared)
    checked, written = shared[0], shared[1:]
    bulk = dataset.bulk
    bulk_names = sorted(secret.name for secret in dataset.bulk_secrets)
    pages = len(bulk_names) // LIST_PAGE_SIZE  # full pages only
    read_value = expect_value(lambda body: body["value"], checked)
    bao_value = expect_value(lambda body: body["data"]["data"]["value"], checked)

    def ours(service: ServiceEndpoint, workload: str) -> Target | None:
        if service.name != "ours" and workload not in endpoints.compared:
            return None
        reader = bearer(service.callers.reader)
        ids = service.ids
        if workload == "read_by_id":
            calls = [Request("GET", f"/api/v1/secrets/{ids[s.kv_path]}/value") for s in shared]
            return Target(service.name, service.url, reader, calls, check=read_value)
        if workload == "read_by_path":
            calls = [
                Request("GET", f"/api/v1/scopes/{s.scope.type}/{s.scope.id}/secrets/{s.name}/value")
                for s in shared
            ]
            return Target(service.name, service.url, reader, calls, check=read_value)
        if workload == "resolve_40":
            calls = [
                Request("GET", f"/api/v1/resolve?project={quote(project.id)}&include_values=true")
                for project in dataset.projects
            ]
            user = bearer(service.callers.user)
            return Target(service.name, service.url, user, calls, check=resolved_all)
        if workload == "list_page_100":
            listing = f"/api/v1/secrets?scope_type={bulk.type}&scope_id={bulk.id}"
            if service.name == "ours":
                # Keyset pages (`after`, issue #20), as OpenBao's LIST pages: each page starts
                # at its cursor (the previous page's last name; "" for the first), and no total
                # is counted, so a page's cost does not grow with the scope.
                calls = [
                    Request(
                        "GET",
                        f"{listing}&page_size={LIST_PAGE_SIZE}"
                        f"&after={encode_cursor(ListPosition(after)) if after else ''}",
                    )
                    for after in ["", *bulk_names[LIST_PAGE_SIZE - 1 :: LIST_PAGE_SIZE]][:pages]
                ]
            else:  # another revision (`--compare`) may predate `after`: offset pages
                calls = [
                    Request("GET", f"{listing}&page={page}&page_size={LIST_PAGE_SIZE}")
                    for page in range(1, pages + 1)
                ]
            return Target(service.name, service.url, reader, calls, check=listed_a_page)
        if workload == "write_version":
            calls = [
                Request(
                    "POST",
                    f"/api/v1/secrets/{ids[s.kv_path]}/versions",
                    json.dumps({"value": f"{s.values[-1]}-written"}),
                )
                for s in written
            ]
            writer = bearer(service.callers.writer) | JSON
            return Target(service.name, service.url, writer, calls, status=201)
        return None

    def bao(server: OpenBaoEndpoint, workload: str) -> Target | None:
        reader = {"X-Vault-Token": server.callers.reader}
        if workload in ("read_by_id", "read_by_path"):
            calls = [Request("GET", f"/v1/secret/data/{s.kv_path}") for s in shared]
            return Target(server.name, server.url, reader, calls, check=bao_value)
        if workload == "list_page_100":
            afters = ["", *bulk_names[LIST_PAGE_SIZE - 1 :: LIST_PAGE_SIZE]][:pages]
            calls = [
                Request(
                    "GET",
                    f"/v1/secret/metadata/{bulk.kv_path}?list=true&limit={LIST_PAGE_SIZE}"
                    + (f"&after={after}" if after else ""),
                )
                for after in afters
            ]
            return Target(server.name, server.url, reader, calls, check=bao_listed_a_page)
        if workload == "metadata_read":
            calls = [
                Request("GET", f"/v1/secret/metadata/{bulk.kv_path}/{name}") for name in bulk_names
            ]
            return Target(server.name, server.url, reader, calls)
        if workload == "write_version":
            calls = [
                Request(
                    "POST",
                    f"/v1/secret/data/{s.kv_path}",
                    json.dumps({"data": {"value": f"{s.values[-1]}-written"}}),
                )
                for s in written
            ]
            writer = {"X-Vault-Token": server.callers.writer} | JSON
            return Target(server.name, server.url, writer, calls)
        return None

    descriptions = {
        "read_by_id": "GET a secret's current value by id (service account token, reader at "
        "global); OpenBao: GET secret/data/<path>",
        "read_by_path": "GET a value by scope path and name; OpenBao: the same GET",
        "resolve_40": f"GET the {EFFECTIVE_PER_CONTEXT} effective secrets (with values) of a "
        "project context over 5 levels (JWT user, reader at global, own personal scope)",
        "list_page_100": f"GET a page of {LIST_PAGE_SIZE} secrets' metadata of one scope; "
        f"OpenBao: LIST {LIST_PAGE_SIZE} names (limit/after)",
        "metadata_read": "OpenBao only: GET secret/metadata/<path> of a bulk secret (with its "
        "LIST, the equivalent of a page of ours)",
        "write_version": "POST a new version of a secret (service account token, editor at "
        "global); OpenBao: POST secret/data/<path>",
    }
    workloads = []
    for name, description in descriptions.items():
        targets = [ours(service, name) for service in endpoints.services]
        targets += [bao(server, name) for server in endpoints.openbaos]
        if name == "read_by_id" and endpoints.ceiling:
            targets.append(Target("ceiling", endpoints.ceiling, {}, [Request("GET", "/ceiling")]))
        present = [target for target in targets if target is not None]
        if present:
            workloads.append(Workload(name, description, present))
    return workloads


def expect_value(
    value_of: Callable[[dict[str, Any]], str], secret: SecretSpec
) -> Callable[[requests.Response], None]:
    def check(response: requests.Response) -> None:
        if value_of(response.json()) != secret.values[-1]:
            raise HarnessError(f"{secret.kv_path}: the value read is not the seeded one")

    return check


def resolved_all(response: requests.Response) -> None:
    items = response.json()["items"]
    levels = {item["scope"]["type"] for item in items}
    if len(items) != EFFECTIVE_PER_CONTEXT or len(levels) != 5:
        raise HarnessError(f"resolve gave {len(items)} secrets over {sorted(levels)}")
    if any(item["value"] is None for item in items):
        raise HarnessError("resolve left values out")


def listed_a_page(response: requests.Response) -> None:
    if len(response.json()["items"]) != LIST_PAGE_SIZE:
        raise HarnessError("the list page is not full")


def bao_listed_a_page(response: requests.Response) -> None:
    if len(response.json()["data"]["keys"]) != LIST_PAGE_SIZE:
        raise HarnessError("OpenBao's LIST page is not full")
