"""Scopes: `scope create|list|show|tree|delete`, the hierarchy secrets and bindings live in."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import click
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from entrypoints.client import Client, with_client
from entrypoints.commands.output import Output, field, output_options, scope_text
from entrypoints.commands.references import parse_scope

SCOPE_TYPES = ("global", "organization", "team", "project", "user")
# Whose parent is the global scope unless --parent says otherwise.
UNDER_GLOBAL = frozenset({"organization", "user"})
SCOPE_COLUMNS = (
    ("scope", lambda item: scope_text(item)),
    ("parent", lambda item: scope_text(item.get("parent"))),
    ("created", field("created_at")),
)


@click.group()
def scope() -> None:
    """Scopes: global > organization > team > project, and personal user scopes.

    \b
      secretctl scope create organization:acme
      secretctl scope create project:p-42 --parent organization:acme
      secretctl scope tree
    """


@scope.command("create")
@click.argument("scope_name", metavar="TYPE:ID")
@click.option(
    "--parent", help="TYPE:ID of the parent [global for an organization; required otherwise]."
)
@output_options
@with_client
def scope_create(client: Client, out: Output, scope_name: str, parent: str | None) -> None:
    """Register a scope below its parent (admins of the parent).

    \b
      secretctl scope create organization:acme                      # below global
      secretctl scope create team:t-1 --parent organization:acme
      secretctl scope create project:p-42 --parent team:t-1
    """
    target = parse_scope(scope_name, "TYPE:ID")
    if target.type == "global":
        raise click.BadParameter("the global scope always exists", param_hint="TYPE:ID")
    if parent is None and target.type not in UNDER_GLOBAL:
        raise click.UsageError(f"name the {target.type}'s parent: --parent TYPE:ID")
    above = parse_scope(parent or "global", "--parent")
    created = client.json("POST", "/scopes", json={**target.body(), "parent": above.body()})
    out.result(created, f"created {target} below {above}")


@scope.command("list")
@click.option("--type", "scope_type", type=click.Choice(SCOPE_TYPES), help="Only this type.")
@output_options
@with_client
def scope_list(client: Client, out: Output, scope_type: str | None) -> None:
    """Every scope you can see, every page of them.

    \b
      secretctl scope list --type project -o json
    """
    params = {"type": scope_type} if scope_type else {}
    out.items(
        client.pages("/scopes", params),
        SCOPE_COLUMNS,
        env=parent_pair,
    )


def parent_pair(item: dict[str, Any]) -> tuple[str, str]:
    """`TYPE_ID=parent type/id`, a scope's line in `-o env`."""
    return f"{item['type']}_{item['id']}", scope_text(item.get("parent"))


@scope.command("show")
@click.argument("scope_name", metavar="TYPE:ID")
@output_options
@with_client
def scope_show(client: Client, out: Output, scope_name: str) -> None:
    """One scope: its type, id, parent and when it was made.

    \b
      secretctl scope show project:p-42
    """
    out.record(client.json("GET", parse_scope(scope_name, "TYPE:ID").path))


@scope.command("tree")
@output_options
@with_client
def scope_tree(client: Client, out: Output) -> None:
    """The scopes you can see, drawn as a tree (-o json: nested `children` lists).

    \b
      secretctl scope tree
      secretctl scope tree -o json | jq '.children[].id'
    """
    items = list(client.pages("/scopes", {}))
    root = nested(items)
    if out.for_people:
        Console(soft_wrap=True).print(drawn(root))
    elif out.format == "env":
        out.items(items, (), env=parent_pair)
    else:
        out.data(root)


def key(item: dict[str, Any] | None) -> tuple[str, str]:
    return ("global", "global") if item is None else (item["type"], item["id"])


def nested(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The scopes as one tree from the global scope, children sorted by type and id; a scope
    whose parent the caller cannot see hangs below the global scope."""
    children: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    seen = {key(item) for item in items} | {("global", "global")}
    for item in sorted(items, key=lambda item: (SCOPE_TYPES.index(item["type"]), item["id"])):
        if key(item) == ("global", "global"):
            continue
        parent = key(item.get("parent"))
        children[parent if parent in seen else ("global", "global")].append(item)

    def node(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": item["type"],
            "id": item["id"],
            "children": [node(child) for child in children[key(item)]],
        }

    return node({"type": "global", "id": "global"})


def drawn(node: dict[str, Any]) -> Tree:
    name = "global" if node["type"] == "global" else f"{node['type']}:{node['id']}"
    tree = Tree(Text(name))  # an id is never markup
    for child in node["children"]:
        tree.children.append(drawn(child))
    return tree


@scope.command("delete")
@click.argument("scope_name", metavar="TYPE:ID")
@output_options
@with_client
def scope_delete(client: Client, out: Output, scope_name: str) -> None:
    """Delete an empty scope (refused, exit 5, while it holds secrets, scopes or accounts).

    \b
      secretctl scope delete project:p-old
    """
    target = parse_scope(scope_name, "TYPE:ID")
    client.request("DELETE", target.path)
    out.result({"type": target.type, "id": target.id, "deleted": True}, f"deleted {target}")
