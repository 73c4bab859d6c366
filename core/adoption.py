"""Adoption: bring values that already live in an external store under management, uncopied.

Each value a backend finds under a prefix (`StorageBackend.list_external`) becomes a secret whose
version 1 points at it; nothing is written to the store. An adopted secret's id is derived from
the backend instance and the locator (`adopted_secret_id`): a backend can check that a locator it
did not derive from a UUID is read only as that secret's version 1, and adopting the same value
twice finds it adopted already. Later versions of an adopted secret are written like any other.

Adoption reads whatever the backend's own credentials can read, so it takes an admin of the
global scope, like configuring backends; and like every write, the right to write where the
values go (`core.scopes.place`): a personal scope is its user's alone, the root's and global
admins' adoptions included. The run is audited (`backend.adopt`), and so is each value
(`secret.adopt`), adopted or not.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from core.access import authorize
from core.audit import Attempt, AuditTrail
from core.backends import BackendRegistry
from core.domain.access import Action, Target
from core.domain.audit import AuditAction
from core.domain.errors import Conflict, InvalidInput, NotFound, ValueIntegrityError
from core.domain.secrets import Secret, SecretVersion
from core.domain.values import Principal, ScopeRef, VersionKey
from core.policy import MAX_DESCRIPTION, SecretPolicy, ValueChecksum
from core.scopes import place
from ports.security import Clock
from ports.storage import ExternalSecret, StorageBackend
from ports.unit_of_work import UnitOfWork

# Fixed for good: changing it would unbind every adopted secret from its value.
ADOPTION_NAMESPACE = UUID("6f0c3d52-5b8e-4d51-9a36-2c1e7b9f4a10")
ADOPTED_FROM_TAG = "adopted-from"
NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_.-]")


def adopted_secret_id(backend: str, locator: str) -> UUID:
    """The id of the secret that adopts the value at `locator` in backend instance `backend`."""
    return uuid.uuid5(ADOPTION_NAMESPACE, f"{backend}\n{locator}")


def secret_name_for(external_name: str, prefix: str) -> str:
    """The secret name of an external one: what follows the prefix, other characters as `_`.

    `apps/db/password` found under `apps/` becomes `db_password`.
    """
    relative = external_name.removeprefix(prefix).strip("/")
    name = NOT_IN_NAMES.sub("_", relative or external_name.rstrip("/").rsplit("/", 1)[-1])
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


class AdoptionStatus(enum.StrEnum):
    ADOPTED = "adopted"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class AdoptionRequest:
    """Adopt what backend instance `backend` holds under `prefix` into `scope` (created below
    `parent` if it does not exist yet)."""

    backend: str
    prefix: str
    scope: ScopeRef
    parent: ScopeRef | None = None
    environment: str | None = None


@dataclass(frozen=True)
class AdoptionResult:
    """What became of one external value: adopted, skipped (adopted already, name taken), failed."""

    external_name: str
    name: str
    status: AdoptionStatus
    secret_id: UUID
    reason: str = ""


class AdoptionService:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        backends: BackendRegistry,
        clock: Clock,
        checksum: ValueChecksum,
        policy: SecretPolicy,
        audit: AuditTrail,
    ) -> None:
        self._uow_factory = uow_factory
        self._backends = backends
        self._clock = clock
        self._checksum = checksum
        self._policy = policy
        self._audit = audit

    def adopt(self, actor: Principal, request: AdoptionRequest) -> list[AdoptionResult]:
        """Adopt every value under the prefix, each in its own transaction.

        A value that cannot be adopted (its name is not a valid secret name, it is too large,
        it vanished) is reported and the others go on. A backend that fails stops the whole run;
        running it again adopts what is left, since what was adopted is found adopted.
        """
        self._policy.check_metadata(environment=request.environment)
        with self._audit.attempt(
            actor,
            AuditAction.BACKEND_ADOPT,
            f"backend:{request.backend}",
            scope=str(request.scope),
            details={"prefix": request.prefix},
        ) as attempt:
            with self._uow_factory() as uow:
                root = uow.scopes.get(ScopeRef.global_scope())
                if root is None:
                    raise NotFound("no global scope: the database is not migrated")
                now = self._clock.now()
                authorize(uow, actor, Action.ADMIN, Target(root.ref, root.path), now)
                place(uow, actor, request.scope, request.parent, now)
                if request.backend not in {backend.name for backend in self._backends}:
                    raise NotFound(f"no backend instance '{request.backend}'")
                attempt.succeed(uow)
                uow.commit()
        backend = self._backends.get(request.backend)
        return [
            self._adopt_one(actor, backend, request, found)
            for found in backend.list_external(request.prefix)
        ]

    def _adopt_one(
        self,
        actor: Principal,
        backend: StorageBackend,
        request: AdoptionRequest,
        found: ExternalSecret,
    ) -> AdoptionResult:
        name = secret_name_for(found.external_name, request.prefix)
        secret_id = adopted_secret_id(backend.name, found.locator)
        outcome = AdoptionStatus.ADOPTED
        reason = ""
        try:
            with self._audit.attempt(
                actor,
                AuditAction.SECRET_ADOPT,
                f"secret:{secret_id}",
                scope=str(request.scope),
                version=1,
                details={"backend": backend.name, "external_name": found.external_name},
            ) as attempt:
                self._register(actor, backend, request, found, name, secret_id, attempt)
        except Conflict as error:  # adopted already, or the name is taken
            outcome, reason = AdoptionStatus.SKIPPED, error.message
        except (InvalidInput, NotFound, ValueIntegrityError) as error:
            outcome, reason = AdoptionStatus.FAILED, error.message
        return AdoptionResult(found.external_name, name, outcome, secret_id, reason)

    def _register(
        self,
        actor: Principal,
        backend: StorageBackend,
        request: AdoptionRequest,
        found: ExternalSecret,
        name: str,
        secret_id: UUID,
        attempt: Attempt,
    ) -> None:
        """Read the value (for its checksum) and write the rows pointing at it."""
        self._policy.check_name(name)
        value = backend.get(VersionKey(secret_id, 1), found.locator)
        self._policy.check_value(value, backend.capabilities.max_value_bytes, backend.name)
        now = self._clock.now()
        secret = Secret(
            id=secret_id,
            scope=request.scope,
            name=name,
            environment=request.environment,
            description=f"adopted from {backend.name}: {found.external_name}"[:MAX_DESCRIPTION],
            tags={ADOPTED_FROM_TAG: backend.name},
            backend=backend.name,
            current_version=1,
            created_at=now,
            created_by=actor.id,
        )
        version = SecretVersion(
            secret_id=secret_id,
            version=1,
            backend=backend.name,
            locator=found.locator,
            checksum=self._checksum.of(value),
            created_at=now,
            created_by=actor.id,
        )
        with self._uow_factory() as uow:
            if uow.secrets.get(secret_id) is not None:
                raise Conflict("adopted already")
            taken = uow.secrets.get_by_name(request.scope, request.environment, name)
            if taken is not None:
                raise Conflict(f"the name is taken by secret {taken.id}")
            placement = place(uow, actor, request.scope, request.parent, now, name)
            scope = placement.create_if_missing(uow)
            uow.secrets.add(secret)
            uow.secrets.add_version(version)
            details = {**attempt.event.details, "value_hmac": version.checksum}
            attempt.succeed(uow, scope_path=scope.path, details=details)
            uow.commit()
