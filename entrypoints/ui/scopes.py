"""The scopes tree: the scopes the caller may see (as `GET /api/v1/scopes` lists them), each with
the number of secrets in it the caller may see, and a form to create a scope below one (core
refuses it unless the caller administers the parent)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flask import flash, g, redirect, request, url_for

from core.access import allowed, caller_bindings
from core.domain.access import Action, Target
from core.domain.errors import InvalidInput, ServiceError
from core.domain.paging import PageRequest
from core.domain.scopes import Scope
from core.domain.secrets import SecretFilter
from core.domain.values import GLOBAL_SCOPE_ID, ScopeRef, ScopeType
from core.scopes import PARENT_TYPES
from core.secrets import MAX_PAGE_SIZE
from entrypoints.ui.web import bp, container, failed, nav_item, page, signed_in

MAX_LISTED = 20 * MAX_PAGE_SIZE  # a tree or a count stops there (and says so)
# What may be created below a scope of each type: core's own rule (`PARENT_TYPES`), turned around.
CHILD_TYPES = {
    parent: tuple(kind for kind in ScopeType if parent in PARENT_TYPES.get(kind, ()))
    for parent in ScopeType
}

nav_item("ui.scopes", "Scopes", order=10)


@dataclass
class Node:
    scope: Scope
    secrets: int = 0
    children: list[Node] = field(default_factory=list)

    @property
    def ref(self) -> ScopeRef:
        return self.scope.ref


def all_pages(fetch: Any) -> tuple[list[Any], bool]:
    """Every item of a paged use case, up to `MAX_LISTED`; and whether there were more."""
    items: list[Any] = []
    number = 1
    while True:
        found = fetch(PageRequest(number, MAX_PAGE_SIZE))
        items.extend(found.items)
        if len(items) >= found.total or not found.items:
            return items, False
        if len(items) >= MAX_LISTED:
            return items, True
        number += 1


def visible_scopes() -> tuple[list[Scope], bool]:
    service = container().scope_service()
    return all_pages(lambda page_request: service.list_scopes(g.principal, None, page_request))


def secret_counts() -> tuple[Counter[ScopeRef], bool]:
    service = container().secret_service()
    secrets, more = all_pages(
        lambda page_request: service.list_secrets(g.principal, SecretFilter(), page_request)
    )
    return Counter(secret.scope for secret in secrets), more


def tree(scopes: list[Scope], counts: Counter[ScopeRef]) -> list[Node]:
    """The scopes as a forest: a scope whose parent the caller cannot see is a root."""
    nodes = {scope.ref: Node(scope, counts.get(scope.ref, 0)) for scope in scopes}
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.scope.parent) if node.scope.parent else None
        (parent.children if parent else roots).append(node)
    for node in nodes.values():
        node.children.sort(key=lambda child: (child.ref.type.value, child.ref.id))
    order = list(ScopeType)
    roots.sort(key=lambda root: (order.index(root.ref.type), root.ref.id))
    return roots


def administered(scopes: list[Scope]) -> list[Scope]:
    """The scopes the caller administers, by core's own rule (`core.access.allowed`): where the
    form offers to create a scope (core checks again when it is sent)."""
    now = container().clock().now()
    with container().unit_of_work(read_only=True) as uow:
        bindings = caller_bindings(uow, g.principal, now)
    return [
        scope
        for scope in scopes
        if allowed(g.principal, Action.ADMIN, Target(scope.ref, scope.path), bindings, now)
    ]


@bp.get("/scopes")
@signed_in
def scopes() -> Any:
    found, more_scopes = visible_scopes()
    counts, more_secrets = secret_counts()
    return page(
        "scopes.html",
        roots=tree(found, counts),
        total=len(found),
        truncated=more_scopes or more_secrets,
        parents=administered([scope for scope in found if CHILD_TYPES[scope.ref.type]]),
        child_types=CHILD_TYPES,
    )


def parse_ref(text: str) -> ScopeRef:
    """`type/id` as the pages write a scope."""
    kind, _, ident = text.partition("/")
    try:
        scope_type = ScopeType(kind)
    except ValueError:
        raise InvalidInput("unknown scope type", details={"field": "parent"}) from None
    if scope_type is ScopeType.GLOBAL:
        return ScopeRef.global_scope()
    return ScopeRef(scope_type, ident)


@bp.post("/scopes")
@signed_in
def create_scope() -> Any:
    back = url_for("ui.scopes")
    try:
        parent = parse_ref(request.form.get("parent", ""))
        try:
            kind = ScopeType(request.form.get("type", ""))
        except ValueError:
            raise InvalidInput("choose the new scope's type", details={"field": "type"}) from None
        ident = request.form.get("id", "").strip()
        if kind is ScopeType.GLOBAL or ident == GLOBAL_SCOPE_ID:
            raise InvalidInput("there is only one global scope", details={"field": "id"})
        created = container().scope_service().register(g.principal, ScopeRef(kind, ident), parent)
    except ServiceError as error:
        return failed(error, back)
    flash(f"Scope {created.ref} created.", "info")
    return redirect(back)
