"""Secrets: the secrets of a scope and environment, the create form of each secret type, and a
secret's page (metadata, versions, the value revealed on request, the lifecycle actions).

Every action is the API's use case with the caller as actor. A write names the revision the
page showed (the API's ETag): if the secret changed since, core refuses it (412) and the page
says so instead of overwriting. Revealing a value is a POST, an audited read like the API's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from flask import abort, flash, g, jsonify, redirect, request, url_for

from core.access import allowed, caller_bindings
from core.domain.access import Action
from core.domain.audit import AuditAction, AuditEvent, AuditFilter
from core.domain.errors import InvalidInput, NotFound, PreconditionFailed, ServiceError
from core.domain.paging import PageRequest
from core.domain.rotation import RotationPolicy
from core.domain.secrets import CONSUMERS, RevealedValue, Secret, SecretFilter
from core.domain.values import ScopeRef, ScopeType, SecretValue
from core.secret_access import secret_target
from core.secrets import MetadataChanges, NewSecret
from core.types import DERIVED_TAG_PREFIX
from entrypoints.http.context import request_trail
from entrypoints.http.errors import status_of
from entrypoints.ui.web import bp, container, error_text, failed, page, signed_in, use
from ports.types import SecretType

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
SCOPE = "<string(maxlength=32):scope_type>/<string(maxlength=128):scope_id>"


def scope_of(scope_type: str, scope_id: str) -> ScopeRef:
    try:
        kind = ScopeType(scope_type)
    except ValueError:
        abort(404)
    return ScopeRef.global_scope() if kind is ScopeType.GLOBAL else ScopeRef(kind, scope_id)


def scope_url(ref: ScopeRef, **args: Any) -> str:
    return url_for("ui.secrets", scope_type=ref.type.value, scope_id=ref.id, **args)


def secret_types() -> list[SecretType]:
    return sorted(container().secret_types(), key=lambda kind: kind.name)


# -- the secrets of a scope ----------------------------------------------------------------


@bp.get(f"/scopes/{SCOPE}/secrets")
@signed_in
def secrets(scope_type: str, scope_id: str) -> Any:
    ref = scope_of(scope_type, scope_id)
    environment = request.args.get("environment", "").strip() or None
    search = request.args.get("q", "").strip() or None
    kind = request.args.get("type", "").strip() or None
    deleted = request.args.get("deleted") == "1"
    tag = request.args.get("tag", "").strip()
    number = max(1, request.args.get("page", 1, type=int) or 1)
    shown: dict[str, Any] = {
        "scope": ref,
        "environment": environment or "",
        "search": search or "",
        "kind": kind or "",
        "tag": tag,
        "deleted": deleted,
        "types": secret_types(),
    }
    try:
        criteria = SecretFilter(
            scope=ref,
            environment=environment,
            type=kind,
            prefix=search,
            deleted=deleted,
            tags=tag_filter(tag),
        )
    except InvalidInput as error:
        return page("secrets.html", 400, found=None, error=error_text(error), **shown)
    found = use(container().secret_service).list_secrets(
        g.principal, criteria, PageRequest(number, 100)
    )
    return page(
        "secrets.html",
        found=found,
        rotations=last_rotations(found.items),
        pages=max(1, -(-found.total // found.page_size)),
        **shown,
    )


def tag_filter(text: str) -> dict[str, str]:
    """`key=value` (the value may hold spaces and `=`): the API's `tag=` parameter."""
    if not text:
        return {}
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InvalidInput("search a tag as key=value", details={"field": "tag"})
    return {key.strip(): value.strip()}


def last_rotations(listed: Sequence[Secret]) -> dict[UUID, RotationPolicy]:
    """The rotation policy (its last run: the "last rotated" column) of each listed secret
    that has one. `list_secrets` returned only secrets the caller may list, the right
    `GET /secrets/{id}/rotation` asks; reading them here rather than through `get_policy`
    spares the trail a policy-read event per row of every page view."""
    with container().unit_of_work(read_only=True) as uow:
        found = {secret.id: uow.rotations.get(secret.id) for secret in listed}
    return {secret_id: policy for secret_id, policy in found.items() if policy is not None}


# -- creating a secret ---------------------------------------------------------------------


def chosen_type(name: str) -> SecretType | None:
    return next((kind for kind in secret_types() if kind.name == name), None)


# Types whose value is one text, not a JSON object of their fields: the form asks for the
# whole value and "Check" shows the parts the type reads from it.
WHOLE_VALUE_TYPES = frozenset({"connection_string"})
# Fields holding PEM blocks: several lines, so a text area (never refilled, like every value).
PEM_FIELDS = frozenset({"certificate", "chain", "private_key"})


