"""Audit: the trail's events with the API's filters (newest first, paged by cursor), their
export (JSON Lines or CSV, as `GET /api/v1/audit/export` writes them), the chain's verification
and the compliance reports (as `/api/v1/reports/*`). Core decides who may read them (admins and
auditors of the scope asked about, or of the global scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from flask import Response, g, request, stream_with_context, url_for

from core.audit_service import AuditService
from core.domain.access import Action
from core.domain.audit import AuditAction, AuditFilter
from core.domain.errors import InvalidInput
from core.domain.values import ScopeRef
from core.reports import ReportService
from entrypoints.http.audit import CSV, JSON_LINES, as_csv, as_json_lines
from entrypoints.ui.rights import may, scopes_allowing
from entrypoints.ui.scopes import parse_ref, visible_scopes
from entrypoints.ui.secrets import moment
from entrypoints.ui.web import bp, container, nav_item, page, signed_in

PAGE_SIZE = 50
OUTCOMES = ("success", "denied", "not_found", "error")
FILTERS = ("actor", "action", "resource", "outcome", "scope", "since", "until")
# The reports, by the name the page uses: (title, the argument and its default, what it lists).
REPORTS = {
    "expiring": ("Expiring", "days", 30, "Secrets expiring within the days given (or expired)."),
    "never-read": ("Never read", "days", 30, "Secrets whose value nobody read in the days given."),
    "rotation-overdue": (
        "Rotation overdue",
        "hours",
        1,
        "Secrets whose scheduled rotation is late by the hours given, or whose last one failed.",
    ),
    "stale-tokens": (
        "Stale tokens",
        "days",
        90,
        "Service-account tokens unused for the days given: candidates for revocation.",
    ),
}

nav_item("ui.audit", "Audit", order=40)
nav_item("ui.reports", "Reports", order=45)


def audit_service() -> AuditService:
    return container().audit_service()


def default_scope() -> str:
    """The scope a page without one starts at: none (the whole trail) for who audits the global
    scope, else the first scope the caller audits (an auditor of one organization sees its
    events at once); core authorizes the query either way."""
    if may(Action.AUDIT):
        return ""
    found, _ = visible_scopes()
    audited = scopes_allowing(Action.AUDIT, [scope.ref for scope in found])
    first = next((scope.ref for scope in found if scope.ref in audited), None)
    return f"{first.type.value}/{first.id}" if first else ""


def filters_given() -> dict[str, str]:
    """The filters as the form sent them (the text each field shows)."""
    given = {name: request.args.get(name, "").strip() for name in FILTERS}
    if "scope" not in request.args:
        given["scope"] = default_scope()
    return given


def criteria_of(given: dict[str, str]) -> tuple[AuditFilter, ScopeRef | None]:
    """The API's `criteria_of`, from the page's form."""
    if given["outcome"] and given["outcome"] not in OUTCOMES:
        raise InvalidInput("unknown outcome", details={"field": "outcome"})
    scope = parse_ref(given["scope"]) if given["scope"] else None
    before = request.args.get("before_seq", type=int)
    criteria = AuditFilter(
        actor=given["actor"] or None,
        resource=given["resource"] or None,
        action=given["action"] or None,
        outcome=given["outcome"] or None,
        since=moment(given["since"], "since"),
        until=moment(given["until"], "until"),
        before_seq=before if before and before > 0 else None,
    )
    return criteria, scope


def secret_of(resource: str) -> UUID | None:
    """The secret an event is about (`secret:<id>`), for a link to its page."""
    kind, _, ident = resource.partition(":")
    if kind != "secret":
        return None
    try:
        return UUID(ident)
    except ValueError:
        return None


def audit_page(verification: Any = None, status: int = 200) -> Any:
    given = filters_given()
    criteria, scope = criteria_of(given)
    events = audit_service().search(g.principal, criteria, scope, PAGE_SIZE)
    shown: dict[str, Any] = {name: value for name, value in given.items() if value}
    older = (
        url_for("ui.audit", **shown, before_seq=events[-1].seq)
        if len(events) == PAGE_SIZE
        else None
    )
    return page(
        "audit.html",
        status,
        events=events,
        given=given,
        shown=shown,
        paged=criteria.before_seq is not None,
        older=older,
        outcomes=OUTCOMES,
        actions=sorted(action.value for action in AuditAction),
        may_verify=may(Action.AUDIT),
        verification=verification,
        secret_of=secret_of,
    )


@bp.get("/audit")
@signed_in
def audit() -> Any:
    return audit_page()


@bp.post("/audit/verify")
@signed_in
def verify_audit() -> Any:
    """The whole chain verified (as `POST /api/v1/audit/verify`), the result on the page."""
    result = audit_service().verify(g.principal)
    return audit_page(verification=result)


@bp.get("/audit/export")
@signed_in
def export_audit() -> Any:
    """The matching events, oldest first, as a file (the export itself is audited)."""
    given = filters_given()
    criteria, scope = criteria_of(given)
    kind = request.args.get("format", "jsonl")
    if kind not in ("jsonl", "csv"):
        raise InvalidInput("export as jsonl or csv", details={"field": "format"})
    events = audit_service().export(g.principal, criteria, scope)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    body, mimetype = (as_csv(events), CSV) if kind == "csv" else (as_json_lines(events), JSON_LINES)
    return Response(
        stream_with_context(body),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{kind}"'},
    )


# -- compliance reports --------------------------------------------------------------------


def report_service() -> ReportService:
    return container().report_service()


@bp.get("/reports")
@signed_in
def reports() -> Any:
    name = request.args.get("report", "expiring")
    if name not in REPORTS:
        name = "expiring"
    title, argument, default, about = REPORTS[name]
    amount = request.args.get(argument, default, type=int)
    amount = default if amount is None else amount
    scope_text = request.args.get("scope", "").strip() if "scope" in request.args else ""
    if "scope" not in request.args and name != "stale-tokens":
        scope_text = default_scope()
    scope = parse_ref(scope_text) if scope_text else None
    service = report_service()
    secrets, tokens = None, None
    if name == "expiring":
        secrets = service.expiring(g.principal, scope, amount)
    elif name == "never-read":
        secrets = service.never_read(g.principal, scope, amount)
    elif name == "rotation-overdue":
        secrets = service.rotation_overdue(g.principal, scope, amount)
    else:
        tokens = service.stale_tokens(g.principal, amount)
    return page(
        "reports.html",
        reports=REPORTS,
        name=name,
        title=title,
        argument=argument,
        amount=amount,
        about=about,
        scope=scope_text,
        secrets=secrets,
        tokens=tokens,
    )
