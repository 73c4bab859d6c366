"""Scopes, role bindings, service accounts and their tokens, and who can read a secret."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Response, g
from flask.views import MethodView

from core.bindings import NewBinding, RoleBindingService
from core.domain.access import Role
from core.domain.errors import Conflict, Forbidden, NotFound
from core.domain.paging import PageRequest
from core.domain.values import ScopeType
from core.scopes import ScopeService
from core.service_accounts import ServiceAccountService
from entrypoints.http import examples
from entrypoints.http.blueprint import Blueprint, operation_id, raises
from entrypoints.http.context import current_container
from entrypoints.http.schemas.access import (
    IssuedTokenSchema,
    ReaderListSchema,
    RoleBindingCreateSchema,
    RoleBindingListArgsSchema,
    RoleBindingPageSchema,
    RoleBindingSchema,
    ServiceAccountCreateSchema,
    ServiceAccountListArgsSchema,
    ServiceAccountPageSchema,
    ServiceAccountSchema,
    TokenCreateSchema,
    TokenListSchema,
    WhoAmISchema,
)
from entrypoints.http.schemas.scopes import (
    ScopeCreateSchema,
    ScopeItemSchema,
    ScopeListArgsSchema,
    ScopePageSchema,
)
from entrypoints.http.secrets import SCOPE, scope_ref

blp = Blueprint(
    "access",
    __name__,
    url_prefix="/api/v1",
    description="Scopes, role bindings and service accounts: who may do what, and where.",
)


def scopes() -> ScopeService:
    return current_container().scope_service()


def bindings() -> RoleBindingService:
    return current_container().binding_service()


def accounts() -> ServiceAccountService:
    return current_container().service_account_service()


def page_of(args: dict[str, Any]) -> PageRequest:
    return PageRequest(args["page"], args["page_size"])


def ref_of(data: dict[str, Any]) -> Any:
    return scope_ref(data["type"], data.get("id"))


@blp.route("/auth/whoami")
class WhoAmI(MethodView):
    @blp.response(200, WhoAmISchema)
    @operation_id("whoami")
    def get(self) -> Any:
        """Who the bearer token stands for."""
        principal = accounts().confirm(g.principal)  # a revoked token is refused at once
        return {"principal": principal.id, "kind": principal.kind, "groups": principal.groups}


@blp.route("/scopes")
class Scopes(MethodView):
    @blp.arguments(ScopeListArgsSchema(), location="query")
    @blp.response(200, ScopePageSchema, example=examples.SCOPE_PAGE)
    @operation_id("list_scopes")
    def get(self, args: dict[str, Any]) -> Any:
        """Scopes the caller can see."""
        scope_type = ScopeType(args["type"]) if "type" in args else None
        return scopes().list_scopes(g.principal, scope_type, page_of(args))

    @blp.arguments(ScopeCreateSchema(), example=examples.SCOPE_CREATE)
    @blp.response(201, ScopeItemSchema, example=examples.SCOPE)
    @raises(Forbidden, NotFound, Conflict)
    @operation_id("create_scope")
    def post(self, data: dict[str, Any]) -> Any:
        """Register a scope below its parent (admins of the parent)."""
        return scopes().register(g.principal, ref_of(data), ref_of(data["parent"]))


@blp.route(f"/scopes/{SCOPE}")
class ScopeItem(MethodView):
    @blp.response(200, ScopeItemSchema, example=examples.SCOPE)
    def get(self, scope_type: str, scope_id: str) -> Any:
        """One scope."""
        return scopes().get(g.principal, scope_ref(scope_type, scope_id))

    @blp.response(204)
    @raises(Forbidden, Conflict)
    def delete(self, scope_type: str, scope_id: str) -> Any:
        """Delete an empty scope (refused with 409 while it holds secrets or scopes)."""
        scopes().delete(g.principal, scope_ref(scope_type, scope_id))
        return Response(status=204)


@blp.route("/role-bindings")
class RoleBindings(MethodView):
    @blp.arguments(RoleBindingListArgsSchema(), location="query")
    @blp.response(200, RoleBindingPageSchema, example=examples.ROLE_BINDING_PAGE)
    @raises(Forbidden, NotFound)
    @operation_id("list_role_bindings")
    def get(self, args: dict[str, Any]) -> Any:
        """Bindings held at a scope (its admins), or the caller's own (`principal`)."""
        scope = (
            scope_ref(args["scope_type"], args.get("scope_id")) if "scope_type" in args else None
        )
        return bindings().list_bindings(g.principal, scope, args.get("principal"), page_of(args))

    @blp.arguments(RoleBindingCreateSchema(), example=examples.ROLE_BINDING_CREATE)
    @blp.response(201, RoleBindingSchema, example=examples.ROLE_BINDING)
    @raises(Forbidden, NotFound)
    @operation_id("create_role_binding")
    def post(self, data: dict[str, Any]) -> Any:
        """Grant a role at a scope (and below), optionally narrowed to a secret or a name glob."""
        draft = NewBinding(
            principal=data["principal"],
            role=Role(data["role"]),
            scope=ref_of(data["scope"]),
            secret_id=data["secret_id"],
            name_pattern=data["name_pattern"],
            expires_at=data["expires_at"],
        )
        return bindings().create(g.principal, draft)


