"""Secrets: the secrets of a scope and environment, and the create form of each secret type
(the value checked by its type before anything is stored). A secret's own page is secret_page.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from flask import abort, flash, g, jsonify, redirect, request, url_for

from core.domain.errors import InvalidInput, ServiceError
from core.domain.paging import PageRequest
from core.domain.rotation import RotationPolicy
from core.domain.secrets import CONSUMERS, Secret, SecretFilter
from core.domain.values import ScopeRef, ScopeType, SecretValue
from core.secrets import NewSecret
from entrypoints.ui.web import bp, container, error_text, page, signed_in
from ports.types import SecretType

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
    found = (
        container().secret_service().list_secrets(g.principal, criteria, PageRequest(number, 100))
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
        secret = (
            container().secret_service().create_secret(g.principal, draft, value_of(kind, form))
        )
    except ServiceError as error:  # the form again, with what was typed (never the value)
        return create_page(ref, kind, 400, error=error_text(error), **kept)
    flash(f"Secret {secret.name} created (version {secret.current_version}).", "info")
    return redirect(url_for("ui.secret", secret_id=secret.id))


# -- a secret's page -----------------------------------------------------------------------
