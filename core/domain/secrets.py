"""Secrets and their immutable versions: the stage labels, validity, what a listing asks for,
and a value read's answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from core.domain.errors import Expired, NotYetValid, VersionUnavailable
from core.domain.values import Principal, ScopeRef, SecretValue

CONSUMERS = (
    "mcp_server",
    "llm_model",
    "cloud_integration",
    "git_provider",
    "database",
    "cicd",
    "environment",
    "other",
)


class VersionState(enum.StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    DESTROYED = "destroyed"


class Stage(enum.StrEnum):
    """A version's label, as AWS's AWSCURRENT / AWSPREVIOUS / AWSPENDING."""

    CURRENT = "current"
    PREVIOUS = "previous"
    PENDING = "pending"


@dataclass(frozen=True)
class Secret:
    """A named secret's metadata. Its values live in a storage backend, one per version.

    `environment` is None for a secret that applies to every environment. `revision` grows with
    every change and is what check-and-set (ETag / If-Match) compares. The stage labels are
    pointers to version numbers: `current_version`, `previous_version` (the one it replaced) and
    `pending_version` (a rotation's new value until it is promoted); `latest_version` is the
    highest number given out, so the next version is always `latest_version + 1`.
    """

    id: UUID
    scope: ScopeRef
    name: str
    backend: str
    created_at: datetime
    created_by: str
    environment: str | None = None
    scope_path: str = ""
    type: str = "generic"
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    consumer: str = "other"
    current_version: int = 0
    expires_at: datetime | None = None
    not_before: datetime | None = None
    max_versions: int | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    deleted_at: datetime | None = None
    purge_after: datetime | None = None
    revision: int = 1
    latest_version: int = 0
    previous_version: int | None = None
    pending_version: int | None = None

    def __post_init__(self) -> None:
        # No number at or below the current one is ever free again.
        if self.latest_version < self.current_version:
            object.__setattr__(self, "latest_version", self.current_version)

    @classmethod
    def of_stored(cls, values: dict[str, Any]) -> Secret:
        """The secret a store holds, from every field's value: built without the frozen
        dataclass's field-by-field `__init__`, three times slower (a listing builds hundreds).
        `values` becomes the secret's own: the caller builds it for this and keeps no hold."""
        if len(values) != len(_SECRET_FIELDS) or not _SECRET_FIELDS.issuperset(values):
            raise TypeError(f"Secret.of_stored takes every field: {sorted(_SECRET_FIELDS)}")
        secret = object.__new__(cls)
        object.__setattr__(secret, "__dict__", values)  # a new object: nothing is changed
        secret.__post_init__()
        return secret

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def stage_of(self, version: int) -> Stage | None:
        if version == self.current_version:
            return Stage.CURRENT
        if version == self.pending_version:
            return Stage.PENDING
        if version == self.previous_version:
            return Stage.PREVIOUS
        return None

    # -- changes: each gives the secret at its next revision (what check-and-set compares) ---

    def changed(self, actor: Principal, now: datetime, **changes: Any) -> Secret:
        """This secret with `changes`, at its next revision, updated by `actor` at `now`."""
        return replace(
            self, **changes, revision=self.revision + 1, updated_at=now, updated_by=actor.id
        )

    def with_new_version(
        self, number: int, actor: Principal, now: datetime, **changes: Any
    ) -> Secret:
        """Version `number` (the newest) made current; the current one becomes previous."""
        return self.changed(
            actor,
            now,
            current_version=number,
            latest_version=number,
            previous_version=self.current_version,
            **changes,
        )

    def with_pending_version(self, number: int, actor: Principal, now: datetime) -> Secret:
        """Version `number` (the newest) labelled pending: a rotation's value until promoted."""
        return self.changed(actor, now, pending_version=number, latest_version=number)

    def with_promoted_version(
        self, number: int, actor: Principal, now: datetime, **changes: Any
    ) -> Secret:
        """Version `number` (the pending one) promoted to current; the current one becomes
        previous and nothing is pending any more."""
        return self.changed(
            actor,
            now,
            current_version=number,
            previous_version=self.current_version,
            pending_version=None,
            **changes,
        )

    def without_pending(self, actor: Principal, now: datetime) -> Secret:
        """No version pending any more (an abandoned rotation's)."""
        return self.changed(actor, now, pending_version=None)

    def soft_delete(self, actor: Principal, now: datetime, retention: timedelta) -> Secret:
        """Hidden, its name still reserved, purged once `retention` is over."""
        return self.changed(actor, now, deleted_at=now, purge_after=now + retention)

    def restore(self, actor: Principal, now: datetime) -> Secret:
        """A soft-deleted secret live again."""
        return self.changed(actor, now, deleted_at=None, purge_after=None)

    def close_retention(self, now: datetime) -> Secret:
        """The retention window ended at `now`, so a purge may start (and a restore is refused);
        who changed the secret and when are left as they were."""
        return replace(self, purge_after=now, revision=self.revision + 1)


@dataclass(frozen=True)
class SecretVersion:
    """One immutable value of a secret, stored in `backend` under `locator`.

    Its state and validity may change; its value never does. `disable_at` ends the grace period
    of a version a rotation replaced. `stage` is derived from the secret's labels when a version
    is read (and ignored when one is written).
    """

    secret_id: UUID
    version: int
    backend: str
    locator: str
    checksum: str
    created_at: datetime
    created_by: str
    state: VersionState = VersionState.ENABLED
    expires_at: datetime | None = None
    not_before: datetime | None = None
    disable_at: datetime | None = None
    stage: Stage | None = field(default=None, compare=False)
    # The value's stored form (a ciphertext), when it came with the metadata in one round trip
    # from a backend that keeps values in the service's own database; never the value itself.
    stored: bytes | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of_stored(cls, values: dict[str, Any]) -> SecretVersion:
        """The version a store holds, as `Secret.of_stored` builds a secret; `stage` and
        `stored` may be left out (None)."""
        values.setdefault("stage", None)
        values.setdefault("stored", None)
        if len(values) != len(_VERSION_FIELDS) or not _VERSION_FIELDS.issuperset(values):
            raise TypeError(f"SecretVersion.of_stored takes every field: {sorted(_VERSION_FIELDS)}")
        record = object.__new__(cls)
        object.__setattr__(record, "__dict__", values)  # a new object: nothing is changed
        return record

    def check_servable(self, secret: Secret, now: datetime) -> None:
        """Raise why this version of `secret` may not be served at `now`: not enabled
        (`VersionUnavailable`), its grace period after a rotation over (`VersionUnavailable`),
        expired (`Expired`) or not yet valid (`NotYetValid`), by the secret's validity or its
        own."""
        if self.state is not VersionState.ENABLED:
            raise VersionUnavailable(
                f"version {self.version} of secret {secret.id} is {self.state.value}",
                details={"version": self.version, "state": self.state.value},
            )
        if self.disable_at is not None and now >= self.disable_at:
            # Its grace period is over; the worker marks it disabled on its next pass.
            raise VersionUnavailable(
                f"version {self.version} of secret {secret.id} was replaced by a rotation; "
                f"its grace period ended at {self.disable_at.isoformat()}",
                details={"version": self.version, "state": VersionState.DISABLED.value},
            )
        for expires_at in (secret.expires_at, self.expires_at):
            if expires_at is not None and now >= expires_at:
                raise Expired(
                    f"secret {secret.id} expired at {expires_at.isoformat()}",
                    details={"expires_at": expires_at.isoformat()},
                )
        for not_before in (secret.not_before, self.not_before):
            if not_before is not None and now < not_before:
                raise NotYetValid(
                    f"secret {secret.id} is not valid before {not_before.isoformat()}",
                    details={"not_before": not_before.isoformat()},
                )

    def with_state(self, state: VersionState) -> SecretVersion:
        """This version enabled, disabled or destroyed."""
        return replace(self, state=state)

    def set_by_hand(self, state: VersionState) -> SecretVersion:
        """This version enabled, disabled or destroyed by a caller: a grace period after a
        rotation no longer applies."""
        return replace(self, state=state, disable_at=None)

    def with_grace_until(self, moment: datetime) -> SecretVersion:
        """This version, replaced by a rotation, served until `moment` and then disabled."""
        return replace(self, disable_at=moment)

    def with_validity(self, validity: Validity) -> SecretVersion:
        return replace(self, expires_at=validity.expires_at, not_before=validity.not_before)

    def relocated(self, backend: str, locator: str) -> SecretVersion:
        """This version with its value kept in `backend` under `locator` (a migration's copy)."""
        return replace(self, backend=backend, locator=locator)

    def with_stored(self, stored: bytes) -> SecretVersion:
        """This version carrying its value's stored form, read with it in one round trip (a
        copy made as `of_stored` makes one: this runs for every value read)."""
        copy = object.__new__(SecretVersion)
        copy.__dict__.update(self.__dict__, stored=stored)  # a new object: nothing is changed
        return copy


_SECRET_FIELDS = frozenset(field.name for field in fields(Secret))
_VERSION_FIELDS = frozenset(field.name for field in fields(SecretVersion))


@dataclass(frozen=True)
class Validity:
    """When a version's value may be served: from `not_before`, until `expires_at`."""

    expires_at: datetime | None = None
    not_before: datetime | None = None


@dataclass(frozen=True)
class SecretFilter:
    """What to list. None means "any"; `deleted` lists only soft-deleted secrets instead of
    live ones. `scope` matches one scope exactly, `scope_type` every scope of that type."""

    scope: ScopeRef | None = None
    scope_type: str | None = None
    environment: str | None = None
    type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    prefix: str | None = None
    deleted: bool = False
    under_path: str | None = None  # the subtree of the scope with this path
    expires_before: datetime | None = None
    created_before: datetime | None = None
    # With a rotation policy whose run was due before this time, or whose last run failed.
    rotation_overdue_at: datetime | None = None


@dataclass(frozen=True, order=True)
class ListPosition:
    """A place in the list of one scope's secrets, which is ordered by name, then environment
    ('' for a secret of every environment, as stored): a keyset page starts after it. It names
    a place only; it grants nothing (the page after it is filtered as any other)."""

    name: str
    environment: str = ""

    @classmethod
    def of(cls, secret: Secret) -> ListPosition:
        return cls(secret.name, secret.environment or "")


@dataclass(frozen=True)
class RevealedValue:
    """The answer to a value read: which version was served, and the value itself."""

    secret: Secret
    version: SecretVersion
    value: SecretValue


@dataclass(frozen=True)
class ResolveCandidate:
    """A secret that may take part in a resolution, its current version, and whether the
    caller may read its value."""

    secret: Secret
    current: SecretVersion
    value_readable: bool
