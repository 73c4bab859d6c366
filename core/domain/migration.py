"""Migrations between storage backends, as values: what to move (`MigrationRequest`), what a dry
run finds (`MigrationPlan`, `Misfit`), which versions move, and the job states a run uses. The use
cases are in `core.migration`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from core.domain.jobs import ItemState, JobState
from core.domain.secrets import Secret, SecretVersion, VersionState
from core.domain.values import ScopeRef

MIGRATION = "migration"  # the kind of job
SECRET_ITEM = 0  # the item that stands for the secret itself (its switch)
ACTIVE_STATES = (JobState.PENDING, JobState.RUNNING)


def finished_states(delete_source: bool) -> tuple[ItemState, ...]:
    """The states in which an item needs nothing more of a run."""
    done = (ItemState.SOURCE_REMOVED, ItemState.SKIPPED, ItemState.FAILED)
    return done + (() if delete_source else (ItemState.SWITCHED,))


@dataclass(frozen=True)
class MigrationRequest:
    """Move what `source` holds of the secrets under `scope` (and below), optionally only one
    `environment` and names starting with `prefix`, to `target`."""

    source: str
    target: str
    scope: ScopeRef = field(default_factory=ScopeRef.global_scope)
    environment: str | None = None
    prefix: str | None = None
    all_versions: bool = False
    delete_source: bool = False

    def params(self, scope_path: str) -> dict[str, Any]:
        """The job's parameters (`Job.params`)."""
        return {
            "from": self.source,
            "to": self.target,
            "scope": {"type": self.scope.type.value, "id": self.scope.id},
            "scope_path": scope_path,
            "environment": self.environment,
            "prefix": self.prefix,
            "all_versions": self.all_versions,
            "delete_source": self.delete_source,
        }


@dataclass(frozen=True)
class Misfit:
    """A secret (version) the target cannot take, and why — never the value."""

    secret_id: UUID
    name: str
    version: int | None
    reason: str

    def report(self) -> dict[str, Any]:
        """As the job's report lists it."""
        return {
            "secret_id": str(self.secret_id),
            "name": self.name,
            "version": self.version,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PlannedSecret:
    secret_id: UUID
    name: str
    scope: str
    environment: str | None
    versions: tuple[int, ...]


@dataclass(frozen=True)
class MigrationPlan:
    """A dry run: what a migration would move, and what does not fit the target."""

    request: MigrationRequest
    secrets: tuple[PlannedSecret, ...]
    misfits: tuple[Misfit, ...]

    @property
    def versions(self) -> int:
        return sum(len(planned.versions) for planned in self.secrets)


def versions_to_move(
    secret: Secret, versions: list[SecretVersion], source: str, all_versions: bool
) -> list[SecretVersion]:
    """The versions holding a value on `source` that the migration moves."""
    holding = [
        record
        for record in versions
        if record.backend == source and record.state is not VersionState.DESTROYED
    ]
    if all_versions:
        return holding
    staged = (secret.current_version, secret.pending_version)
    return [record for record in holding if record.version in staged]
