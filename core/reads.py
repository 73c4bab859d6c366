"""Value reads: the one path every value read takes.

`ValueReader` reads a version's value from its backend, if it may be served, and checks it
against its checksum: a read by id, by name or by reference (`ReadService`), a resolution, an
export, a rotation and a migration all read a value through it. `ReadService` is the caller's
value read: the secret and version looked up once (from the read cache where it can be),
authorized, read, and returned only once its audit event commits (fail closed); the hot route
and the declared views call it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from uuid import UUID

from core.access import confirm_caller, require
from core.audit import Attempt, AuditTrail
from core.backends import BackendRegistry
from core.domain.access import Action, RoleBinding
from core.domain.audit import AuditAction
from core.domain.callers import cached_token
from core.domain.errors import (
    Expired,
    NotFound,
    NotYetValid,
    ServiceError,
    ValueIntegrityError,
    VersionUnavailable,
)
from core.domain.secrets import RevealedValue, Secret, SecretVersion, Stage
from core.domain.values import Principal, ScopeRef, SecretValue, VersionKey
from core.policy import ValueChecksum
from core.read_cache import ReadCache
from core.read_entries import NotPackable, id_key, pack, paired_key, path_key, unpack
from core.references import Expansion, Reference, expand
from core.secret_access import audit_place, secret_target
from ports.audit_log import StaleRead
from ports.security import Clock
from ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

# What a value read looks up: the secret and the asked-for version, if there is such a secret.
Found = tuple[Secret, SecretVersion | None] | None
# The other key a lookup found is cached under, if any (`core.read_entries.paired_key`).
Pair = Callable[[tuple[Secret, SecretVersion | None]], Hashable | None]
# A generation no read requires: cached rows of two generations are re-read.
STALE = -1


def required_generation(seen: set[int]) -> int | None:
    """The generation a read decided on cached rows requires when its audit event commits,
    given the generations those rows were cached at: none without any, the one they share,
    else `STALE` (they disagree, so the rows are read again)."""
    if not seen:
        return None
    return next(iter(seen)) if len(seen) == 1 else STALE


def staged_version(secret: Secret, stage: Stage) -> int | None:
    """The version number a stage labels on `secret`, if any."""
    return {
        Stage.CURRENT: secret.current_version,
        Stage.PREVIOUS: secret.previous_version,
        Stage.PENDING: secret.pending_version,
    }[stage]


def _where(secret: Secret, record: SecretVersion) -> str:
    return f"secret {secret.id} version {record.version} (backend '{record.backend}')"


def _keep(
    cache: ReadCache,
    key: Hashable,
    found: tuple[Secret, SecretVersion | None],
    label: int | None,
    pair: Pair | None,
) -> None:
    """Cache `found`, packed, under `key` and the key `pair` gives (one `bytes` object for
    both); a lookup the packed form cannot keep exactly is not cached."""
    try:
        packed = pack(found)
    except NotPackable:
        return
    cache.put(key, packed, label)
    other = None if pair is None else pair(found)
    if other is not None:
        cache.put(other, packed, label)


class ValueReader:
    """Reads a version's value from its backend, if it may be served, and checks it."""

    def __init__(self, backends: BackendRegistry, clock: Clock, checksum: ValueChecksum) -> None:
        self._backends = backends
        self._clock = clock
        self._checksum = checksum

    def read(self, secret: Secret, record: SecretVersion) -> SecretValue:
        """The value, if the version may be served now (else why not, raised), checked."""
        record.check_servable(secret, self._clock.now())
        return self.fetch(secret, record)

    def read_or_reason(
        self, secret: Secret, record: SecretVersion
    ) -> tuple[SecretValue | None, str | None]:
        """`read`, for a read of many values (a resolution, an export) that goes on past one
        that may not be served: the value, or the code of why it may not be (expired, not yet
        valid, disabled)."""
        try:
            record.check_servable(secret, self._clock.now())
            return self.fetch(secret, record), None
        except (Expired, NotYetValid, VersionUnavailable) as error:
            return None, error.code

    def fetch(self, secret: Secret, record: SecretVersion) -> SecretValue:
        """The stored value, checked against its checksum, whether it may be served or not
        (for a rollback to a disabled version, or a rotation's test of its pending one)."""
        key = VersionKey(secret.id, record.version)
        backend = self._backends.get(record.backend)
        try:
            if record.stored is not None and backend.capabilities.stored_with_metadata:
                value = backend.open_stored(key, record.locator, record.stored)
            else:
                value = backend.get(key, record.locator)
        except ValueIntegrityError as error:
            raise ValueIntegrityError(
                f"the stored value of {_where(secret, record)}: {error.message}"
            ) from None
        if not self._checksum.matches(value, record.checksum):
            raise ValueIntegrityError(
                f"the stored value of {_where(secret, record)} does not match its checksum"
            )
        return value


