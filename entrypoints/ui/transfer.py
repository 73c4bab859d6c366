"""Import and export the secrets of a scope and environment, as `/api/v1/imports` and
`/api/v1/exports` do (the same use case, formats and conflict strategies).

An import is always previewed first: the file (uploaded or pasted) goes through a dry run whose
diff (create, update, unchanged, skipped or conflict per name, and the errors by line) is shown
before anything changes; "Apply" then imports the same file. Between the two the file travels in
the page sealed (encrypted and authenticated with a key derived from the key provider's, valid
`STAGED_SECONDS`), so the preview page never holds a value in clear.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask import Response, g, request

from core.domain.errors import InvalidInput, ServiceError
from core.domain.values import ScopeRef
from core.exports import ExportService
from core.imports import ImportService
from core.transfer_requests import (
    ConflictStrategy,
    ExportRequest,
    ImportRequest,
    entry_error_details,
)
from entrypoints.http.errors import status_of
from entrypoints.ui.secrets import SCOPE, scope_of
from entrypoints.ui.web import (
    LARGE_FORMS,
    bp,
    container,
    derived_key,
    error_text,
    page,
    signed_in,
)

STAGED_SECONDS = 30 * 60
IMPORT_ENDPOINT = "ui.import_secrets"


def import_service() -> ImportService:
    return container().import_service()


def export_service() -> ExportService:
    return container().export_service()


def sealer() -> Fernet:
    key = derived_key(container(), b"secret-management ui staged imports")
    return Fernet(base64.urlsafe_b64encode(key))


def seal(content: bytes, passphrase: str | None) -> str:
    staged = {"content": base64.b64encode(content).decode("ascii"), "passphrase": passphrase}
    return sealer().encrypt(json.dumps(staged).encode()).decode("ascii")


def unseal(sealed: str) -> tuple[bytes, str | None]:
    try:
        staged = json.loads(sealer().decrypt(sealed.encode("ascii"), ttl=STAGED_SECONDS))
        return base64.b64decode(staged["content"]), staged["passphrase"]
    except (InvalidToken, ValueError, KeyError, TypeError, UnicodeEncodeError):
        raise InvalidInput(
            "the previewed file expired or was altered: preview it again",
            details={"field": "staged"},
        ) from None


def import_limit() -> int:
    """An import's form carries a file: `max_import_bytes`, and room for sealing it."""
    return int(container().settings().max_import_bytes) * 2 + 64 * 1024


LARGE_FORMS[IMPORT_ENDPOINT] = import_limit


def formats() -> list[Any]:
    return sorted(container().formats(), key=lambda found: found.name)


def transfer_page(ref: ScopeRef, status: int = 200, **context: Any) -> Any:
    form = context.pop("form", {})
    return page(
        "transfer.html",
        status,
        scope=ref,
        formats=formats(),
        strategies=[strategy.value for strategy in ConflictStrategy],
        environment=form.get("environment", request.args.get("environment", "")),
        form=form,
        **context,
    )


@bp.get(f"/scopes/{SCOPE}/transfer")
@signed_in
def transfer(scope_type: str, scope_id: str) -> Any:
    return transfer_page(scope_of(scope_type, scope_id))


def uploaded() -> tuple[bytes, str, str | None]:
    """The file of the form (uploaded, else pasted; or the one previewed), its name, and its
    passphrase."""
    staged = request.form.get("staged", "")
    if staged:
        content, passphrase = unseal(staged)
        return content, request.form.get("filename", ""), passphrase
    passphrase = request.form.get("passphrase") or None
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        return upload.read(), upload.filename, passphrase
    pasted = request.form.get("text", "")
    if pasted.strip():
        return pasted.encode("utf-8"), "", passphrase
    raise InvalidInput("choose a file or paste its content", details={"field": "file"})


@bp.post(f"/scopes/{SCOPE}/import")
@signed_in
def import_secrets(scope_type: str, scope_id: str) -> Any:
    """`step=preview`: a dry run, its diff shown; `step=apply`: the previewed file imported."""
    ref = scope_of(scope_type, scope_id)
    form = request.form
    apply = form.get("step") == "apply"
    try:
        content, filename, passphrase = uploaded()
        try:
            strategy = ConflictStrategy(form.get("strategy", "skip"))
        except ValueError:
            raise InvalidInput("unknown strategy", details={"field": "strategy"}) from None
        chosen = form.get("format", "").strip() or None
        if chosen is None and not filename:
            chosen = "dotenv"  # pasted text: .env lines unless told
        import_request = ImportRequest(
            scope=ref,
            environment=form.get("environment", "").strip() or None,
            format=chosen,
            filename=filename,
            strategy=strategy,
            dry_run=not apply,
            passphrase=passphrase,
        )
        report = import_service().import_secrets(g.principal, import_request, io.BytesIO(content))
    except ServiceError as error:
        return transfer_page(ref, status_of(error), error=error_text(error), form=form)
    return transfer_page(
        ref,
        report=report,
        errors=[entry_error_details(error) for error in report.errors],
        staged=None if apply else seal(content, passphrase),
        filename=filename,
        chosen_format=chosen or "",
        form=form,
    )


@bp.post(f"/scopes/{SCOPE}/export")
@signed_in
def export_secrets(scope_type: str, scope_id: str) -> Any:
    """The export file, as a download (values only when asked for, and core allows)."""
    ref = scope_of(scope_type, scope_id)
    form = request.form
    try:
        exported = export_service().export_secrets(
            g.principal,
            ExportRequest(
                scope=ref,
                format=form.get("format", "json"),
                environment=form.get("environment", "").strip() or None,
                include_values=form.get("include_values") == "1",
                include_versions=form.get("include_versions") == "1",
                passphrase=form.get("passphrase") or None,
            ),
        )
    except ServiceError as error:
        return transfer_page(ref, status_of(error), export_error=error_text(error), form=form)
    return Response(
        exported.content,
        content_type=exported.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{exported.filename}"',
            "Cache-Control": "no-store",
        },
    )
