"""Access: the role bindings held at a scope (listed, granted with a role, an optional narrowing
to one secret or a name glob and an expiry, removed), and the service accounts a scope owns with
their API tokens (a new token is shown once, on the answer to the form that issued it, and never
again: only its hash is kept). The same use cases as `/api/v1/role-bindings` and
`/api/v1/service-accounts`; core refuses whoever does not administer the scope."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import flash, g, redirect, request, url_for

from core.bindings import NewBinding, RoleBindingService
from core.domain.access import Action, Role
from core.domain.errors import InvalidInput, ServiceError
from core.domain.paging import PageRequest
from core.domain.values import ScopeRef, ScopeType
from core.service_accounts import ServiceAccountService
from entrypoints.http.errors import status_of
from entrypoints.ui.rights import scopes_allowing
from entrypoints.ui.scopes import visible_scopes
from entrypoints.ui.secrets import SCOPE, moment, scope_of
from entrypoints.ui.web import bp, container, error_text, failed, nav_item, page, signed_in

LISTED = 100

nav_item("ui.access", "Access", order=30)


def bindings() -> RoleBindingService:
    return container().binding_service()


def accounts() -> ServiceAccountService:
    return container().service_account_service()


def access_url(ref: ScopeRef) -> str:
    return url_for("ui.scope_access", scope_type=ref.type.value, scope_id=ref.id)


@bp.get("/access")
@signed_in
def access() -> Any:
    """The scopes whose access the caller manages (admins), and the caller's own bindings."""
    found, _ = visible_scopes()
    managed = scopes_allowing(Action.ADMIN, [scope.ref for scope in found])
    mine = None
    if not g.principal.is_root:
        mine = bindings().list_bindings(g.principal, None, g.principal.id, PageRequest(1, LISTED))
    return page(
        "access_index.html",
        managed=[scope for scope in found if scope.ref in managed],
        mine=mine,
    )


def scope_access_page(ref: ScopeRef, status: int = 200, **extra: Any) -> Any:
    held = bindings().list_bindings(g.principal, ref, None, PageRequest(1, LISTED))
    owned = (
        None
        if ref.type is ScopeType.USER
        else accounts().list_accounts(g.principal, ref, PageRequest(1, LISTED))
    )
    return page(
        "access.html",
        status,
        scope=ref,
        held=held,
        owned=owned,
        roles=[role.value for role in Role],
        form=extra.pop("form", {}),
        **extra,
    )


@bp.get(f"/scopes/{SCOPE}/access")
@signed_in
def scope_access(scope_type: str, scope_id: str) -> Any:
    return scope_access_page(scope_of(scope_type, scope_id))


def optional_uuid(text: str, field: str) -> UUID | None:
    if not text.strip():
        return None
    try:
        return UUID(text.strip())
    except ValueError:
        raise InvalidInput(f"{field} is not a secret id (UUID)", details={"field": field}) from None


@bp.post(f"/scopes/{SCOPE}/access/bindings")
@signed_in
def grant(scope_type: str, scope_id: str) -> Any:
    ref = scope_of(scope_type, scope_id)
    form = request.form
    try:
        try:
            role = Role(form.get("role", ""))
        except ValueError:
            raise InvalidInput("choose a role", details={"field": "role"}) from None
        draft = NewBinding(
            principal=form.get("principal", "").strip(),
            role=role,
            scope=ref,
            secret_id=optional_uuid(form.get("secret_id", ""), "secret_id"),
            name_pattern=form.get("name_pattern", "").strip() or None,
            expires_at=moment(form.get("expires_at", ""), "expires_at"),
        )
        created = bindings().create(g.principal, draft)
    except ServiceError as error:
        return scope_access_page(ref, status_of(error), error=error_text(error), form=form)
    flash(f"{created.principal} is now {created.role.value} at {ref}.", "info")
    return redirect(access_url(ref))


@bp.post(f"/scopes/{SCOPE}/access/bindings/<uuid:binding_id>/delete")
@signed_in
def revoke_binding(scope_type: str, scope_id: str, binding_id: UUID) -> Any:
    ref = scope_of(scope_type, scope_id)
    try:
        bindings().delete(g.principal, binding_id)
    except ServiceError as error:
        return failed(error, access_url(ref))
    flash("Role binding removed.", "info")
    return redirect(access_url(ref))


# -- service accounts and their tokens -----------------------------------------------------


@bp.post(f"/scopes/{SCOPE}/access/service-accounts")
@signed_in
def create_account(scope_type: str, scope_id: str) -> Any:
    ref = scope_of(scope_type, scope_id)
    try:
        account = accounts().create(
            g.principal,
            request.form.get("name", "").strip(),
            ref,
            request.form.get("description", "").strip(),
        )
    except ServiceError as error:
        return failed(error, access_url(ref))
    flash(f"Service account {account.principal} created: grant it roles with a binding.", "info")
    return redirect(url_for("ui.service_account", account_id=account.id))


def account_page(account_id: UUID, status: int = 200, **extra: Any) -> Any:
    service = accounts()
    account = service.get(g.principal, account_id)
    return page(
        "service_account.html",
        status,
        account=account,
        tokens=service.tokens(g.principal, account_id),
        now=container().clock().now(),
        **extra,
    )


@bp.get("/service-accounts/<uuid:account_id>")
@signed_in
def service_account(account_id: UUID) -> Any:
    return account_page(account_id)


@bp.post("/service-accounts/<uuid:account_id>/tokens")
@signed_in
def issue_token(account_id: UUID) -> Any:
    """The new token is in this answer only (no redirect, no flash: nothing keeps it)."""
    try:
        token, plaintext = accounts().issue_token(
            g.principal,
            account_id,
            description=request.form.get("description", "").strip(),
            expires_at=moment(request.form.get("expires_at", ""), "expires_at"),
        )
    except ServiceError as error:
        return account_page(account_id, status_of(error), error=error_text(error))
    return account_page(account_id, issued=token, plaintext=plaintext)


@bp.post("/service-accounts/<uuid:account_id>/tokens/<uuid:token_id>/revoke")
@signed_in
def revoke_token(account_id: UUID, token_id: UUID) -> Any:
    back = url_for("ui.service_account", account_id=account_id)
    try:
        accounts().revoke_token(g.principal, account_id, token_id)
    except ServiceError as error:
        return failed(error, back)
    flash("Token revoked: it stopped working at once.", "info")
    return redirect(back)


@bp.post("/service-accounts/<uuid:account_id>/delete")
@signed_in
def delete_account(account_id: UUID) -> Any:
    service = accounts()
    try:
        account = service.get(g.principal, account_id)
        service.delete(g.principal, account_id)
    except ServiceError as error:
        return failed(error, url_for("ui.service_account", account_id=account_id))
    flash(f"Service account {account.principal} deleted, with its tokens and bindings.", "info")
    return redirect(access_url(account.scope))
