"""The hook specifications of the `secret_management` plugin system.

A plugin is a module or object with functions marked `@hookimpl`, published under the
`secret_management` entry-point group. Hooks are called with keyword arguments, so a spec may
gain arguments later without breaking plugins. `register_*` hooks return lists; the host
flattens them and refuses duplicate names.
"""

from __future__ import annotations

import pluggy

from ports.audit import AuditSinkPlugin
from ports.formats import SecretFormat
from ports.rotation import RotatorPlugin
from ports.security import KeyProviderPlugin
from ports.storage import BackendPlugin
from ports.types import SecretType

PROJECT = "secret_management"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def secret_management_register_backends() -> list[BackendPlugin]:  # type: ignore[empty-body]
    """Storage backend kinds this plugin contributes (configured by `plugin = "<name>"`).

    Each `BackendPlugin` names a factory called with the instance's name, its own settings and
    a `BackendContext`; the backend it makes runs `plugins.testing.BackendContract`."""


@hookspec
def secret_management_register_key_providers() -> list[KeyProviderPlugin]:  # type: ignore[empty-body]
    """Key-encryption-key provider kinds this plugin contributes (`[keys] provider = "<name>"`).

    The factory gets the `[keys]` settings (without `provider`) and a `KeyProviderContext`; the
    provider runs `plugins.testing.KeyProviderContract`."""


@hookspec
def secret_management_register_audit_sinks() -> list[AuditSinkPlugin]:  # type: ignore[empty-body]
    """Audit sink kinds this plugin contributes (`[audit] sinks = ["<name>"]`).

    The factory gets the sink's `[audit.<name>]` table; the sink runs
    `plugins.testing.AuditSinkContract`."""


@hookspec
def secret_management_register_secret_types() -> list[SecretType]:  # type: ignore[empty-body]
    """Secret types this plugin contributes (a secret's `type`): their checks and rendering.

    Each `SecretType` instance runs `plugins.testing.SecretTypeContract`."""


@hookspec
def secret_management_register_formats() -> list[SecretFormat]:  # type: ignore[empty-body]
    """Import/export file formats this plugin contributes (an import's or export's `format`).

    Each `SecretFormat` instance runs `plugins.testing.FormatContract`."""


@hookspec
def secret_management_register_rotators() -> list[RotatorPlugin]:  # type: ignore[empty-body]
    """Rotator kinds this plugin contributes (a rotation policy's `rotator`).

    The factory gets a `RotatorContext` (the operator's rotation targets); the rotator runs
    `plugins.testing.RotatorContract`."""
