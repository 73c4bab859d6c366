"""The composition root: the one place that knows which adapter implements which port.

The web app, the CLI and the worker build the same container. Shared infrastructure (engine,
plugin manager, key provider, backends) are singletons; units of work and use cases are built
per call. Tests replace a provider with `container.<name>.override(...)`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import pluggy
from dependency_injector import containers, providers

from adapters.clock import SystemClock
from adapters.db.engine import create_engine_from_url
from adapters.db.uow import SqlUnitOfWork
from adapters.identity import BearerAuthenticator, DevRootTokenAuthenticator, JwtAuthenticator
from core.adoption import AdoptionService
from core.audit import AuditChain, AuditTrail, derive_checkpoint_key
from core.audit_service import AuditService
from core.backends import BackendRegistry
from core.bindings import RoleBindingService
from core.errors import ConfigurationError
from core.policy import SecretPolicy, ValueChecksum
from core.reports import ReportService
from core.resolution import ResolveService
from core.scopes import ScopeService
from core.service_accounts import ServiceAccountService
from core.services import SecretService, ValueReader
from entrypoints.config import Settings
from plugins.manager import (
    audit_sink_plugins,
    backend_plugins,
    build_plugin_manager,
    create_backend,
    key_provider_plugins,
)
from ports.audit import AuditSink
from ports.security import Authenticator, KeyProvider, KeyProviderContext
from ports.storage import BackendContext


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
) -> Iterator[BackendRegistry]:
    available = backend_plugins(plugin_manager)
    context = BackendContext(database=engine, key_provider=key_provider)
    instances = {
        name: create_backend(name, options, available, context)
        for name, options in settings.backends.items()
    }
    registry = BackendRegistry(instances, default=settings.default_backend)
    try:
        yield registry
    finally:
        registry.close()


def open_engine(url: str) -> Iterator[Any]:
    engine = create_engine_from_url(url)
    try:
        yield engine
    finally:
        engine.dispose()


def build_authenticator(
    settings: Settings, environ: Mapping[str, str], accounts: ServiceAccountService
) -> Authenticator:
    jwt_settings = settings.identity.get("jwt")
    return BearerAuthenticator(
        api_tokens=accounts.authenticate,
        jwt_authenticator=JwtAuthenticator(jwt_settings, environ) if jwt_settings else None,
        dev_root=DevRootTokenAuthenticator(settings.dev_root_token)
        if settings.dev_root_token
        else None,
    )


def open_audit_sinks(
    settings: Settings, plugin_manager: pluggy.PluginManager
) -> Iterator[list[AuditSink]]:
    available = audit_sink_plugins(plugin_manager)
    sinks = []
    for name in settings.audit.get("sinks", []):
        if name not in available:
            raise ConfigurationError(
                f"configuration key 'audit.sinks': unknown sink '{name}'; "
                f"available: {', '.join(sorted(available))}"
            )
        sinks.append(available[name].factory(settings.audit.get(name, {})))
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


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    environ = providers.Object(os.environ)

    plugin_manager = providers.Singleton(
        build_plugin_manager, blocked=settings.provided.disabled_plugins
    )
    engine = providers.Resource(open_engine, settings.provided.database_url)
    clock = providers.Singleton(SystemClock)
    key_provider = providers.Singleton(build_key_provider, settings, plugin_manager, environ)
    backends = providers.Resource(open_backends, settings, plugin_manager, engine, key_provider)
    checksum = providers.Singleton(ValueChecksum, key_provider.provided.checksum_key.call())
    policy = providers.Singleton(build_policy, settings)
    unit_of_work = providers.Factory(SqlUnitOfWork, engine)

    audit_key = providers.Singleton(
        derive_checkpoint_key, key_provider.provided.checksum_key.call()
    )
    audit_chain = providers.Singleton(
        AuditChain, audit_key, settings.provided.audit.get.call("checkpoint_every", 1000)
    )
    audit_sinks = providers.Resource(open_audit_sinks, settings, plugin_manager)
    # Views pass `request=RequestInfo(...)`; the CLI and the worker use the default.
    audit_trail = providers.Factory(
        AuditTrail, unit_of_work.provider, audit_chain, clock, sinks=audit_sinks
    )
    audit_service = providers.Factory(
        AuditService, unit_of_work.provider, trail=audit_trail, chain_key=audit_key, clock=clock
    )

    report_service = providers.Factory(
        ReportService, unit_of_work.provider, clock, audit=audit_trail
    )
    scope_service = providers.Factory(ScopeService, unit_of_work.provider, clock, audit=audit_trail)
    binding_service = providers.Factory(
        RoleBindingService, unit_of_work.provider, clock, audit=audit_trail
    )
    service_account_service = providers.Factory(
        ServiceAccountService, unit_of_work.provider, clock, audit=audit_trail
    )
    value_reader = providers.Factory(ValueReader, backends, clock, checksum)
    resolve_service = providers.Factory(
        ResolveService, unit_of_work.provider, value_reader, clock, audit=audit_trail
    )
    authenticator = providers.Singleton(
        build_authenticator, settings, environ, service_account_service
    )
    secret_service = providers.Factory(
        SecretService,
        uow_factory=unit_of_work.provider,
        backends=backends,
        clock=clock,
        checksum=checksum,
        policy=policy,
        audit=audit_trail,
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
