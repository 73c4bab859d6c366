"""The composition root: the one place that knows which adapter implements which port.

The web app, the CLI and the worker build the same container. Shared infrastructure (engine,
plugin manager, key provider, backends) are singletons; units of work and use cases are built
per call. Tests replace a provider with `container.<name>.override(...)`.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pluggy
from dependency_injector import containers, providers
from sqlalchemy import Engine

from adapters.clock import SystemClock
from adapters.cron import CroniterSchedule
from adapters.crypto import EnvelopeCipher
from adapters.db.audit_appender import PostgresChainAppender
from adapters.db.chain_segments import ProcessChainSegments
from adapters.db.engine import create_engine_from_url
from adapters.db.rekey import SqlKeyUnitOfWork
from adapters.db.uow import SqlUnitOfWork
from adapters.db.worker_registry import SqlWorkerRegistry
from adapters.identity import (
    BearerAuthenticator,
    DevRootTokenAuthenticator,
    IssuerAuthenticator,
    JwtAuthenticator,
)
from adapters.sealed_export import ScryptAesGcmCipher
from adapters.webhooks import WebhookPublisher, configured_targets
from core.adoption import AdoptionService
from core.audit import AuditChain, AuditTrail, GroupCommit, derive_checkpoint_key
from core.audit_service import AuditService
from core.backends import BackendRegistry
from core.bindings import RoleBindingService
from core.domain.errors import ConfigurationError
from core.events import ChangeFeed, DeliveryPolicy, EventDelivery
from core.keys import KeyService
from core.migration import MigrationService
from core.policy import SecretPolicy, ValueChecksum
from core.read_cache import ReadCache
from core.reports import ReportService
from core.resolution import ResolveService
from core.rotation import RotationService, RotationSettings, Schedule
from core.scopes import ScopeService
from core.service_accounts import ServiceAccountService
from core.services import SecretService, ValueReader
from core.transfer import FormatRegistry, TransferService
from core.types import TypeRegistry
from core.versions import VersionService
from core.worker import Worker, WorkerSettings
from core.worker_status import WorkerStatusService
from entrypoints.config import Settings
from entrypoints.http.metrics import MULTIPROCESS_DIR, CountedFailedAuthentications
from plugins.hookspecs import PROJECT
from plugins.manager import (
    audit_sink_plugins,
    backend_plugins,
    build_plugin_manager,
    create_backend,
    format_plugins,
    key_provider_plugins,
    rotator_plugins,
    secret_type_plugins,
)
from ports.audit import AuditSink
from ports.events import EventPublisher
from ports.persistence import ChainAppender
from ports.rotation import Rotator, RotatorContext
from ports.security import Authenticator, Clock, KeyProvider, KeyProviderContext
from ports.storage import BackendContext

if TYPE_CHECKING:
    from adapters.metrics import ServiceMetrics

VERIFY_PROCESSES = min(os.cpu_count() or 1, 4)


def build_key_provider(
    settings: Settings, plugin_manager: pluggy.PluginManager, environ: Mapping[str, str]
) -> KeyProvider:
    options = dict(settings.keys)
    name = options.pop("provider", "auto")
    available = key_provider_plugins(plugin_manager)
    if name not in available:
        raise ConfigurationError(
            f"configuration key 'keys.provider': unknown key provider '{name}'; "
            f"available: {', '.join(sorted(available))}"
        )
    context = KeyProviderContext(
        data_dir=str(settings.data_dir), environ=environ, production=settings.production
    )
    return available[name].factory(options, context)


def open_backends(
    settings: Settings,
    plugin_manager: pluggy.PluginManager,
    engine: Any,
    key_provider: KeyProvider,
    metrics: ServiceMetrics,
) -> Iterator[BackendRegistry]:
    """Every configured backend instance, each call to one counted and timed."""
    from adapters.metrics import instrumented

    available = backend_plugins(plugin_manager)
    context = BackendContext(database=engine, key_provider=key_provider)
    instances = instrumented(
        {
            name: create_backend(name, options, available, context)
            for name, options in settings.backends.items()
        },
        metrics,
    )
    registry = BackendRegistry(instances, default=settings.default_backend)
    try:
        yield registry
    finally:
        registry.close()


def build_metrics(environ: Mapping[str, str]) -> ServiceMetrics:
    """This process's metrics. `adapters.metrics` is imported here rather than above:
    prometheus-client chooses multi-process counting when it is first imported, which in
    `secretctl serve` must come after the server set its directory (entrypoints/server.py)."""
    from adapters.metrics import ServiceMetrics

    return ServiceMetrics(environ.get(MULTIPROCESS_DIR) or None)


def build_read_cache(settings: Settings, metrics: ServiceMetrics) -> ReadCache:
    from adapters.metrics import CountedReadCache

    options = settings.read_cache
    return CountedReadCache(options["max_entries"], options["ttl_seconds"], metrics)


def build_exported_metrics(
    metrics: ServiceMetrics, engine: Engine, clock: Clock, settings: Settings
) -> ServiceMetrics:
    """The metrics `/metrics` serves: this process's (or every process's), and the gauges read
    from the database at each scrape."""
    from adapters.metrics import OperationsCollector

    metrics.add_collector(OperationsCollector(engine, clock, settings.expiry_warning_days))
    return metrics


def open_engine(url: str, on_change: Any = None) -> Iterator[Any]:
    engine = create_engine_from_url(url, on_change=on_change)
    try:
        yield engine
    finally:
        engine.dispose()


def build_jwt_authenticator(
    settings: Settings, environ: Mapping[str, str]
) -> IssuerAuthenticator | None:
    """The JWT issuers: the people's identity provider (`[identity.jwt]`) and each workload
    issuer (`[identity.issuers.<name>]`, e.g. a Kubernetes cluster); None when there is none."""
    issuers = []
    if settings.identity.get("jwt"):
        issuers.append(JwtAuthenticator(settings.identity["jwt"], environ))
    for name, issuer in sorted((settings.identity.get("issuers") or {}).items()):
        issuers.append(JwtAuthenticator(issuer, environ, name=name))
    return IssuerAuthenticator(issuers) if issuers else None


def build_authenticator(
    settings: Settings,
    jwt_authenticator: IssuerAuthenticator | None,
    accounts: ServiceAccountService,
) -> Authenticator:
    return BearerAuthenticator(
        api_tokens=accounts.authenticate,
        jwt_authenticator=jwt_authenticator,
        dev_root=DevRootTokenAuthenticator(settings.dev_root_token)
        if settings.dev_root_token
        else None,
    )


def open_audit_sinks(
    settings: Settings, plugin_manager: pluggy.PluginManager
) -> Iterator[list[AuditSink]]:
    available = audit_sink_plugins(plugin_manager)
    tables = {key for key, value in settings.audit.items() if isinstance(value, Mapping)}
    unclaimed = sorted(tables - set(available))
    if unclaimed:
        raise ConfigurationError(
            f"configuration key 'audit.{unclaimed[0]}': settings of a sink no plugin provides; "
            f"available: {', '.join(sorted(available))}",
            details={"key": f"audit.{unclaimed[0]}"},
        )
    sinks = []
    for name in settings.audit.get("sinks", []):
        if name not in available:
            raise ConfigurationError(
                f"configuration key 'audit.sinks': unknown sink '{name}'; "
                f"available: {', '.join(sorted(available))}",
                details={"key": "audit.sinks"},
            )
        sinks.append(available[name].factory(settings.audit.get(name, {})))
    try:
        yield sinks
    finally:
        for sink in sinks:
            sink.close()


def check_disabled_plugins(settings: Settings) -> None:
    """`[plugins] disabled` names installed plugins: a misspelt name would block nothing."""
    installed = {entry.name for entry in entry_points(group=PROJECT)}
    for name in settings.disabled_plugins:
        if name not in installed:
            raise ConfigurationError(
                f"configuration key 'plugins.disabled': no plugin '{name}' is installed; "
                f"installed: {', '.join(sorted(installed))}",
                details={"key": "plugins.disabled"},
            )


def check_configured(container: Container) -> None:
    """Build every configured piece now (identity, audit sinks, rotation targets, webhooks, key
    provider, backends), so that a bad setting stops the start with a `ConfigurationError` naming
    its key, instead of failing each request that would need the piece. Those that make nothing
    come first: a bad one stops the start before a key file is made."""
    try:
        check_disabled_plugins(container.settings())
        container.jwt_authenticator()
        container.audit_sinks()
        container.rotators()
        container.event_publisher()
        container.key_provider()
        container.backends()
        container.authenticator()
    except BaseException:
        container.shutdown_resources()  # what was opened before the bad piece
        raise


def build_policy(settings: Settings) -> SecretPolicy:
    return SecretPolicy(
        name_pattern=settings.name_pattern,
        max_value_bytes=settings.max_value_bytes,
        retention_days=settings.retention_days,
    )


def build_type_registry(plugin_manager: pluggy.PluginManager) -> TypeRegistry:
    return TypeRegistry(secret_type_plugins(plugin_manager))


def build_format_registry(plugin_manager: pluggy.PluginManager) -> FormatRegistry:
    return FormatRegistry(format_plugins(plugin_manager))


def build_rotators(
    plugin_manager: pluggy.PluginManager, settings: Settings, environ: Mapping[str, str]
) -> dict[str, Rotator]:
    """The rotators, given the operator's rotation targets (`[rotation.webhooks]`)."""
    webhooks = settings.rotation.get("webhooks", {})
    context = RotatorContext(environ, configured_targets(webhooks, environ, "rotation.webhooks"))
    return {
        name: plugin.factory(context) for name, plugin in rotator_plugins(plugin_manager).items()
    }


