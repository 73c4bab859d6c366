# ruff: noqa: S311 - a reproducible order of requests, not security
"""The HTTP workloads: for each, the service's requests and OpenBao's nearest equivalent.

OpenBao's KV v2 has one read, by path, so both of the service's reads (by id, by scope path and
name) are compared with it; its list answers the names under a path (no metadata, no pages);
it has no resolution of a context, so that workload has no OpenBao side.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import requests

from benchmarks.dataset import EFFECTIVE_PER_CONTEXT, Dataset, SecretSpec
from benchmarks.load import Request, Target
from benchmarks.seed import OpenBaoCallers, ServiceCallers, bearer
from benchmarks.servers import HarnessError

LIST_PAGE_SIZE = 100
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    ours: Target
    openbao: Target | None
    ceiling: Target | None = None


@dataclass(frozen=True)
class Endpoints:
    service: str
    openbao: str
    ceiling: str
    service_callers: ServiceCallers
    openbao_callers: OpenBaoCallers


def build_workloads(endpoints: Endpoints, dataset: Dataset, seed: int = 11) -> list[Workload]:
    """Reads first, writes last: the reads then check the values the seeding wrote."""
    rng = random.Random(seed)
    shared = dataset.shared_secrets
    rng.shuffle(shared)
    ours, bao = endpoints.service_callers, endpoints.openbao_callers
    service_reader = bearer(ours.reader)
    bao_reader = {"X-Vault-Token": bao.reader}

    def bao_read() -> Target:
        return Target(
            "openbao",
            endpoints.openbao,
            bao_reader,
            [Request("GET", f"/v1/secret/data/{secret.kv_path}") for secret in shared],
            check=expect_value(lambda body: body["data"]["data"]["value"], shared[0]),
        )

    by_id = [Request("GET", f"/api/v1/secrets/{dataset.ids[s.kv_path]}/value") for s in shared]
    by_path = [
        Request("GET", f"/api/v1/scopes/{s.scope.type}/{s.scope.id}/secrets/{s.name}/value")
        for s in shared
    ]
    pages = -(-len(dataset.bulk_secrets) // LIST_PAGE_SIZE)
    bulk = dataset.bulk
    lists = [
        Request(
            "GET",
            f"/api/v1/secrets?scope_type={bulk.type}&scope_id={bulk.id}"
            f"&page={page}&page_size={LIST_PAGE_SIZE}",
        )
        for page in range(1, pages + 1)
    ]
    contexts = [
        Request("GET", f"/api/v1/resolve?project={quote(project.id)}&include_values=true")
        for project in dataset.projects
    ]
    writes = [
        Request(
            "POST",
            f"/api/v1/secrets/{dataset.ids[s.kv_path]}/versions",
            json.dumps({"value": f"{s.values[-1]}-written"}),
        )
        for s in shared
    ]
    bao_writes = [
        Request(
            "POST",
            f"/v1/secret/data/{s.kv_path}",
            json.dumps({"data": {"value": f"{s.values[-1]}-written"}}),
        )
        for s in shared
    ]
    read_value = expect_value(lambda body: body["value"], shared[0])
    return [
        Workload(
            "read_by_id",
            "GET a secret's current value by id (service account token, reader at global)",
            Target("ours", endpoints.service, service_reader, by_id, check=read_value),
            bao_read(),
            Target("ceiling", endpoints.ceiling, {}, [Request("GET", "/ceiling")]),
        ),
        Workload(
            "read_by_path",
            "GET a value by scope path and name",
            Target("ours", endpoints.service, service_reader, by_path, check=read_value),
            bao_read(),
        ),
        Workload(
            "resolve_40",
            f"GET the {EFFECTIVE_PER_CONTEXT} effective secrets (with values) of a project "
            "context over 5 levels (JWT user, reader at global, own personal scope)",
            Target("ours", endpoints.service, bearer(ours.user), contexts, check=resolved_all),
            None,
        ),
        Workload(
            "list_page_100",
            f"GET a page of {LIST_PAGE_SIZE} secrets' metadata of one scope "
            "(OpenBao: LIST the names under the scope's path)",
            Target("ours", endpoints.service, service_reader, lists, check=listed_a_page),
            Target(
                "openbao",
                endpoints.openbao,
                bao_reader,
                [Request("GET", f"/v1/secret/metadata/{bulk.kv_path}?list=true")],
            ),
        ),
        Workload(
            "write_version",
            "POST a new version of a secret (service account token, editor at global)",
            Target("ours", endpoints.service, bearer(ours.writer) | JSON, writes, status=201),
            Target("openbao", endpoints.openbao, {"X-Vault-Token": bao.writer} | JSON, bao_writes),
        ),
    ]


def expect_value(
    value_of: Callable[[dict], str], secret: SecretSpec
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