def value_of(kind: SecretType, form: Any) -> SecretValue:
    """The value the form gives: the whole value when typed in (a connection URL, a PEM), else
    the type's fields as a JSON object (the empty ones left out)."""
    whole = form.get("value", "")
    if kind.fields and kind.name not in WHOLE_VALUE_TYPES and not whole.strip():
        parts = {name: form.get(f"field_{name}", "") for name in kind.fields}
        return SecretValue.from_text(json.dumps({k: v for k, v in parts.items() if v}))
    text = whole
    if form.get("encoding") == "base64":
        try:
            return SecretValue(base64.b64decode(text, validate=True))
        except ValueError:
            raise InvalidInput("the value is not base64", details={"field": "value"}) from None
    return SecretValue.from_text(text)


def tags_of(text: str) -> dict[str, str]:
    """`key=value`, one a line."""
    tags = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise InvalidInput("write each tag as key=value", details={"field": "tags"})
        tags[key.strip()] = value.strip()
    return tags


def moment(text: str, field: str) -> datetime | None:
    """A `datetime-local` input, read as UTC."""
    if not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{field} is not a date and time", details={"field": field}) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def create_page(
    ref: ScopeRef,
    kind: SecretType | None,
    status: int = 200,
    *,
    parts: Mapping[str, str] | None = None,
    **form: Any,
) -> Any:
    return page(
        "secret_new.html",
        status,
        scope=ref,
        types=secret_types(),
        kind=kind,
        consumers=CONSUMERS,
        whole_value=kind is not None and kind.name in WHOLE_VALUE_TYPES,
        pem_fields=PEM_FIELDS,
        parts=parts,
        form=form,
    )


def check_value(ref: ScopeRef, kind: SecretType, form: Any, kept: dict[str, Any]) -> Any:
    """The "Check" button: the value checked by its type's plugin (the check `create_secret`
    makes), nothing stored. The form comes back with what the type reads from the value that is
    not secret (a connection string's host, port, database and user; a certificate's subject
    and expiry) or the type's own message (a key that does not match its certificate), and
    never with the value itself."""
    script = request.headers.get("Accept") == "application/json"  # ui.js: the value stays typed
    try:
        check = container().secret_types().check(kind.name, value_of(kind, form))
    except ServiceError as error:
        if script:
            return jsonify({"error": error_text(error)}), 422
        return create_page(ref, kind, 422, error=error_text(error), **kept)
    if script:
        return jsonify({"parts": dict(check.metadata)})
    return create_page(ref, kind, parts=dict(check.metadata), checked=True, **kept)


@bp.get(f"/scopes/{SCOPE}/secrets/new")
@signed_in
def new_secret(scope_type: str, scope_id: str) -> Any:
    ref = scope_of(scope_type, scope_id)
    kind = chosen_type(request.args.get("type", "generic")) or chosen_type("generic")
    return create_page(ref, kind, environment=request.args.get("environment", ""))


@bp.post(f"/scopes/{SCOPE}/secrets/new")
@signed_in
def create_secret(scope_type: str, scope_id: str) -> Any:
    ref = scope_of(scope_type, scope_id)
    form = request.form
    kind = chosen_type(form.get("type", ""))
    kept: dict[str, Any] = {
        key: form.get(key, "")
        for key in ("name", "environment", "description", "consumer", "tags", "expires_at")
    }
    if kind is None:
        return create_page(ref, None, 400, error="Choose a type of secret.", **kept)
    if form.get("action") == "check":
        return check_value(ref, kind, form, kept)
    try:
        draft = NewSecret(
            scope=ref,
            name=form.get("name", "").strip(),
            environment=form.get("environment", "").strip() or None,
            type=kind.name,
            description=form.get("description", ""),
            tags=tags_of(form.get("tags", "")),
            consumer=form.get("consumer", "other") or "other",
            expires_at=moment(form.get("expires_at", ""), "expires_at"),
        )
        secret = use(container().secret_service).create_secret(
            g.principal, draft, value_of(kind, form)
        )
    except ServiceError as error:  # the form again, with what was typed (never the value)
        return create_page(ref, kind, 400, error=error_text(error), **kept)
    flash(f"Secret {secret.name} created (version {secret.current_version}).", "info")
    return redirect(url_for("ui.secret", secret_id=secret.id))


# -- a secret's page -----------------------------------------------------------------------


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
        return use(container().rotation_service).get_policy(g.principal, secret_id)
    except NotFound:
        return None


