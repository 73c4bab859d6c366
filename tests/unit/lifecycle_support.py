"""The lifecycle use cases wired on the fakes, as the container wires them on the real adapters:
one fake database, a fixed clock, an in-memory backend, a scripted rotator, a recording
publisher, and a change feed with two subscribers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from adapters.cron import CroniterSchedule
from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.events import OutboxMessage
from core.domain.secrets import Secret
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.events import ChangeFeed, DeliveryPolicy, EventDelivery
from core.policy import SecretPolicy, ValueChecksum
from core.reads import ReadService, ValueReader
from core.rotation import RotationService
from core.rotation_policies import PolicyDraft, RotationSettings, Schedule
from core.secrets import NewSecret, SecretService
from core.versions import VersionService
from core.worker import Worker, WorkerSettings
from core.writes import WriteService
from plugins.rotators import RandomRotator
from ports.rotation import Rotator
from tests.fakes import (
    FakeDatabase,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
    RecordingPublisher,
    ScriptedRotator,
    make_audit_trail,
)

NOW = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
CHECKSUM_KEY = b"unit-test-checksum-key-of-32-byt"
ALICE = Principal("user:alice", "user")  # admin of every shared scope
BOB = Principal("user:bob", "user")  # editor
VERA = Principal("user:vera", "user")  # viewer
GLOBAL = ScopeRef.global_scope()
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
SUBSCRIBERS = ("audit-log", "ci")
FIRST = b"first-value-1f0e"


@dataclass
class Lifecycle:
    db: Any  # a FakeUnitOfWorkFactory, or SQL units of work in the integration tests
    clock: FixedClock
    backend: InMemoryBackend
    rotator: ScriptedRotator
    publisher: RecordingPublisher
    feed: ChangeFeed
    secrets: SecretService
    writes: WriteService
    reads: ReadService
    versions: VersionService
    rotation: RotationService
    delivery: EventDelivery
    rotators: dict[str, Rotator]  # what the rotation service finds, by name
    worker_settings: WorkerSettings = field(default_factory=WorkerSettings)

    def worker(self, worker_id: str = "worker-1", **settings: Any) -> Worker:
        audit = make_audit_trail(self.db, self.clock, changes=self.feed)
        return Worker(
            self.db,
            self.clock,
            self.registry,
            self.secrets,
            self.rotation,
            self.delivery,
            self.feed,
            audit,
            worker_id,
            WorkerSettings(**{**self.worker_settings.__dict__, **settings}),
        )

    @property
    def registry(self) -> BackendRegistry:
        return BackendRegistry({self.backend.name: self.backend}, default=self.backend.name)

    def create(self, value: bytes = FIRST, *, actor: Principal = ALICE, **draft: Any) -> Secret:
        draft.setdefault("scope", PROJECT)
        draft.setdefault("name", "DB_PASSWORD")
        return self.secrets.create_secret(actor, NewSecret(**draft), SecretValue(value))

    def read(self, secret_id: UUID, version: int | None = None) -> bytes:
        return self.reads.read_value(ALICE, secret_id, version).value.reveal()

    def policy(self, secret_id: UUID, **draft: Any) -> None:
        draft.setdefault("rotator", self.rotator.name)
        draft.setdefault("interval_seconds", 86400)
        self.rotation.set_policy(ALICE, secret_id, PolicyDraft(**draft))

    def states(self, secret_id: UUID) -> list[tuple[int, str, str | None]]:
        """(number, state, stage) of every version, oldest first."""
        return [
            (v.version, v.state.value, v.stage.value if v.stage else None)
            for v in self.versions.list_versions(ALICE, secret_id)
        ]

    def audited(self) -> list[tuple[str, str, str | None]]:
        return [(e.action, e.outcome, e.reason) for e in self.db.database.audit_events()]

    def events(self, target: str = SUBSCRIBERS[0]) -> list[OutboxMessage]:
        """The outbox messages of one subscriber, oldest first."""
        return [m for m in self.db.database.outbox_messages() if m.target == target]

    def event_types(self) -> list[str]:
        return [message.type for message in self.events()]


def make_lifecycle(**options: Any) -> Lifecycle:
    """On a fake database holding acme > p-42, Alice an admin, Bob an editor, Vera a viewer."""
    database = FakeDatabase()
    database.add_scope(ScopeRef(ScopeType.ORGANIZATION, "acme"), GLOBAL)
    database.add_scope(PROJECT, ScopeRef(ScopeType.ORGANIZATION, "acme"))
    database.grant(ALICE.id, Role.ADMIN)
    database.grant(BOB.id, Role.EDITOR)
    database.grant(VERA.id, Role.VIEWER)
    return wire(FakeUnitOfWorkFactory(database), **options)


def wire(
    db: Any,
    *,
    policy: SecretPolicy | None = None,
    rotation: RotationSettings | None = None,
    delivery: DeliveryPolicy | None = None,
    subscribers: tuple[str, ...] = SUBSCRIBERS,
) -> Lifecycle:
    """The lifecycle use cases on the units of work `db` makes (fake or SQL)."""
    clock = FixedClock(NOW)
    backend = InMemoryBackend("memory")
    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    checksum = ValueChecksum(CHECKSUM_KEY)
    policy = policy or SecretPolicy()
    feed = ChangeFeed(subscribers)
    audit = make_audit_trail(db, clock, changes=feed)
    rotator = ScriptedRotator()
    publisher = RecordingPublisher()
    rotators: dict[str, Rotator] = {rotator.name: rotator, "random": RandomRotator()}
    return Lifecycle(
        db=db,
        clock=clock,
        backend=backend,
        rotator=rotator,
        publisher=publisher,
        feed=feed,
        secrets=SecretService(db, registry, clock, checksum, policy, audit),
        writes=WriteService(db, registry, clock, checksum, policy, audit),
        reads=ReadService(db, ValueReader(registry, clock, checksum), clock, audit),
        versions=VersionService(db, registry, clock, audit),
        rotation=RotationService(
            db,
            registry,
            clock,
            checksum,
            policy,
            rotators,
            Schedule(CroniterSchedule()),
            feed,
            audit,
            rotation or RotationSettings(grace=timedelta(hours=6)),
        ),
        delivery=EventDelivery(db, publisher, clock, audit, delivery or DeliveryPolicy()),
        rotators=rotators,
    )