@blp.route("/role-bindings/<uuid:binding_id>")
class RoleBindingItem(MethodView):
    @blp.response(204)
    @raises(Forbidden)
    def delete(self, binding_id: UUID) -> Any:
        """Remove a binding (admins of its scope)."""
        bindings().delete(g.principal, binding_id)
        return Response(status=204)


@blp.route("/secrets/<uuid:secret_id>/access")
class SecretReaders(MethodView):
    @blp.response(200, ReaderListSchema)
    @raises(Forbidden)
    def get(self, secret_id: UUID) -> Any:
        """Who can read this secret's value, and through which binding (admins, auditors)."""
        return {"items": bindings().readers(g.principal, secret_id)}


@blp.route("/service-accounts")
class ServiceAccounts(MethodView):
    @blp.arguments(ServiceAccountListArgsSchema(), location="query")
    @blp.response(200, ServiceAccountPageSchema, example=examples.SERVICE_ACCOUNT_PAGE)
    @raises(Forbidden, NotFound)
    @operation_id("list_service_accounts")
    def get(self, args: dict[str, Any]) -> Any:
        """Service accounts owned by a scope (its admins)."""
        scope = scope_ref(args["scope_type"], args.get("scope_id"))
        return accounts().list_accounts(g.principal, scope, page_of(args))

    @blp.arguments(ServiceAccountCreateSchema(), example=examples.SERVICE_ACCOUNT_CREATE)
    @blp.response(201, ServiceAccountSchema, example=examples.SERVICE_ACCOUNT)
    @raises(Forbidden, NotFound, Conflict)
    @operation_id("create_service_account")
    def post(self, data: dict[str, Any]) -> Any:
        """Create a service account owned by a scope; grant it roles with role bindings."""
        return accounts().create(
            g.principal, data["name"], ref_of(data["scope"]), data["description"]
        )


@blp.route("/service-accounts/<uuid:account_id>")
class ServiceAccountItem(MethodView):
    @blp.response(200, ServiceAccountSchema, example=examples.SERVICE_ACCOUNT)
    @raises(Forbidden)
    def get(self, account_id: UUID) -> Any:
        """One service account."""
        return accounts().get(g.principal, account_id)

    @blp.response(204)
    @raises(Forbidden)
    def delete(self, account_id: UUID) -> Any:
        """Delete the account, its tokens and the bindings naming it."""
        accounts().delete(g.principal, account_id)
        return Response(status=204)


@blp.route("/service-accounts/<uuid:account_id>/tokens")
class ServiceAccountTokens(MethodView):
    @blp.response(200, TokenListSchema, example=examples.TOKEN_LIST)
    @raises(Forbidden)
    @operation_id("list_tokens")
    def get(self, account_id: UUID) -> Any:
        """The account's tokens (never the tokens themselves)."""
        return {"items": accounts().tokens(g.principal, account_id)}

    @blp.arguments(TokenCreateSchema(), required=False, example=examples.TOKEN_CREATE)
    @blp.response(201, IssuedTokenSchema, example=examples.ISSUED_TOKEN)
    @raises(Forbidden)
    @operation_id("issue_token")
    def post(self, data: dict[str, Any], account_id: UUID) -> Any:
        """Issue an API token: the answer holds it, once; only its hash is kept."""
        token, plaintext = accounts().issue_token(
            g.principal,
            account_id,
            description=data["description"],
            expires_at=data["expires_at"],
        )
        return {**token.__dict__, "token": plaintext}


@blp.route("/service-accounts/<uuid:account_id>/tokens/<uuid:token_id>")
class ServiceAccountToken(MethodView):
    @blp.response(204)
    @raises(Forbidden)
    @operation_id("revoke_token")
    def delete(self, account_id: UUID, token_id: UUID) -> Any:
        """Revoke a token; it stops working at once."""
        accounts().revoke_token(g.principal, account_id, token_id)
        return Response(status=204)
