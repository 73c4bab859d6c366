"""`/api/v1/secrets` and `/api/v1/scopes/{type}/{id}/secrets/{name}`: secrets by id and by path."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from uuid import UUID

from flask import Response, g, url_for
from flask.views import MethodView

from core.domain.errors import (
    BackendAuthFailed,
    Conflict,
    Expired,
    Forbidden,
    InvalidInput,
    InvalidSecretValue,
    NotFound,
)
from core.domain.paging import PageRequest
from core.domain.secrets import RevealedValue, Secret, SecretFilter
from core.domain.values import GLOBAL_SCOPE_ID, Principal, ScopeRef, ScopeType, SecretValue
from core.reads import ReadService
from core.secrets import MetadataChanges, NewSecret, SecretService
from core.versions import VersionService
from core.writes import WriteService
from entrypoints.http import examples
from entrypoints.http.blueprint import IF_MATCH, Blueprint, operation_id, raises
from entrypoints.http.context import current_container, expected_revision, set_etag
from entrypoints.http.schemas.fields import INT32_MAX, writable
from entrypoints.http.schemas.secrets import (
    SecretCreateSchema,
    SecretGetArgsSchema,
    SecretListArgsSchema,
    SecretPageSchema,
    SecretSchema,
    SecretUpdateSchema,
)
from entrypoints.http.schemas.values import (
    PathArgsSchema,
    PathValueArgsSchema,
    SecretValueSchema,
    ValueArgsSchema,
)
from entrypoints.http.schemas.versions import (
    SecretVersionCreateSchema,
    VersionListSchema,
    VersionSchema,
)

blp = Blueprint(
    "secrets",
    __name__,
    url_prefix="/api/v1",
    description="Secrets: metadata, values and versions.",
)

ETAG = {"ETag": {"schema": {"type": "string"}, "description": "The secret's revision."}}
# Path parameters as the routes take them: a version that an `integer` column holds (any other
# number is a version that does not exist: 404), ids and names no longer than their columns.
VERSION = f"<int(min=1, max={INT32_MAX}):version>"
SCOPE = "<string(maxlength=32):scope_type>/<string(maxlength=128):scope_id>"
NAME = "<string(maxlength=255):name>"
# A value read: the use cases, the caller, the query's arguments, then the path's (by name).
ValueRead = Callable[..., dict[str, Any]]


def service() -> SecretService:
    return current_container().secret_service()


def writes() -> WriteService:
    return current_container().write_service()


def reads() -> ReadService:
    return current_container().read_service()


def versions() -> VersionService:
    return current_container().version_service()


def decode_value(data: dict[str, Any]) -> SecretValue:
    if data["encoding"] == "base64":
        return SecretValue(base64.b64decode(data["value"], validate=True))
    return SecretValue.from_text(data["value"])


def value_text(value: SecretValue, encoding: str | None) -> tuple[str, str]:
    """The value as JSON text and the encoding used: UTF-8 when it decodes, unless told."""
    raw = value.reveal()
    if encoding != "base64":
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            if encoding == "utf-8":
                raise InvalidInput(
                    "this version's value is not UTF-8 text; ask for encoding=base64",
                    details={"field": "encoding"},
                ) from None
    return base64.b64encode(raw).decode("ascii"), "base64"


def encode_value(revealed: RevealedValue, encoding: str | None) -> dict[str, Any]:
    text, used = value_text(revealed.value, encoding)
    return {
        "id": revealed.secret.id,
        "name": revealed.secret.name,
        "version": revealed.version.version,
        "value": text,
        "encoding": used,
        "created_at": revealed.version.created_at,
        "expires_at": revealed.version.expires_at or revealed.secret.expires_at,
    }


def expanded(
    secrets: ReadService, caller: Principal, revealed: RevealedValue, expand: bool
) -> RevealedValue:
    """With `expand`, the value with its `${secret://…}` references replaced (core.references)."""
    return secrets.expand_value(caller, revealed)[0] if expand else revealed


def value_by_id(
    secrets: ReadService, caller: Principal, args: dict[str, Any], secret_id: UUID
) -> dict[str, Any]:
    """The answer of `GET /secrets/{id}/value`, given the query's arguments and the path's."""
    revealed = secrets.read_value(caller, secret_id, args.get("version"))
    return encode_value(expanded(secrets, caller, revealed, args["expand"]), args.get("encoding"))


def value_by_path(
    secrets: ReadService,
    caller: Principal,
    args: dict[str, Any],
    scope_type: str,
    scope_id: str,
    name: str,
) -> dict[str, Any]:
    """The answer of `GET /scopes/{type}/{id}/secrets/{name}/value`, given the query's arguments
    and the path's."""
    scope, name = secret_path(scope_type, scope_id, name)
    revealed = secrets.read_value_by_name(
        caller, scope, name, args.get("environment"), args.get("version")
    )
    return encode_value(expanded(secrets, caller, revealed, args["expand"]), args.get("encoding"))


