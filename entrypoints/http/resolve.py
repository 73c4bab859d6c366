"""`/api/v1/resolve`: the effective secrets of a context, with where each one came from, and
with `variables=true` each value as the environment variables its type documents."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from flask import Response, g, request
from flask.views import MethodView

from core.domain.errors import InvalidSecretValue
from core.domain.secrets import RevealedValue
from core.domain.values import ScopeRef, ScopeType
from core.references import Expansion, reference_of
from core.resolution import (
    ResolveContext,
    ResolvedSecret,
    SecretVariables,
    Selection,
    environment_of,
)
from entrypoints.http import examples
from entrypoints.http.blueprint import Blueprint, operation_id, raises
from entrypoints.http.context import current_container
from entrypoints.http.schemas.resolve import ResolutionSchema, ResolveArgsSchema
from entrypoints.http.secrets import value_text

blp = Blueprint(
    "resolve",
    __name__,
    url_prefix="/api/v1",
    description="Resolution: the most specific secret of each name for a context.",
)


def render(entry: ResolvedSecret, expansions: list[Expansion] | None = None) -> dict[str, Any]:
    secret = entry.secret
    text, encoding = value_text(entry.value, None) if entry.value is not None else (None, None)
    return {
        "name": secret.name,
        "id": secret.id,
        "scope": secret.scope,
        "environment": secret.environment,
        "version": entry.version.version,
        "reference": reference_of(secret),
        "shadows": entry.shadows,
        "value": text,
        "encoding": encoding,
        "value_error": entry.value_error,
        "expansions": expansions or [],
    }


def expand_values(
    resolved: list[ResolvedSecret],
) -> tuple[list[ResolvedSecret], list[list[Expansion]]]:
    """Each value with its `${secret://…}` references replaced, and the references used."""
    secrets = current_container().read_service()
    entries: list[ResolvedSecret] = []
    used: list[list[Expansion]] = []
    for entry in resolved:
        if entry.value is None:
            entries.append(entry)
            used.append([])
            continue
        revealed = RevealedValue(entry.secret, entry.version, entry.value)
        revealed, expansions = secrets.expand_value(g.principal, revealed)
        entries.append(replace(entry, value=revealed.value))
        used.append(expansions)
    return entries, used


def render_variables(entry: SecretVariables) -> dict[str, Any]:
    variables = entry.variables
    return {
        "variables": None
        if variables is None
        else {name: value.reveal().decode("utf-8") for name, value in variables.items()},
        "variables_error": entry.error,
        "unset_variables": [
            {"name": unset.name, "reason": unset.reason, "by": list(unset.by)}
            for unset in entry.unset
        ],
    }


def weak_etag(answer: dict[str, Any]) -> str:
    """A digest of a metadata-only answer (values never go into a header): equal tags, equal
    answers, whatever changed in between."""
    dumped = json.dumps(ResolutionSchema().dump(answer), sort_keys=True)
    return f'W/"{hashlib.sha256(dumped.encode()).hexdigest()[:32]}"'


ETAG_HEADERS = {
    "ETag": {
        "schema": {"type": "string"},
        "description": "Without values: a tag of the answer, for If-None-Match (304).",
    }
}


@blp.route("/resolve")
class Resolve(MethodView):
    @blp.arguments(ResolveArgsSchema(), location="query")
    @blp.response(200, ResolutionSchema, headers=ETAG_HEADERS, example=examples.RESOLUTION)
    @blp.alt_response(304, description="Not modified: the answer has the If-None-Match tag.")
    @raises(InvalidSecretValue)
    @operation_id("resolve")
    def get(self, args: dict[str, Any]) -> Any:
        """Effective secrets for a user, a project (team, organization) and an environment:
        user > project > team > organization > global; environment-specific beats agnostic.
        Metadata only, unless `include_values=true` (values only where the caller may read);
        `variables=true` adds each value as the environment variables its type documents.
        `name` and `prefix` select names (only their values are read). An answer without
        values has a weak ETag: `If-None-Match` with it answers 304 while nothing changed."""
        shared = next(
            (
                ScopeRef(ScopeType(kind), args[kind])
                for kind in ("project", "team", "organization")
                if kind in args
            ),
            None,
        )
        context = ResolveContext(
            scope=shared,
            user_id=args.get("user", g.principal.user_id),
            environment=args.get("environment"),
        )
        resolver = current_container().resolve_service()
        resolved = resolver.resolve(
            g.principal,
            context,
            include_values=args["include_values"] or args["variables"],
            selection=Selection(frozenset(args.get("name", ())), args.get("prefix", "")),
        )
        if args["expand"]:
            resolved, expansions = expand_values(resolved)
        else:
            expansions = [[] for _ in resolved]
        items = [render(entry, used) for entry, used in zip(resolved, expansions, strict=True)]
        if args["variables"]:
            variables = environment_of(resolved, current_container().secret_types())
            items = [item | render_variables(v) for item, v in zip(items, variables, strict=True)]
        answer = {"items": items}
        if not any(item["value"] is not None for item in items):
            g.etag = weak_etag(answer)
            if request.if_none_match.contains_weak(g.etag.removeprefix("W/").strip('"')):
                return Response(status=304)
        return answer