class ReadService:
    """The caller's value reads: by id, by name, by reference, and a value's references
    expanded."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        reader: ValueReader,
        clock: Clock,
        audit: AuditTrail,
        cache: ReadCache | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._reader = reader
        self._clock = clock
        self._audit = audit
        self._cache = cache if cache is not None and cache.enabled else None

    def read_value(
        self, actor: Principal, secret_id: UUID, version: int | None = None
    ) -> RevealedValue:
        """The value, returned only once its read is recorded in the audit trail (fail closed)."""
        with self._audit.attempt(
            actor, AuditAction.SECRET_READ_VALUE, f"secret:{secret_id}", version=version
        ) as attempt:
            return self._read(
                actor,
                attempt,
                id_key(secret_id, version),
                lambda uow: uow.secrets.get_with_version(secret_id, version),
                f"no secret {secret_id}",
                version,
                pair=lambda found: paired_key(found, version, by_id=True),
            )

    def read_value_by_name(
        self,
        actor: Principal,
        scope: ScopeRef,
        name: str,
        environment: str | None,
        version: int | None = None,
    ) -> RevealedValue:
        """`read_value` of the secret at a path: one lookup, one audit event."""
        env = f" ({environment})" if environment else ""
        missing = f"no secret '{name}'{env} in scope {scope}"
        resource = f"secret:{scope}/{name}" + (f"@{environment}" if environment else "")
        with self._audit.attempt(
            actor, AuditAction.SECRET_READ_VALUE, resource, version=version
        ) as attempt:
            return self._read(
                actor,
                attempt,
                path_key(scope, environment, name, version),
                lambda uow: uow.secrets.get_by_name_with_version(scope, environment, name, version),
                missing,
                version,
                pair=lambda found: paired_key(found, version, by_id=False),
            )

    def read_value_by_reference(self, actor: Principal, reference: Reference) -> RevealedValue:
        """`read_value` of the secret a reference names (the version or stage it picks): one
        lookup, one audit event; the same `NotFound` whether it is missing or invisible."""
        scope, name, environment = reference.scope, reference.name, reference.environment
        missing = f"no secret {reference.secret}"
        resource = f"secret:{scope}/{name}" + (f"@{environment}" if environment else "")
        version, stage = reference.version, reference.stage
        with self._audit.attempt(
            actor, AuditAction.SECRET_READ_VALUE, resource, version=version
        ) as attempt:
            if stage is None:

                def fetch(uow: UnitOfWork) -> Found:
                    return uow.secrets.get_by_name_with_version(scope, environment, name, version)

            else:

                def fetch(uow: UnitOfWork) -> Found:
                    secret = uow.secrets.get_by_name(scope, environment, name)
                    if secret is None:
                        return None
                    number = staged_version(secret, stage)
                    record = None if number is None else uow.secrets.get_version(secret.id, number)
                    return secret, record

            return self._read(
                actor,
                attempt,
                ("reference", reference),
                fetch,
                missing,
                version,
                wanted=None if stage is None else f"{stage.value} version",
            )

    def expand_value(
        self, actor: Principal, revealed: RevealedValue
    ) -> tuple[RevealedValue, list[Expansion]]:
        """The value with its `${secret://…}` references replaced (see `core.references`), each
        read as the caller's own value read (authorized, audited); and the references used."""
        value, expansions = expand(
            revealed, lambda reference: self.read_value_by_reference(actor, reference)
        )
        return replace(revealed, value=value), expansions

    def _read(
        self,
        actor: Principal,
        attempt: Attempt,
        key: Hashable,
        fetch: Callable[[UnitOfWork], Found],
        missing: str,
        version: int | None,
        wanted: str | None = None,
        pair: Pair | None = None,
    ) -> RevealedValue:
        """A value read: from the read cache where it can be, checked when its audit event
        commits (`StaleRead`: something changed since; then once more from the database).
        `pair`: the other key the same lookup is cached under (see `core.read_entries`)."""
        for use_cache in (True, False) if self._cache is not None else (False,):
            found, bindings, required = self._read_inputs(actor, key, fetch, use_cache, pair)
            try:
                secret, record = self._readable(
                    actor, found, bindings, attempt, missing, version, wanted
                )
                value = self._reader.read(secret, record)
                attempt.learn(resource=f"secret:{secret.id}")
                attempt.succeed_durably(requires_generation=required)
            except StaleRead:
                continue
            except ServiceError:
                if required is None:
                    raise
                continue  # decided on cached rows: decide again on the database's
            return RevealedValue(secret=secret, version=record, value=value)
        raise AssertionError("a read from the database is never stale")  # pragma: no cover

    def _read_inputs(
        self,
        actor: Principal,
        key: Hashable,
        fetch: Callable[[UnitOfWork], Found],
        use_cache: bool,
        pair: Pair | None = None,
    ) -> tuple[Found, Sequence[RoleBinding], int | None]:
        """The secret and version, and the caller's bindings: cached (packed, see
        `core.read_entries`), or read (and cached) in one read-only unit of work. The
        generation the cached ones require, if any."""
        cache = self._cache
        label = cache.generation() if cache is not None else None
        found: Found = None
        bindings: Sequence[RoleBinding] | None = () if actor.is_root or actor.is_system else None
        seen: set[int] = set()
        token = cached_token(actor)
        if cache is not None and use_cache:
            if token is not None:
                seen.add(token[1])
            hit = cache.get(key)
            if hit is not None:
                found = unpack(hit[0])
                seen.add(hit[1])
            if bindings is None:
                hit = cache.get(("bindings", actor.identities))
                if hit is not None:
                    bindings, generation = hit
                    seen.add(generation)
        if found is None or bindings is None:
            now = self._clock.now()
            with self._uow_factory(read_only=True) as uow:
                if not use_cache:
                    confirm_caller(uow, actor, now)
                if found is None:
                    found = fetch(uow)
                    if cache is not None and found is not None:
                        _keep(cache, key, found, label, pair)
                if bindings is None:
                    bindings = tuple(uow.bindings.for_identities(actor.identities, now))
                    if cache is not None:
                        cache.put(("bindings", actor.identities), bindings, label)
        required = required_generation(seen)
        return found, bindings, required

    def _readable(
        self,
        actor: Principal,
        found: Found,
        bindings: Sequence[RoleBinding],
        attempt: Attempt,
        missing: str,
        version: int | None,
        wanted: str | None = None,
    ) -> tuple[Secret, SecretVersion]:
        """The secret and version of a value read, if the caller may read it; else the same
        `NotFound` as for no secret at all (or `Forbidden` for a caller who may see it)."""
        if found is None or found[0].is_deleted:
            raise NotFound(missing)
        secret, record = found
        attempt.learn(**audit_place(secret))
        try:
            require(actor, Action.READ_VALUE, secret_target(secret), bindings, self._clock.now())
        except NotFound:
            raise NotFound(missing) from None
        number = secret.current_version if version is None else version
        attempt.learn(version=number if record is None else record.version)
        if record is None:
            raise NotFound(f"secret {secret.id} has no {wanted or f'version {number}'}")
        return secret, record
