# ruff: noqa: S311 - reproducible test data, not security
"""The data set both servers are seeded with: a 5-level scope tree and its secrets.

global → organizations → teams → projects, plus the benchmark user's personal scope. Every scope
on a project's path holds the same 12 names: 5 shared by every level (the most specific wins)
and 7 of its own level, so resolving any project for the user yields 5 + 5 * 7 = 40 effective
secrets over the 5 levels. The rest of the secrets fill one more project, `p-bulk`, whose
metadata the list workload pages through. Every secret has `VERSIONS` versions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

VERSIONS = 3
SHARED_NAMES = tuple(f"SHARED_{n:02d}" for n in range(5))
OWN_NAMES_PER_LEVEL = 7
EFFECTIVE_PER_CONTEXT = len(SHARED_NAMES) + 5 * OWN_NAMES_PER_LEVEL  # 40
BENCH_USER = "bench-user"
BULK_PROJECT = "p-bulk"


@dataclass(frozen=True)
class Scope:
    type: str
    id: str
    parent: Scope | None = None

    def ref(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}

    @property
    def kv_path(self) -> str:
        """Where this scope's secrets live in OpenBao's KV v2 mount."""
        return f"{self.type}/{self.id}"


GLOBAL = Scope("global", "global")


@dataclass(frozen=True)
class SecretSpec:
    scope: Scope
    name: str
    values: tuple[str, ...]  # one per version, oldest first

    @property
    def kv_path(self) -> str:
        return f"{self.scope.kv_path}/{self.name}"

    @property
    def personal(self) -> bool:
        return self.scope.type == "user"


@dataclass(frozen=True)
class TreeShape:
    organizations: int
    teams_per_organization: int
    projects_per_team: int


@dataclass
class Dataset:
    scopes: list[Scope]  # to register, parents first (global and the user's are implicit)
    secrets: list[SecretSpec]
    projects: list[Scope]  # the resolve contexts
    bulk: Scope
    user_scope: Scope

    @property
    def tree_secrets(self) -> list[SecretSpec]:
        """The 12 secrets of each scope on the tree: the same at every size."""
        return [secret for secret in self.secrets if secret.scope != self.bulk]

    def at(self, size: int) -> Dataset:
        """The data set of `size` secrets: the tree's, and the first of the bulk scope's."""
        tree = self.tree_secrets
        if size - len(tree) < 100:
            raise ValueError(f"{size} secrets leave fewer than 100 for the list workload")
        bulk = self.bulk_secrets[: size - len(tree)]
        if len(tree) + len(bulk) != size:
            raise ValueError(f"the data set was built for fewer than {size} secrets")
        return replace(self, secrets=[*tree, *bulk])

    @property
    def shared_secrets(self) -> list[SecretSpec]:
        """Secrets outside the personal scope: what a service account can read."""
        return [secret for secret in self.secrets if not secret.personal]

    @property
    def bulk_secrets(self) -> list[SecretSpec]:
        return [secret for secret in self.secrets if secret.scope == self.bulk]


def build_dataset(total: int, shape: TreeShape, seed: int = 7) -> Dataset:
    """The tree of `shape` and `total` secrets (at least the 12 per scope on the tree)."""
    rng = random.Random(seed)
    organizations, teams, projects = [], [], []
    for o in range(shape.organizations):
        organization = Scope("organization", f"o-{o}", GLOBAL)
        organizations.append(organization)
        for t in range(shape.teams_per_organization):
            team = Scope("team", f"t-{o}-{t}", organization)
            teams.append(team)
            projects += [
                Scope("project", f"p-{o}-{t}-{p}", team) for p in range(shape.projects_per_team)
            ]
    user_scope = Scope("user", BENCH_USER, GLOBAL)
    bulk = Scope("project", BULK_PROJECT, teams[0])

    def spec(scope: Scope, name: str) -> SecretSpec:
        values = tuple(
            f"bench-{scope.type}-{scope.id}-{name}-v{version}-{rng.getrandbits(64):016x}"
            for version in range(1, VERSIONS + 1)
        )
        return SecretSpec(scope, name, values)

    secrets = []
    for scope in [GLOBAL, *organizations, *teams, *projects, user_scope]:
        own = [f"{scope.type.upper()}_{n:02d}" for n in range(OWN_NAMES_PER_LEVEL)]
        secrets += [spec(scope, name) for name in (*SHARED_NAMES, *own)]
    if total - len(secrets) < 100:
        raise ValueError(
            f"{total} secrets leave fewer than 100 for the list workload's page after the "
            f"{len(secrets)} of the tree"
        )
    secrets += [spec(bulk, f"BULK_{n:06d}") for n in range(total - len(secrets))]
    return Dataset(
        scopes=[*organizations, *teams, *projects, bulk],
        secrets=secrets,
        projects=projects,
        bulk=bulk,
        user_scope=user_scope,
    )