def scope_ref(scope_type: str, scope_id: str | None) -> ScopeRef:
    try:
        kind = ScopeType(scope_type)
    except ValueError:
        raise InvalidInput(
            f"unknown scope type; one of {', '.join(t.value for t in ScopeType)}",
            details={"field": "scope"},
        ) from None
    if kind is ScopeType.GLOBAL:
        if scope_id not in (None, GLOBAL_SCOPE_ID):  # no other scope has this type
            raise NotFound(f"the global scope's id is '{GLOBAL_SCOPE_ID}'")
        return ScopeRef(kind, GLOBAL_SCOPE_ID)
    return ScopeRef(kind, path_text(scope_id or "", "scope"))


def path_text(value: str, field: str) -> str:
    """A path parameter (or a scope id from anywhere), refused with 400 where no database could
    hold or match it: a NUL character (see `writable`)."""
    if not writable(value):
        raise InvalidInput(
            f"{field} must not contain NUL characters or unpaired surrogates",
            details={"field": field},
        )
    return value


def secret_path(scope_type: str, scope_id: str, name: str) -> tuple[ScopeRef, str]:
    """The scope and name of `/scopes/{scope_type}/{scope_id}/secrets/{name}`."""
    return scope_ref(scope_type, scope_id), path_text(name, "name")


def with_etag(secret: Secret) -> Secret:
    set_etag(secret.revision)
    return secret


@blp.route("/secrets")
class Secrets(MethodView):
    @blp.arguments(SecretListArgsSchema(), location="query")
    @blp.response(200, SecretPageSchema, example=examples.SECRET_PAGE)
    @raises(NotFound)
    @operation_id("list_secrets")
    def get(self, args: dict[str, Any]) -> Any:
        """List secrets' metadata (never values), filtered and paginated.

        Two ways to page: `page` (an offset, with `total`), or, for one scope, `after` (keyset:
        the `next` of the previous page, empty for the first; no `total`), whose cost does not
        grow with the number of secrets. Every page answers `next` while more follow."""
        scope_type, scope_id = args.get("scope_type"), args.get("scope_id")
        if scope_id and not scope_type:
            raise InvalidInput("scope_id needs scope_type", details={"field": "scope_id"})
        exact = scope_type is not None and (scope_id is not None or scope_type == "global")
        scope = scope_ref(scope_type, scope_id) if exact else None
        tags = dict(tag.split("=", 1) for tag in args.get("tag", []))
        criteria = SecretFilter(
            scope=scope,
            scope_type=scope_type,
            environment=args.get("environment"),
            type=args.get("type"),
            tags=tags,
            prefix=args.get("prefix"),
            deleted=args["deleted"],
        )
        if "after" in args:
            if args["page"] != 1:
                raise InvalidInput("give page or after, not both", details={"field": "after"})
            return service().list_secrets_after(
                g.principal, criteria, args["after"], args["page_size"]
            )
        return service().list_secrets(
            g.principal, criteria, PageRequest(args["page"], args["page_size"])
        )

    @blp.arguments(SecretCreateSchema(), example=examples.SECRET_CREATE)
    @blp.response(201, SecretSchema, headers=ETAG, example=examples.SECRET)
    @raises(Forbidden, NotFound, Conflict, InvalidSecretValue, BackendAuthFailed)
    @operation_id("create_secret")
    def post(self, data: dict[str, Any]) -> Any:
        """Create a secret with its first version. Answers with metadata only."""
        scope = data["scope"]
        parent = scope.get("parent")
        draft = NewSecret(
            scope=scope_ref(scope["type"], scope.get("id")),
            parent=scope_ref(parent["type"], parent.get("id")) if parent else None,
            name=data["name"],
            environment=data["environment"],
            type=data["type"],
            description=data["description"],
            tags=data["tags"],
            consumer=data["consumer"],
            expires_at=data["expires_at"],
            not_before=data["not_before"],
            max_versions=data["max_versions"],
            backend=data["backend"],
        )
        secret = service().create_secret(g.principal, draft, decode_value(data))
        location = url_for("secrets.SecretItem", secret_id=secret.id)
        return with_etag(secret), 201, {"Location": location}


@blp.route("/secrets/<uuid:secret_id>")
class SecretItem(MethodView):
    @blp.arguments(SecretGetArgsSchema(), location="query")
    @blp.response(200, SecretSchema, headers=ETAG, example=examples.SECRET)
    def get(self, args: dict[str, Any], secret_id: UUID) -> Any:
        """A secret's metadata, with its revision as ETag."""
        return with_etag(
            service().get_secret(g.principal, secret_id, include_deleted=args["include_deleted"])
        )

    @blp.arguments(SecretUpdateSchema(), required=False, example=examples.SECRET_UPDATE)
    @blp.response(200, SecretSchema, headers=ETAG, example=examples.SECRET_UPDATED)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden)
    @operation_id("update_secret")
    def patch(self, data: dict[str, Any], secret_id: UUID) -> Any:
        """Change metadata; `null` clears expires_at, not_before or max_versions."""
        clear = frozenset(name for name, value in data.items() if value is None)
        changes = MetadataChanges(
            **{name: value for name, value in data.items() if value is not None}, clear=clear
        )
        secret = service().update_metadata(
            g.principal, secret_id, changes, expected_revision=expected_revision()
        )
        return with_etag(secret)

    @blp.response(200, SecretSchema, headers=ETAG)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden)
    def delete(self, secret_id: UUID) -> Any:
        """Soft delete: hidden and kept for the retention window, its name reserved."""
        secret = service().delete_secret(
            g.principal, secret_id, expected_revision=expected_revision()
        )
        return with_etag(secret)


