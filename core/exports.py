"""Export: the secrets of one scope and environment at once, as a format plugin's file.

Metadata by default (for callers who may list the scope), values only for an admin of the scope,
each read through `core.reads.ValueReader` (the one value-read path) and audited before the file
is returned (fail closed). With a passphrase the file is sealed (`ports.formats.ExportCipher`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from core.access import access_query, authorize
from core.audit import Attempt, AuditTrail
from core.domain.access import Action, Target
from core.domain.audit import AuditAction, AuditEvent
from core.domain.errors import (
    InvalidInput,
    NotFound,
)
from core.domain.secrets import Secret, SecretFilter, SecretVersion
from core.domain.values import Principal
from core.formats import FormatRegistry
from core.reads import ValueReader
from core.secret_access import search_all
from core.transfer_requests import (
    ExportFile,
    ExportRequest,
)
from ports.formats import (
    ExportCipher,
    ExportDocument,
    ExportedVersion,
    ExportEntry,
    SecretFormat,
)
from ports.security import Clock
from ports.unit_of_work import UnitOfWork

MIN_PASSPHRASE = 12


class ExportService:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        reader: ValueReader,
        clock: Clock,
        audit: AuditTrail,
        formats: FormatRegistry,
        cipher: ExportCipher,
    ) -> None:
        self._uow_factory = uow_factory
        self._reader = reader
        self._clock = clock
        self._audit = audit
        self._formats = formats
        self._cipher = cipher

    def export_secrets(self, actor: Principal, request: ExportRequest) -> ExportFile:
        """The secrets of the scope and environment as a file. Values need admin of the scope."""
        secret_format = self._formats.get(request.format)
        if not request.include_values and not secret_format.carries_metadata:
            raise InvalidInput(
                f"the {secret_format.name} format holds values only: include values, or use a "
                "format that carries metadata",
                details={"field": "include_values"},
            )
        if request.passphrase is not None and len(request.passphrase) < MIN_PASSPHRASE:
            raise InvalidInput(
                f"a passphrase has at least {MIN_PASSPHRASE} characters",
                details={"field": "passphrase"},
            )
        action = Action.ADMIN if request.include_values else Action.LIST
        details = {
            "format": secret_format.name,
            "environment": request.environment,
            "include_values": request.include_values,
            "include_versions": request.include_versions,
            "sealed": request.passphrase is not None,
        }
        with self._audit.attempt(
            actor, AuditAction.SECRET_EXPORT, f"scope:{request.scope}", scope=str(request.scope)
        ) as attempt:
            attempt.learn(details=details)
            with self._uow_factory() as uow:
                scope = uow.scopes.get(request.scope)
                if scope is None:
                    raise NotFound(f"no scope {request.scope}")
                attempt.learn(scope_path=scope.path)
                now = self._clock.now()
                authorize(uow, actor, action, Target(request.scope, scope.path), now)
                listed = self._listed(uow, actor, action, request, now)
            read = [self._read_versions(request, secret_format, *item) for item in listed]
            entries = [
                _export_entry(secret, versions, request.include_versions)
                for (secret, _), versions in zip(listed, read, strict=True)
            ]
            content = secret_format.render(
                ExportDocument(
                    scope=request.scope,
                    environment=request.environment,
                    exported_at=now,
                    includes_values=request.include_values,
                    includes_versions=request.include_versions,
                    entries=entries,
                )
            )
            if request.passphrase is not None:
                content = self._cipher.seal(content, request.passphrase, secret_format.name)
            events = [
                _read_event(attempt, secret, version)
                for (secret, _), versions in zip(listed, read, strict=True)
                for version in versions
                if version.value is not None
            ]
            with self._uow_factory() as uow:
                counts = {"secrets": len(entries), "values": len(events)}
                attempt.succeed(uow, details={**details, **counts}, also=events)
                uow.commit()
            return ExportFile(
                content=content,
                format=secret_format.name,
                media_type=(
                    secret_format.media_type
                    if request.passphrase is None
                    else "application/octet-stream"
                ),
                filename=_export_filename(request, secret_format),
                secrets=len(entries),
                values=len(events),
                sealed=request.passphrase is not None,
                omitted=tuple(
                    (entry.secret.name, entry.unavailable or "")
                    for entry in entries
                    if request.include_values and entry.value is None
                ),
            )

    def _listed(
        self,
        uow: UnitOfWork,
        actor: Principal,
        action: Action,
        request: ExportRequest,
        now: datetime,
    ) -> list[tuple[Secret, list[SecretVersion]]]:
        """The scope's live secrets of the environment, by name, with the versions to export."""
        criteria = SecretFilter(scope=request.scope, environment=request.environment)
        found = [
            secret
            for secret in search_all(uow, criteria, access_query(actor, action, now))
            if secret.environment == request.environment
        ]
        listed = []
        for secret in sorted(found, key=lambda s: s.name):
            if request.include_versions:
                versions = uow.secrets.list_versions(secret.id)
            else:
                current = uow.secrets.get_version(secret.id, secret.current_version)
                versions = [current] if current is not None else []
            listed.append((secret, versions))
        return listed

    def _read_versions(
        self,
        request: ExportRequest,
        secret_format: SecretFormat,
        secret: Secret,
        records: list[SecretVersion],
    ) -> list[ExportedVersion]:
        """The versions to export, with their values when values are asked for, may be served
        and fit the format (text in a text format, what a `.env` file can hold…)."""
        if not request.include_values:
            return [ExportedVersion(record) for record in records]
        exported = []
        for record in records:
            value, unavailable = self._reader.read_or_reason(secret, record)
            if value is None:
                exported.append(ExportedVersion(record, unavailable=unavailable))
                continue
            unavailable = secret_format.cannot_hold(secret.name, value)
            exported.append(
                ExportedVersion(
                    record, value=None if unavailable else value, unavailable=unavailable
                )
            )
        return exported


def _export_entry(
    secret: Secret, versions: list[ExportedVersion], include_versions: bool
) -> ExportEntry:
    current = next((v for v in versions if v.record.version == secret.current_version), None)
    return ExportEntry(
        secret,
        value=current.value if current else None,
        unavailable=current.unavailable if current else "no current version",
        versions=tuple(versions) if include_versions else (),
    )


def _read_event(attempt: Attempt, secret: Secret, version: ExportedVersion) -> AuditEvent:
    """The `secret.read_value` event of a value written to an export file."""
    event = attempt.related(
        AuditAction.SECRET_READ_VALUE,
        f"secret:{secret.id}",
        version=version.record.version,
        scope=str(secret.scope),
        scope_path=secret.scope_path,
    )
    return replace(event, details={"via": "export"})


def _export_filename(request: ExportRequest, secret_format: SecretFormat) -> str:
    name = f"{request.scope.type.value}-{request.scope.id}"
    if request.environment:
        name += f"-{request.environment}"
    name += secret_format.extensions[0] if secret_format.extensions else ""
    return name + (".sealed" if request.passphrase is not None else "")