def open_chain_appender(engine: Engine) -> Iterator[ChainAppender | None]:
    """PostgreSQL appends a batch of audit events in one round trip (migration 0007), on a
    connection of its own that closes with the container."""
    if engine.dialect.name != "postgresql":
        yield None
        return
    appender = PostgresChainAppender(engine)
    try:
        yield appender
    finally:
        appender.close()


def build_change_feed(settings: Settings) -> ChangeFeed:
    return ChangeFeed(targets=sorted(settings.events["webhooks"]))


def open_event_publisher(
    settings: Settings, environ: Mapping[str, str]
) -> Iterator[EventPublisher]:
    """The webhook publisher, its subscribers checked: URL, and HMAC key found."""
    publisher = WebhookPublisher(
        configured_targets(settings.events["webhooks"], environ, "events.webhooks")
    )
    try:
        yield publisher
    finally:
        publisher.close()


def build_rotation_settings(settings: Settings) -> RotationSettings:
    rotation = settings.rotation
    return RotationSettings(
        grace=timedelta(seconds=rotation["grace_seconds"]),
        timeout=timedelta(seconds=rotation["timeout_seconds"]),
        retry_after=timedelta(seconds=rotation["retry_seconds"]),
    )


def build_worker_settings(settings: Settings) -> WorkerSettings:
    return WorkerSettings(
        batch_size=settings.worker["batch_size"],
        lease=timedelta(seconds=settings.worker["lease_seconds"]),
        default_max_versions=settings.max_versions,
        expiry_warning_days=settings.expiry_warning_days,
    )