@blp.route("/secrets/<uuid:secret_id>/restore")
class SecretRestore(MethodView):
    @blp.response(200, SecretSchema, headers=ETAG)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden, Conflict)
    @operation_id("restore_secret")
    def post(self, secret_id: UUID) -> Any:
        """Undo a soft delete: the secret comes back with every version."""
        secret = service().restore_secret(
            g.principal, secret_id, expected_revision=expected_revision()
        )
        return with_etag(secret)


@blp.route("/secrets/<uuid:secret_id>/purge")
class SecretPurge(MethodView):
    @blp.response(204)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden, Conflict, BackendAuthFailed)
    @operation_id("purge_secret")
    def post(self, secret_id: UUID) -> Any:
        """Destroy a soft-deleted secret for good: its values in the backend, then its rows."""
        service().purge_secret(g.principal, secret_id, expected_revision=expected_revision())
        return Response(status=204)


@blp.route("/secrets/<uuid:secret_id>/value")
class SecretValueView(MethodView):
    @blp.arguments(ValueArgsSchema(), location="query")
    @blp.response(200, SecretValueSchema, example=examples.SECRET_VALUE)
    @raises(Forbidden, Conflict, Expired, InvalidSecretValue, BackendAuthFailed)
    def get(self, args: dict[str, Any], secret_id: UUID) -> Any:
        """The current value, or version N with `?version=N`."""
        return value_by_id(reads(), g.principal, args, secret_id=secret_id)


@blp.route("/secrets/<uuid:secret_id>/versions")
class SecretVersions(MethodView):
    @blp.response(200, VersionListSchema, example=examples.VERSION_LIST)
    @operation_id("list_versions")
    def get(self, secret_id: UUID) -> Any:
        """Every version's metadata, oldest first."""
        return {"items": versions().list_versions(g.principal, secret_id)}

    @blp.arguments(SecretVersionCreateSchema(), example=examples.VERSION_CREATE)
    @blp.response(201, SecretSchema, headers=ETAG, example=examples.SECRET_WRITTEN)
    @blp.doc(parameters=[IF_MATCH])
    @raises(Forbidden, Conflict, InvalidSecretValue, BackendAuthFailed)
    @operation_id("write_value")
    def post(self, data: dict[str, Any], secret_id: UUID) -> Any:
        """Write a new value as the next version; with If-Match, a check-and-set."""
        secret = writes().write_value(
            g.principal,
            secret_id,
            decode_value(data),
            expected_revision=expected_revision(),
            expires_at=data["expires_at"],
            not_before=data["not_before"],
        )
        return with_etag(secret)


@blp.route(f"/secrets/<uuid:secret_id>/versions/{VERSION}")
class SecretVersionView(MethodView):
    @blp.response(200, VersionSchema, example=examples.VERSION)
    def get(self, secret_id: UUID, version: int) -> Any:
        """One version's metadata."""
        return versions().get_version(g.principal, secret_id, version)


@blp.route(f"/scopes/{SCOPE}/secrets/{NAME}")
class SecretByPath(MethodView):
    @blp.arguments(PathArgsSchema(), location="query")
    @blp.response(200, SecretSchema, headers=ETAG, example=examples.SECRET)
    def get(self, args: dict[str, Any], scope_type: str, scope_id: str, name: str) -> Any:
        """A secret's metadata by scope and name (`environment` picks a variant)."""
        scope, name = secret_path(scope_type, scope_id, name)
        secret = service().find_secret(g.principal, scope, name, args.get("environment"))
        return with_etag(secret)


@blp.route(f"/scopes/{SCOPE}/secrets/{NAME}/value")
class SecretValueByPath(MethodView):
    @blp.arguments(PathValueArgsSchema(), location="query")
    @blp.response(200, SecretValueSchema, example=examples.SECRET_VALUE)
    @raises(Forbidden, Conflict, Expired, InvalidSecretValue, BackendAuthFailed)
    def get(self, args: dict[str, Any], scope_type: str, scope_id: str, name: str) -> Any:
        """A secret's value by scope and name."""
        return value_by_path(
            reads(), g.principal, args, scope_type=scope_type, scope_id=scope_id, name=name
        )


# The reads that `entrypoints.http.hot_reads` answers before Flask when Flask's URL map names
# their endpoint: the function the view calls, and the arguments of a request without a query.
HOT_READS: dict[str, tuple[ValueRead, dict[str, Any]]] = {
    f"{blp.name}.{SecretValueView.__name__}": (value_by_id, ValueArgsSchema().load({})),
    f"{blp.name}.{SecretValueByPath.__name__}": (value_by_path, PathValueArgsSchema().load({})),
}
