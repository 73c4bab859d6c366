"""How each piece the container holds is built from the settings: the key provider, the backends,
the engine, authentication, audit sinks, registries, rotators and the worker's settings. Only
the container (entrypoints/container.py) calls these."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pluggy
from sqlalchemy import Engine

from adapters.db.audit_appender import PostgresChainAppender
from adapters.db.engine import create_engine_from_url
from adapters.identity import (
    BearerAuthenticator,
    DevRootTokenAuthenticator,
    IssuerAuthenticator,
    JwtAuthenticator,
)
from adapters.webhooks import WebhookPublisher, configured_targets
from core.backends import BackendRegistry
from core.domain.errors import ConfigurationError
from core.events import ChangeFeed, DeliveryPolicy
from core.formats import FormatRegistry
from core.policy import SecretPolicy
from core.read_cache import ReadCache
from core.registry import Registry
from core.rotation_policies import RotationSettings
from core.service_accounts import ServiceAccountService
from core.types import TypeRegistry
from core.worker import WorkerSettings
from entrypoints.config import Settings
from entrypoints.http.metrics import MULTIPROCESS_DIR
from plugins.manager import (
    audit_sink_plugins,
    backend_plugins,
    create_backend,
    format_plugins,
    key_provider_plugins,
    rotator_plugins,
    secret_type_plugins,
)
from ports.audit import AuditSink
from ports.events import EventPublisher
from ports.repositories.audit import ChainAppender
from ports.rotation import Rotator, RotatorContext
from ports.security import Authenticator, Clock, KeyProvider, KeyProviderContext
from ports.storage import BackendContext

if TYPE_CHECKING:
    from adapters.metrics import ServiceMetrics


def build_key_provider(
    settings: Settings, plugin_manager: pluggy.PluginManager, environ: Mapping[str, str]
) -> KeyProvider:
    options = dict(settings.keys)
    name = options.pop("provider", "auto")
    available = Registry(
        "key provider",
        key_provider_plugins(plugin_manager),
        listed_as="available",
        refuse=lambda message: ConfigurationError(f"configuration key 'keys.provider': {message}"),
    )
    plugin = available.get(name)
    context = KeyProviderContext(
        data_dir=str(settings.data_dir), environ=environ, production=settings.production
    )
    return plugin.factory(options, context)


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
    available = Registry(
        "sink",
        audit_sink_plugins(plugin_manager),
        listed_as="available",
        refuse=lambda message: ConfigurationError(
            f"configuration key 'audit.sinks': {message}", details={"key": "audit.sinks"}
        ),
    )
    tables = {key for key, value in settings.audit.items() if isinstance(value, Mapping)}
    unclaimed = sorted(tables - set(available.names()))
    if unclaimed:
        raise ConfigurationError(
            f"configuration key 'audit.{unclaimed[0]}': settings of a sink no plugin provides; "
            f"available: {', '.join(available.names())}",
            details={"key": f"audit.{unclaimed[0]}"},
        )
    sinks = []
    for name in settings.audit.get("sinks", []):
        sinks.append(available.get(name).factory(settings.audit.get(name, {})))
    try:
        yield sinks
    finally:
        for sink in sinks:
            sink.close()


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