def job_lease(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.worker["lease_seconds"])


def build_delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        max_attempts=settings.events["max_attempts"],
        keep_delivered=timedelta(days=settings.events["keep_delivered_days"]),
    )


def new_worker_id() -> str:
    """Unique among the workers on one database: host, process, and a random part."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    environ = providers.Object(os.environ)

    plugin_manager = providers.Singleton(
        build_plugin_manager, blocked=settings.provided.disabled_plugins
    )
    # This process's Prometheus metrics (adapters/metrics.py).
    metrics = providers.Singleton(build_metrics, environ)
    # What value reads look up, per process, valid for one change generation (core/read_cache.py).
    read_cache = providers.Singleton(build_read_cache, settings, metrics)
    # The engine tells this process's read cache when a transaction changed what it holds.
    engine = providers.Resource(
        open_engine, settings.provided.database_url, read_cache.provided.forget
    )
    clock = providers.Singleton(SystemClock)
    key_provider = providers.Singleton(build_key_provider, settings, plugin_manager, environ)
    backends = providers.Resource(
        open_backends, settings, plugin_manager, engine, key_provider, metrics
    )
    checksum = providers.Singleton(ValueChecksum, key_provider.provided.checksum_key.call())
    policy = providers.Singleton(build_policy, settings)
    secret_types = providers.Singleton(build_type_registry, plugin_manager)
    formats = providers.Singleton(build_format_registry, plugin_manager)
    export_cipher = providers.Singleton(ScryptAesGcmCipher)
    unit_of_work = providers.Factory(SqlUnitOfWork, engine)

    audit_key = providers.Singleton(
        derive_checkpoint_key, key_provider.provided.checksum_key.call()
    )
    audit_chain = providers.Singleton(
        AuditChain, audit_key, settings.provided.audit.get.call("checkpoint_every", 1000)
    )
    audit_sinks = providers.Resource(open_audit_sinks, settings, plugin_manager)
    # Changes audited as a success are written to the event outbox in the same transaction.
    change_feed = providers.Singleton(build_change_feed, settings)
    # Reads' events of concurrent requests commit together (one group per process); the change
    # generation seen under the chain's lock keeps the read cache honest.
    chain_appender = providers.Resource(open_chain_appender, engine)
    audit_group = providers.Singleton(
        GroupCommit,
        unit_of_work.provider,
        audit_chain,
        read_cache.provided.observe,
        chain_appender,
        on_written=metrics.provided.observe_audit_write,
    )
    # Views pass `request=RequestInfo(...)`; the CLI and the worker use the default.
    audit_trail = providers.Factory(
        AuditTrail,
        unit_of_work.provider,
        audit_chain,
        clock,
        sinks=audit_sinks,
        changes=change_feed,
        group=audit_group,
    )
    # A long chain is verified in segments, one process per CPU (up to 4) (`PARALLEL_FROM`).
    audit_segments = providers.Singleton(
        ProcessChainSegments, settings.provided.database_url, processes=VERIFY_PROCESSES
    )
    audit_service = providers.Factory(
        AuditService,
        unit_of_work.provider,
        trail=audit_trail,
        chain_key=audit_key,
        clock=clock,
        segments=audit_segments,
    )

    report_service = providers.Factory(
        ReportService, unit_of_work.provider, clock, audit=audit_trail
    )
    scope_service = providers.Factory(ScopeService, unit_of_work.provider, clock, audit=audit_trail)
    binding_service = providers.Factory(
        RoleBindingService, unit_of_work.provider, clock, audit=audit_trail
    )
    service_account_service = providers.Factory(
        ServiceAccountService, unit_of_work.provider, clock, audit=audit_trail, cache=read_cache
    )
    value_reader = providers.Factory(ValueReader, backends, clock, checksum)
    resolve_service = providers.Factory(
        ResolveService,
        unit_of_work.provider,
        value_reader,
        clock,
        audit=audit_trail,
        cache=read_cache,
    )
    jwt_authenticator = providers.Singleton(build_jwt_authenticator, settings, environ)
    authenticator = providers.Singleton(
        build_authenticator, settings, jwt_authenticator, service_account_service
    )
    # Only failed authentications reach it (entrypoints/http/failed_auth.py).
    failed_authentications = providers.Singleton(
        CountedFailedAuthentications,
        settings.provided.auth["failures_per_minute"],
        audit_trail.provider,
        metrics,
    )
    exported_metrics = providers.Singleton(build_exported_metrics, metrics, engine, clock, settings)
    secret_service = providers.Factory(
        SecretService,
        uow_factory=unit_of_work.provider,
        backends=backends,
        clock=clock,
        checksum=checksum,
        policy=policy,
        audit=audit_trail,
        types=secret_types,
        cache=read_cache,
    )
    adoption_service = providers.Factory(
        AdoptionService,
        uow_factory=unit_of_work.provider,
        backends=backends,
        clock=clock,
        checksum=checksum,
        policy=policy,
        audit=audit_trail,
    )
    key_service = providers.Factory(
        KeyService,
        uow_factory=providers.Factory(SqlKeyUnitOfWork, engine).provider,
        key_provider=key_provider,
        rewrapper=providers.Singleton(EnvelopeCipher, key_provider),
        audit=audit_trail,
        clock=clock,
    )
    transfer_service = providers.Factory(
        TransferService,
        uow_factory=unit_of_work.provider,
        backends=backends,
        clock=clock,
        checksum=checksum,
        policy=policy,
        audit=audit_trail,
        types=secret_types,
        formats=formats,
        cipher=export_cipher,
    )

    migration_service = providers.Factory(
        MigrationService,
        uow_factory=unit_of_work.provider,
        backends=backends,
        clock=clock,
        checksum=checksum,
        policy=policy,
        audit=audit_trail,
        lease=providers.Callable(job_lease, settings),
    )

    # -- lifecycle: versions, rotation, events, the worker --------------------------------------
    version_service = providers.Factory(
        VersionService, unit_of_work.provider, backends, clock, audit=audit_trail
    )
    rotators = providers.Singleton(build_rotators, plugin_manager, settings, environ)
    schedule = providers.Singleton(Schedule, providers.Singleton(CroniterSchedule))
    rotation_settings = providers.Singleton(build_rotation_settings, settings)
    rotation_service = providers.Factory(
        RotationService,
        uow_factory=unit_of_work.provider,
        backends=backends,
        clock=clock,
        checksum=checksum,
        policy=policy,
        rotators=rotators,
        schedule=schedule,
        events=change_feed,
        audit=audit_trail,
        settings=rotation_settings,
        types=secret_types,
    )
    event_publisher = providers.Resource(open_event_publisher, settings, environ)
    event_delivery = providers.Factory(
        EventDelivery,
        unit_of_work.provider,
        event_publisher,
        clock,
        audit=audit_trail,
        policy=providers.Singleton(build_delivery_policy, settings),
    )
    # Each worker's heartbeat, and the backlog (`/readyz`, `GET /api/v1/status`).
    worker_registry = providers.Singleton(SqlWorkerRegistry, engine)
    worker = providers.Factory(
        Worker,
        uow_factory=unit_of_work.provider,
        clock=clock,
        backends=backends,
        secrets=secret_service,
        rotation=rotation_service,
        delivery=event_delivery,
        events=change_feed,
        audit=audit_trail,
        worker_id=providers.Callable(new_worker_id),
        settings=providers.Singleton(build_worker_settings, settings),
        migrations=migration_service,
        registry=worker_registry,
        host=providers.Callable(socket.gethostname),
        pid=providers.Callable(os.getpid),
    )
    worker_status_service = providers.Factory(
        WorkerStatusService, unit_of_work.provider, worker_registry, clock, audit=audit_trail
    )
