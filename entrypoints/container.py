"""The composition root: the one place that knows which adapter implements which port.

The web app, the CLI and the worker build the same container. Shared infrastructure (engine,
plugin manager, key provider, backends) and the use cases are singletons: a use case keeps no
state between calls, and learns who calls and from which request from its `Caller` argument.
Units of work are built per call. Tests replace a provider with `container.<name>.override(...)`
(then `reset_use_cases`, so that the use cases are built again with the replacement). How each
piece is built from the settings is in `entrypoints.factories`.
"""

from __future__ import annotations

import os
import socket
from importlib.metadata import entry_points

from dependency_injector import containers, providers

from adapters.clock import SystemClock
from adapters.cron import CroniterSchedule
from adapters.crypto import EnvelopeCipher
from adapters.db.chain_segments import ProcessChainSegments
from adapters.db.rekey import SqlKeyUnitOfWork
from adapters.db.uow import SqlUnitOfWork
from adapters.db.worker_registry import SqlWorkerRegistry
from adapters.group_commit import GroupCommit
from adapters.sealed_export import ScryptAesGcmCipher
from core.adoption import AdoptionService
from core.audit import AuditTrail
from core.audit_chain import AuditChain, derive_checkpoint_key
from core.audit_service import AuditService
from core.bindings import RoleBindingService
from core.domain.errors import ConfigurationError
from core.events import EventDelivery
from core.exports import ExportService
from core.imports import ImportService
from core.keys import KeyService
from core.migration.service import MigrationService
from core.policy import ValueChecksum
from core.reads import ReadService, ValueReader
from core.reports import ReportService
from core.resolution import ResolveService
from core.rotation import RotationService
from core.rotation_policies import Schedule
from core.scopes import ScopeService
from core.secrets import SecretService
from core.service_accounts import ServiceAccountService
from core.versions import VersionService
from core.worker import Worker
from core.worker_status import WorkerStatusService
from core.writes import WriteService
from entrypoints.config import Settings
from entrypoints.factories import (
    build_authenticator,
    build_change_feed,
    build_delivery_policy,
    build_exported_metrics,
    build_format_registry,
    build_jwt_authenticator,
    build_key_provider,
    build_metrics,
    build_policy,
    build_read_cache,
    build_rotation_settings,
    build_rotators,
    build_type_registry,
    build_worker_settings,
    job_lease,
    new_worker_id,
    open_audit_sinks,
    open_backends,
    open_chain_appender,
    open_engine,
    open_event_publisher,
)
from entrypoints.http.metrics import CountedFailedAuthentications
from plugins.hookspecs import PROJECT
from plugins.manager import build_plugin_manager

VERIFY_PROCESSES = min(os.cpu_count() or 1, 4)


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


# The use cases, and the singletons built on them or on what tests override (clock, backends).
USE_CASES = (
    "audit_trail",
    "value_reader",
    "audit_service",
    "report_service",
    "scope_service",
    "binding_service",
    "service_account_service",
    "authenticator",
    "resolve_service",
    "secret_service",
    "write_service",
    "read_service",
    "adoption_service",
    "key_service",
    "import_service",
    "export_service",
    "migration_service",
    "version_service",
    "rotation_service",
    "worker_status_service",
)


def reset_use_cases(container: Container) -> None:
    """Forget the use cases built so far, so that the next are built with the providers as
    they are overridden now (a test's clock or backends)."""
    for name in USE_CASES:
        getattr(container, name).reset()


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
    # One trail for every request: a `Caller` actor brings its request's facts to the events.
    audit_trail = providers.Singleton(
        AuditTrail,
        audit_group,
        audit_chain,
        clock,
        sinks=audit_sinks,
        changes=change_feed,
    )
    # A long chain is verified in segments, one process per CPU (up to 4) (`PARALLEL_FROM`).
    audit_segments = providers.Singleton(
        ProcessChainSegments, settings.provided.database_url, processes=VERIFY_PROCESSES
    )
    audit_service = providers.Singleton(
        AuditService,
        unit_of_work.provider,
        trail=audit_trail,
        chain_key=audit_key,
        clock=clock,
        segments=audit_segments,
    )

    report_service = providers.Singleton(
        ReportService, unit_of_work.provider, clock, audit=audit_trail
    )
    scope_service = providers.Singleton(
        ScopeService, unit_of_work.provider, clock, audit=audit_trail
    )
    binding_service = providers.Singleton(
        RoleBindingService, unit_of_work.provider, clock, audit=audit_trail
    )
    service_account_service = providers.Singleton(
        ServiceAccountService, unit_of_work.provider, clock, audit=audit_trail, cache=read_cache
    )
    value_reader = providers.Singleton(ValueReader, backends, clock, checksum)
    resolve_service = providers.Singleton(
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
        audit_trail,
        metrics,
    )
    exported_metrics = providers.Singleton(build_exported_metrics, metrics, engine, clock, settings)
    secret_service = providers.Singleton(
        SecretService,
        uow_factory=unit_of_work.provider,
        backends=backends,
        clock=clock,
        checksum=checksum,
        policy=policy,
        audit=audit_trail,
        types=secret_types,
    )
    write_service = providers.Singleton(
        WriteService,
        uow_factory=unit_of_work.provider,
        backends=backends,
        clock=clock,
        checksum=checksum,
        policy=policy,
        audit=audit_trail,
        types=secret_types,
    )
    read_service = providers.Singleton(
        ReadService,
        unit_of_work.provider,
        value_reader,
        clock,
        audit=audit_trail,
        cache=read_cache,
    )
    adoption_service = providers.Singleton(
        AdoptionService,
        uow_factory=unit_of_work.provider,
        backends=backends,
        clock=clock,
        checksum=checksum,
        policy=policy,
        audit=audit_trail,
    )
    key_service = providers.Singleton(
        KeyService,
        uow_factory=providers.Factory(SqlKeyUnitOfWork, engine).provider,
        key_provider=key_provider,
        rewrapper=providers.Singleton(EnvelopeCipher, key_provider),
        audit=audit_trail,
        clock=clock,
    )
    import_service = providers.Singleton(
        ImportService,
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
    export_service = providers.Singleton(
        ExportService,
        uow_factory=unit_of_work.provider,
        reader=value_reader,
        clock=clock,
        audit=audit_trail,
        formats=formats,
        cipher=export_cipher,
    )

    migration_service = providers.Singleton(
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
    version_service = providers.Singleton(
        VersionService, unit_of_work.provider, backends, clock, audit=audit_trail
    )
    rotators = providers.Singleton(build_rotators, plugin_manager, settings, environ)
    schedule = providers.Singleton(Schedule, providers.Singleton(CroniterSchedule))
    rotation_settings = providers.Singleton(build_rotation_settings, settings)
    rotation_service = providers.Singleton(
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
    worker_status_service = providers.Singleton(
        WorkerStatusService, unit_of_work.provider, worker_registry, clock, audit=audit_trail
    )