def recent_events(secret: Secret) -> list[AuditEvent]:
    """The secret's latest audit events (newest first), as `GET /audit/events?secret=` lists
    them for an auditor of its scope), but for the metadata reads every page view makes."""
    service = container().audit_service(trail=request_trail())
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
    service = use(container().secret_service)
    secret = service.get_secret(g.principal, secret_id, include_deleted=True)
    versions = (
        []
        if secret.is_deleted
        else use(container().version_service).list_versions(g.principal, secret_id)
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
        readers=use(container().binding_service).readers(g.principal, secret_id)
        if audits
        else None,
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
        revealed = use(container().read_service).read_value(g.principal, secret_id, version_asked())
    except ServiceError as error:
        return failed(error, url_for("ui.secret", secret_id=secret_id))
    return secret_page(secret_id, revealed)


@bp.post("/secrets/<uuid:secret_id>/value")
@signed_in
def copy_value(secret_id: UUID) -> Any:
    """The value for the script's "copy" button, which puts it on the clipboard without
    showing it: the same audited read."""
    try:
        revealed = use(container().read_service).read_value(g.principal, secret_id, version_asked())
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


@bp.post("/secrets/<uuid:secret_id>/versions/<int(min=1, max=2147483647):version>/<action>")
@signed_in
def version_action(secret_id: UUID, version: int, action: str) -> Any:
    back = url_for("ui.secret", secret_id=secret_id)
    if action not in ACTIONS:
        abort(404)
    try:
        versions = use(container().version_service)
        getattr(versions, action)(
            g.principal, secret_id, version, expected_revision=revision_given()
        )
    except ServiceError as error:
        flash(changed_meanwhile(error), "error")
        return redirect(back)
    flash(f"Version {version}: {action}d.", "info")
    return redirect(back)


@bp.post("/secrets/<uuid:secret_id>/rollback")
@signed_in
def rollback(secret_id: UUID) -> Any:
    back = url_for("ui.secret", secret_id=secret_id)
    try:
        version = version_asked()
        if version is None:
            raise InvalidInput("choose the version to roll back to", details={"field": "version"})
        secret = use(container().secret_service).rollback(
            g.principal, secret_id, version, expected_revision=revision_given()
        )
    except ServiceError as error:
        flash(changed_meanwhile(error), "error")
        return redirect(back)
    flash(f"Rolled back: version {secret.current_version} has version {version}'s value.", "info")
    return redirect(back)


@bp.post("/secrets/<uuid:secret_id>/metadata")
@signed_in
def update_metadata(secret_id: UUID) -> Any:
    """Description, tags, expiry and not-before (an empty date clears it), as `PATCH` does,
    at the revision the page showed (its ETag)."""
    back = url_for("ui.secret", secret_id=secret_id)
    form = request.form
    try:
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
        current = use(container().secret_service).get_secret(g.principal, secret_id)
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
        use(container().secret_service).update_metadata(
            g.principal, secret_id, changes, expected_revision=expected
        )
    except ServiceError as error:
        flash(changed_meanwhile(error), "error")
        return redirect(back)
    flash("Metadata saved.", "info")
    return redirect(back)


@bp.post("/secrets/<uuid:secret_id>/versions")
@signed_in
def write_value(secret_id: UUID) -> Any:
    """A new value, as the next (current) version."""
    back = url_for("ui.secret", secret_id=secret_id)
    try:
        text = request.form.get("value", "")
        if not text:
            raise InvalidInput("the new value is empty", details={"field": "value"})
        secret = use(container().secret_service).write_value(
            g.principal,
            secret_id,
            SecretValue.from_text(text),
            expected_revision=revision_given(),
        )
    except ServiceError as error:
        flash(changed_meanwhile(error), "error")
        return redirect(back)
    flash(f"Version {secret.current_version} written.", "info")
    return redirect(back)


@bp.post("/secrets/<uuid:secret_id>/rotate")
@signed_in
def rotate(secret_id: UUID) -> Any:
    """Rotate now, by the secret's rotation policy (its rotator makes the value)."""
    back = url_for("ui.secret", secret_id=secret_id)
    try:
        secret = use(container().rotation_service).rotate(
            g.principal, secret_id, None, expected_revision=revision_given()
        )
    except ServiceError as error:
        flash(changed_meanwhile(error), "error")
        return redirect(back)
    flash(f"Rotated: version {secret.current_version} is current.", "info")
    return redirect(back)


@bp.post("/secrets/<uuid:secret_id>/delete")
@signed_in
def delete(secret_id: UUID) -> Any:
    back = url_for("ui.secret", secret_id=secret_id)
    try:
        use(container().secret_service).delete_secret(
            g.principal, secret_id, expected_revision=revision_given()
        )
    except ServiceError as error:
        flash(changed_meanwhile(error), "error")
        return redirect(back)
    flash("Secret deleted: it can be restored during the retention window.", "info")
    return redirect(back)


@bp.post("/secrets/<uuid:secret_id>/restore")
@signed_in
def restore(secret_id: UUID) -> Any:
    back = url_for("ui.secret", secret_id=secret_id)
    try:
        use(container().secret_service).restore_secret(
            g.principal, secret_id, expected_revision=revision_given()
        )
    except ServiceError as error:
        flash(changed_meanwhile(error), "error")
        return redirect(back)
    flash("Secret restored.", "info")
    return redirect(back)
