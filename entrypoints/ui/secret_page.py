"""A secret's page: metadata, versions, the value revealed on request, the lifecycle actions.

Every action is the API's use case with the caller as actor. A write names the revision the
page showed (the API's ETag): if the secret changed since, core refuses it (412) and the page
says so instead of overwriting. Revealing a value is a POST, an audited read like the API's.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from uuid import UUID

from flask import abort, flash, g, jsonify, redirect, request, url_for

from core.access import allowed, caller_bindings
from core.domain.access import Action
from core.domain.audit import AuditAction, AuditEvent, AuditFilter
from core.domain.errors import InvalidInput, NotFound, PreconditionFailed, ServiceError
from core.domain.rotation import RotationPolicy
from core.domain.secrets import RevealedValue, Secret
from core.domain.values import SecretValue
from core.secret_access import secret_target
from core.secrets import MetadataChanges
from core.types import DERIVED_TAG_PREFIX
from entrypoints.http.errors import status_of
from entrypoints.ui.secrets import moment, scope_url, tags_of
from entrypoints.ui.web import bp, container, error_text, failed, page, signed_in

RECENT_EVENTS = 10
# What opening a secret's page records: left out of its "recent events" (the API lists them).
PAGE_VIEWS = frozenset(
    {
        AuditAction.SECRET_READ_METADATA,
        AuditAction.SECRET_LIST_VERSIONS,
        AuditAction.SECRET_ROTATION_POLICY_READ,
        AuditAction.SECRET_ACCESS_REPORT,
    }
)


def abilities(secret: Secret) -> frozenset[Action]:
    """What the caller may do to the secret, by core's own rule and bindings: what decides
    which parts and buttons the page shows (core checks again when one is used)."""
    now = container().clock().now()
    with container().unit_of_work(read_only=True) as uow:
        bindings = caller_bindings(uow, g.principal, now)
    target = secret_target(secret)
    return frozenset(
        action for action in Action if allowed(g.principal, action, target, bindings, now)
    )


def rotation_policy(secret_id: UUID) -> RotationPolicy | None:
    try:
        return container().rotation_service().get_policy(g.principal, secret_id)
    except NotFound:
        return None


def recent_events(secret: Secret) -> list[AuditEvent]:
    """The secret's latest audit events (newest first), as `GET /audit/events?secret=` lists
    them for an auditor of its scope), but for the metadata reads every page view makes."""
    service = container().audit_service()
    criteria = AuditFilter(resource=f"secret:{secret.id}")
    found = service.search(g.principal, criteria, secret.scope, 5 * RECENT_EVENTS)
    return [event for event in found if event.action not in PAGE_VIEWS][:RECENT_EVENTS]


def value_text(revealed: RevealedValue) -> tuple[str, str]:
    raw = revealed.value.reveal()
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def secret_page(secret_id: UUID, revealed: RevealedValue | None = None) -> Any:
    service = container().secret_service()
    secret = service.get_secret(g.principal, secret_id, include_deleted=True)
    versions = (
        []
        if secret.is_deleted
        else container().version_service().list_versions(g.principal, secret_id)
    )
    text, encoding = value_text(revealed) if revealed else (None, None)
    may = abilities(secret)
    audits = Action.AUDIT in may
    return page(
        "secret.html",
        secret=secret,
        versions=sorted(versions, key=lambda record: record.version, reverse=True),
        may_reveal=not secret.is_deleted and Action.READ_VALUE in may,
        may_write=Action.WRITE in may,
        rotation=None if secret.is_deleted else rotation_policy(secret_id),
        readers=container().binding_service().readers(g.principal, secret_id) if audits else None,
        events=recent_events(secret) if audits else None,
        own_tags={k: v for k, v in secret.tags.items() if not k.startswith(DERIVED_TAG_PREFIX)},
        revealed=revealed,
        value=text,
        encoding=encoding,
        scope_url=scope_url(secret.scope, environment=secret.environment or ""),
    )


@bp.get("/secrets/<uuid:secret_id>")
@signed_in
def secret(secret_id: UUID) -> Any:
    return secret_page(secret_id)


def version_asked() -> int | None:
    version = request.form.get("version", "").strip()
    if not version:
        return None
    if not version.isdigit() or len(version) > 9:
        raise InvalidInput("no such version", details={"field": "version"})
    return int(version)


@bp.post("/secrets/<uuid:secret_id>/reveal")
@signed_in
def reveal(secret_id: UUID) -> Any:
    """Show the value: an audited read (`secret.read_value`), refused by core to a viewer."""
    try:
        revealed = container().read_service().read_value(g.principal, secret_id, version_asked())
    except ServiceError as error:
        return failed(error, url_for("ui.secret", secret_id=secret_id))
    return secret_page(secret_id, revealed)


@bp.post("/secrets/<uuid:secret_id>/value")
@signed_in
def copy_value(secret_id: UUID) -> Any:
    """The value for the script's "copy" button, which puts it on the clipboard without
    showing it: the same audited read."""
    try:
        revealed = container().read_service().read_value(g.principal, secret_id, version_asked())
    except ServiceError as error:
        return jsonify({"error": error_text(error)}), status_of(error)
    text, encoding = value_text(revealed)
    return jsonify({"value": text, "encoding": encoding})


def revision_given() -> int:
    """The revision the page showed (its ETag): the check-and-set of every write."""
    text = request.form.get("revision", "")
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput("the form names no revision: reload the page", details={})
    return int(text)


def changed_meanwhile(error: ServiceError) -> str:
    if isinstance(error, PreconditionFailed):
        return (
            "This secret was changed by someone else since the page was loaded; nothing was "
            "overwritten. Review the current state below and try again."
        )
    return error_text(error)


ACTIONS = ("disable", "enable", "destroy")


def back_to_secret(secret_id: UUID, change: Callable[[], str]) -> Any:
    """Make `change` and go back to the secret's page, telling what it did (what it returns)
    or why it was refused."""
    back = url_for("ui.secret", secret_id=secret_id)
    try:
        done = change()
    except ServiceError as error:
        flash(changed_meanwhile(error), "error")
        return redirect(back)
    flash(done, "info")
    return redirect(back)


@bp.post("/secrets/<uuid:secret_id>/versions/<int(min=1, max=2147483647):version>/<action>")
@signed_in
def version_action(secret_id: UUID, version: int, action: str) -> Any:
    if action not in ACTIONS:
        abort(404)

    def change() -> str:
        versions = container().version_service()
        getattr(versions, action)(
            g.principal, secret_id, version, expected_revision=revision_given()
        )
        return f"Version {version}: {action}d."

    return back_to_secret(secret_id, change)


@bp.post("/secrets/<uuid:secret_id>/rollback")
@signed_in
def rollback(secret_id: UUID) -> Any:
    def change() -> str:
        version = version_asked()
        if version is None:
            raise InvalidInput("choose the version to roll back to", details={"field": "version"})
        secret = (
            container()
            .write_service()
            .rollback(g.principal, secret_id, version, expected_revision=revision_given())
        )
        return f"Rolled back: version {secret.current_version} has version {version}'s value."

    return back_to_secret(secret_id, change)


@bp.post("/secrets/<uuid:secret_id>/metadata")
@signed_in
def update_metadata(secret_id: UUID) -> Any:
    """Description, tags, expiry and not-before (an empty date clears it), as `PATCH` does,
    at the revision the page showed (its ETag)."""
    form = request.form

    def change() -> str:
        expires_at = moment(form.get("expires_at", ""), "expires_at")
        not_before = moment(form.get("not_before", ""), "not_before")
        tags = tags_of(form.get("tags", ""))
        if any(key.startswith(DERIVED_TAG_PREFIX) for key in tags):
            raise InvalidInput(
                f"the {DERIVED_TAG_PREFIX}* tags come from the value and cannot be set",
                details={"field": "tags"},
            )
        expected = revision_given()
        # the tags replace the secret's own; the derived ones it has stay (read at the revision
        # the page showed: if it changed since, the update below is refused)
        current = container().secret_service().get_secret(g.principal, secret_id)
        derived = {k: v for k, v in current.tags.items() if k.startswith(DERIVED_TAG_PREFIX)}
        changes = MetadataChanges(
            description=form.get("description", ""),
            tags=tags | derived,
            expires_at=expires_at,
            not_before=not_before,
            clear=frozenset(
                name
                for name, value in (("expires_at", expires_at), ("not_before", not_before))
                if value is None
            ),
        )
        container().secret_service().update_metadata(
            g.principal, secret_id, changes, expected_revision=expected
        )
        return "Metadata saved."

    return back_to_secret(secret_id, change)


@bp.post("/secrets/<uuid:secret_id>/versions")
@signed_in
def write_value(secret_id: UUID) -> Any:
    """A new value, as the next (current) version."""

    def change() -> str:
        text = request.form.get("value", "")
        if not text:
            raise InvalidInput("the new value is empty", details={"field": "value"})
        secret = (
            container()
            .write_service()
            .write_value(
                g.principal,
                secret_id,
                SecretValue.from_text(text),
                expected_revision=revision_given(),
            )
        )
        return f"Version {secret.current_version} written."

    return back_to_secret(secret_id, change)


@bp.post("/secrets/<uuid:secret_id>/rotate")
@signed_in
def rotate(secret_id: UUID) -> Any:
    """Rotate now, by the secret's rotation policy (its rotator makes the value)."""

    def change() -> str:
        secret = (
            container()
            .rotation_service()
            .rotate(g.principal, secret_id, None, expected_revision=revision_given())
        )
        return f"Rotated: version {secret.current_version} is current."

    return back_to_secret(secret_id, change)


@bp.post("/secrets/<uuid:secret_id>/delete")
@signed_in
def delete(secret_id: UUID) -> Any:
    def change() -> str:
        container().secret_service().delete_secret(
            g.principal, secret_id, expected_revision=revision_given()
        )
        return "Secret deleted: it can be restored during the retention window."

    return back_to_secret(secret_id, change)


@bp.post("/secrets/<uuid:secret_id>/restore")
@signed_in
def restore(secret_id: UUID) -> Any:
    def change() -> str:
        container().secret_service().restore_secret(
            g.principal, secret_id, expected_revision=revision_given()
        )
        return "Secret restored."

    return back_to_secret(secret_id, change)
