"""Seeding the servers with the same secrets, and the callers the load generator authenticates
as: never a root token (which would skip the access checks).

- The service: an admin granted at the machine (`secretctl admin grant`, as a deployment makes
  its first admin) registers the scopes, two service accounts with API tokens (`reader` and
  `editor` at global) and a `reader` binding for the JWT user whose personal scope is the fifth
  level; the tree's secrets go in over the REST API, 3 versions each. The bulk scope's secrets
  (what grows with the run's sizes) go in with the bulk import (`POST /api/v1/imports`, .env
  files of up to `IMPORT_CHUNK` lines, once per version, strategy `overwrite`).
- OpenBao: the root token writes the same secrets to KV v2 (parallel requests: it has no bulk
  write) and issues two tokens whose policies allow reading (and listing), or writing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from benchmarks.dataset import BENCH_USER, Dataset, SecretSpec
from benchmarks.servers import (
    JWT_AUDIENCE,
    JWT_ISSUER,
    JWT_KEY_VARIABLE,
    HarnessError,
    secretctl,
)

REQUEST_TIMEOUT = 60.0
TOKEN_HOURS = 6
BENCH_ADMIN = "bench-admin"
IMPORT_CHUNK = 10_000  # lines per .env file of the bulk seeding (the service takes 20,000)
IMPORT_TIMEOUT = 1800.0


class Api:
    """A bearer-token client whose sessions are per thread (requests' Session is not shared)."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url = base_url
        self.headers = headers
        self._local = threading.local()

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self.headers)
        response = session.request(
            method, self.base_url + path, timeout=kwargs.pop("timeout", REQUEST_TIMEOUT), **kwargs
        )
        if response.status_code != expect:
            raise HarnessError(
                f"{method} {path} answered {response.status_code}, not {expect}: "
                f"{response.text[:500]}"
            )
        return response.json() if response.content else None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def identity_token(subject: str, key: str) -> str:
    """A JWT of the benchmark's identity provider (HS256, shared key), valid for hours."""
    now = int(time.time())
    claims = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": subject, "groups": []}
    return jwt.encode(claims | {"iat": now, "exp": now + TOKEN_HOURS * 3600}, key, "HS256")


def in_parallel(
    task: Callable[[SecretSpec], None], items: Iterable[SecretSpec], threads: int
) -> None:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(task, items):  # re-raises the first failure
            pass


@dataclass(frozen=True)
class ServiceCallers:
    admin: str  # JWT of user:bench-admin, admin at global (seeding, audit verify)
    reader: str  # API token of service:bench-reader, reader at global
    writer: str  # API token of service:bench-writer, editor at global
    user: str  # JWT of user:bench-user, reader at global and owner of its personal scope


def seed_service(
    url: str, env: dict[str, str], dataset: Dataset, threads: int, ids: dict[str, str]
) -> ServiceCallers:
    """Seed the service with the tree's secrets; fills `ids` (kv path -> the secret's id)."""
    secretctl(env, "admin", "grant", "--principal", f"user:{BENCH_ADMIN}", "--role", "admin")
    admin_jwt = identity_token(BENCH_ADMIN, env[JWT_KEY_VARIABLE])
    user_jwt = identity_token(BENCH_USER, env[JWT_KEY_VARIABLE])
    admin = Api(f"{url}/api/v1", bearer(admin_jwt))
    for scope in dataset.scopes:
        assert scope.parent is not None
        admin.call("POST", "/scopes", 201, json={**scope.ref(), "parent": scope.parent.ref()})
    global_scope = {"type": "global"}
    admin.call(
        "POST",
        "/role-bindings",
        201,
        json={"principal": f"user:{BENCH_USER}", "role": "reader", "scope": global_scope},
    )
    tokens = {}
    for name, role in (("bench-reader", "reader"), ("bench-writer", "editor")):
        account = admin.call(
            "POST", "/service-accounts", 201, json={"name": name, "scope": global_scope}
        )
        binding = {"principal": account["principal"], "role": role, "scope": global_scope}
        admin.call("POST", "/role-bindings", 201, json=binding)
        tokens[role] = admin.call("POST", f"/service-accounts/{account['id']}/tokens", 201, json={})
    user = Api(f"{url}/api/v1", bearer(user_jwt))

    def create(secret: SecretSpec) -> None:
        api = user if secret.personal else admin
        body = {"name": secret.name, "scope": secret.scope.ref(), "value": secret.values[0]}
        secret_id = api.call("POST", "/secrets", 201, json=body)["id"]
        for value in secret.values[1:]:
            api.call("POST", f"/secrets/{secret_id}/versions", 201, json={"value": value})
        ids[secret.kv_path] = secret_id

    # The personal scope is made on its first use; two first uses at once race (409).
    tree = dataset.tree_secrets
    first_personal = next(secret for secret in tree if secret.personal)
    create(first_personal)
    rest = [secret for secret in tree if secret is not first_personal]
    in_parallel(create, rest, threads)
    return ServiceCallers(
        admin=admin_jwt,
        reader=tokens["reader"]["token"],
        writer=tokens["editor"]["token"],
        user=user_jwt,
    )


def seed_service_bulk(url: str, admin_token: str, secrets: Sequence[SecretSpec]) -> None:
    """Import `secrets` (all of one scope, which exists) with the service's bulk import: a
    .env file per `IMPORT_CHUNK` secrets and version, oldest version first."""
    if not secrets:
        return
    scope = secrets[0].scope
    session = requests.Session()
    session.headers.update(bearer(admin_token))
    form = {"scope_type": scope.type, "scope_id": scope.id, "format": "dotenv"}
    for version in range(len(secrets[0].values)):
        for start in range(0, len(secrets), IMPORT_CHUNK):
            chunk = secrets[start : start + IMPORT_CHUNK]
            content = "".join(f"{secret.name}={secret.values[version]}\n" for secret in chunk)
            response = session.post(
                f"{url}/api/v1/imports",
                data=form | {"strategy": "overwrite"},
                files={"file": ("bulk.env", content.encode(), "text/plain")},
                timeout=IMPORT_TIMEOUT,
            )
            if response.status_code != 200:
                raise HarnessError(
                    f"bulk import answered {response.status_code}: {response.text[:500]}"
                )


@dataclass(frozen=True)
class OpenBaoCallers:
    reader: str  # policy: read secret/data/*, list and read secret/metadata/*
    writer: str  # policy: create and update secret/data/*


OPENBAO_POLICIES = {
    "bench-read": 'path "secret/data/*" { capabilities = ["read"] }\n'
    'path "secret/metadata/*" { capabilities = ["list", "read"] }\n',
    "bench-write": 'path "secret/data/*" { capabilities = ["create", "update", "read"] }\n',
}


def seed_openbao(
    url: str, root_token: str, secrets: Sequence[SecretSpec], threads: int
) -> OpenBaoCallers:
    """Policies, `secrets` (all their versions) and the two callers' tokens."""
    root = Api(f"{url}/v1", {"X-Vault-Token": root_token})
    for name, policy in OPENBAO_POLICIES.items():
        root.call("PUT", f"/sys/policies/acl/{name}", 204, json={"policy": policy})
    seed_openbao_secrets(url, root_token, secrets, threads)

    def token(policy: str) -> str:
        body = {"policies": [policy], "ttl": f"{TOKEN_HOURS}h"}
        return str(root.call("POST", "/auth/token/create", json=body)["auth"]["client_token"])

    return OpenBaoCallers(reader=token("bench-read"), writer=token("bench-write"))


def seed_openbao_secrets(
    url: str, root_token: str, secrets: Sequence[SecretSpec], threads: int
) -> None:
    """As fast as its API goes: `threads` parallel writers, a version per request."""
    root = Api(f"{url}/v1", {"X-Vault-Token": root_token})

    def write(secret: SecretSpec) -> None:
        for value in secret.values:
            root.call("POST", f"/secret/data/{secret.kv_path}", json={"data": {"value": value}})

    in_parallel(write, secrets, threads)
