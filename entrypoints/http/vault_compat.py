"""A Vault KV v2-compatible API under `/v1`, so hvac, the `bao`/`vault` CLI and other Vault
clients read and write this service's secrets unchanged (docs/vault-compat.md).

One mount, `secret`, holds the whole tree: the path `{scope_type}/{scope_id}/{environment}/{NAME}`
(`_` for a secret of every environment) names one secret, whose value is the KV entry's `data`
object as canonical JSON text. Everything goes through the same use cases as the REST API: the
same permission checks, audit events and value reads. Callers authenticate with this service's
tokens in `X-Vault-Token` (or `Authorization: Bearer`); errors have Vault's shape and statuses.
This is Vault's API, not ours: a plain Flask blueprint, outside the OpenAPI document. Its routes
are here; how a KV path, body and answer translate to this service's terms is in
`entrypoints.http.vault_kv`.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, g, jsonify, request

from core.access import INVALID_CREDENTIALS
from core.domain.callers import Caller
from core.domain.errors import InvalidInput, NotFound, Unauthenticated
from core.secrets import NewSecret
from entrypoints.http.context import bearer_token, current_container, request_info
from entrypoints.http.errors import response_for
from entrypoints.http.secrets import writes
from entrypoints.http.vault_kv import (
    MOUNT,
    answer,
    cas_option,
    custom_metadata,
    data_value,
    find,
    json_body,
    kv_data,
    list_keys,
    query_version,
    reads,
    restore,
    secret_at,
    secrets,
    vault_time,
    version_metadata,
    versions,
    versions_option,
)

CAS_MISMATCH = "check-and-set parameter did not match the current version"
LIST_METHODS = ("GET", "LIST")
# Where Vault mounts its JWT/OIDC and Kubernetes auth methods: `POST /v1/auth/<path>/login`.
LOGIN_PATHS = ("jwt", "kubernetes")
MOUNT_INFO = {
    "type": "kv",
    "path": f"{MOUNT}/",
    "description": "this service's secrets: {scope_type}/{scope_id}/{environment|_}/{NAME}",
    "accessor": "kv_secret_management",
    "local": False,
    "seal_wrap": False,
    "external_entropy_access": False,
    "options": {"version": "2"},
    "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False},
    "plugin_version": "",
}

blp = Blueprint("vault_compat", __name__, url_prefix="/v1")


# -- authentication and errors -------------------------------------------------------------


@blp.before_request
def authenticate() -> None:
    """The app's authentication, with the token in `X-Vault-Token` as Vault clients send it.
    A login carries its credential in the body instead, checked by the login itself."""
    if request.endpoint == f"{blp.name}.login":
        return
    try:
        vault_token = request.headers.get("X-Vault-Token", "").strip()
        token = vault_token or bearer_token(request.headers.get("Authorization", ""))
        principal = current_container().authenticator().authenticate(token)
        g.principal = Caller.of(principal, request_info())  # the views' actor
    except Unauthenticated as error:
        failures = current_container().failed_authentications()
        failures.refuse(error, request_info(), request.path[:255])


@blp.errorhandler(Exception)
def vault_error(error: Exception) -> Response:
    """The service's answer to `error` (its one error map, logging included) in Vault's shape:
    `{"errors": [...]}`; a refused token or permission is Vault's 403 `permission denied`, a
    missing path read is 404 with no message, and a refused write is 400."""
    service_answer = response_for(error)
    status = service_answer.status_code
    body = service_answer.get_json(silent=True) or {}
    messages = [body.get("error", {}).get("message", "error")]
    reading = request.method in (*LIST_METHODS, "HEAD")
    in_mount = (request.view_args or {}).get("mount") == MOUNT  # not a route Vault lacks
    if status in (401, 403):
        status, messages = 403, ["permission denied"]
    elif status == 404 and reading and in_mount:
        messages = []
    elif status in (409, 410) and reading:  # a disabled, destroyed or expired version
        status = 404
    elif status == 412:  # the secret moved on between the version checked and the write
        status, messages = 400, [CAS_MISMATCH]
    elif status in (409, 413, 422):
        status = 400
    response = jsonify({"errors": messages})
    response.status_code = status
    if "Retry-After" in service_answer.headers:
        response.headers["Retry-After"] = service_answer.headers["Retry-After"]
    return response


# -- the mount -----------------------------------------------------------------------------


@blp.get("/sys/internal/ui/mounts/<path:path>")
def mount_of_path(path: str) -> Response:
    """The mount holding `path`: what `bao kv …` asks first to learn the KV version."""
    if path.strip("/").split("/", 1)[0] != MOUNT:
        raise NotFound("no mount at this path")
    return answer(MOUNT_INFO)


@blp.get("/sys/mounts")
def mounts() -> Response:
    """The mounted secrets engines, as `vault secrets list` and hvac read them."""
    table = {f"{MOUNT}/": MOUNT_INFO}
    return answer(table, **table)


@blp.get("/auth/token/lookup-self")
def lookup_self() -> Response:
    """Who the token is, as hvac's `is_authenticated()` and Vault Agent ask: the caller's
    principal; never the token itself (Vault's `id`), nor policies (role bindings decide)."""
    principal = g.principal
    return answer(
        {
            "display_name": principal.id,
            "meta": {"principal": principal.id, "kind": principal.kind},
            "policies": ["default"],
            "renewable": False,
            "ttl": 0,
            "expire_time": None,
            "type": "service",
        }
    )


@blp.route("/auth/<auth_path>/login", methods=["POST", "PUT"])
def login(auth_path: str) -> Response:
    """Vault's JWT and Kubernetes auth login, as External Secrets Operator, Vault Agent and
    `vault write auth/jwt/login role=… jwt=…` send it: `{"role", "jwt"}`. The JWT is verified by
    the same issuers as any bearer JWT (`[identity.jwt]`, `[identity.issuers.<name>]`), and the
    Vault token given back is that same JWT, valid until its `exp`: nothing is minted or stored,
    and the caller is exactly the principal the JWT stands for. `role` is accepted and ignored:
    what a principal may read is decided by its role bindings (docs/kubernetes.md)."""
    if auth_path not in LOGIN_PATHS:
        raise NotFound("no handler for route: this service serves the KV v2 mount 'secret'")
    body = json_body()
    token, role = body.get("jwt"), body.get("role", "")
    if not isinstance(token, str) or not token.strip():
        raise InvalidInput("missing jwt", details={"field": "jwt"})
    if not isinstance(role, str):
        raise InvalidInput("role must be a text", details={"field": "role"})
    token = token.strip()
    issuers = current_container().jwt_authenticator()
    try:
        if issuers is None or token.count(".") != 2:
            raise Unauthenticated(INVALID_CREDENTIALS)
        principal, expires = issuers.verify(token)
    except Unauthenticated as error:
        failures = current_container().failed_authentications()
        failures.refuse(error, request_info(), request.path[:255])
    g.principal = Caller.of(principal, request_info())
    lease = max(0, int(expires - time.time()))
    return answer(
        None,
        auth={
            "client_token": token,
            "accessor": "",
            "policies": ["default"],
            "token_policies": ["default"],
            "metadata": {"principal": principal.id, "role": role[:255]},
            "lease_duration": lease,
            "renewable": False,
            "entity_id": "",
            "token_type": "service",
            "orphan": True,
        },
    )


# -- data ----------------------------------------------------------------------------------


@blp.get("/<mount>/data/<path:path>")
def read_data(mount: str, path: str) -> Response:
    scope, environment, name = secret_at(mount, path)
    version = query_version()
    revealed = reads().read_value_by_name(g.principal, scope, name, environment, version)
    metadata = version_metadata(revealed.secret, revealed.version)
    return answer({"data": kv_data(revealed.value), "metadata": metadata})


@blp.route("/<mount>/data/<path:path>", methods=["POST", "PUT"])
def write_data(mount: str, path: str) -> Response:
    """A new version; `options.cas`: 0 writes only a new secret, N only over version N."""
    scope, environment, name = secret_at(mount, path)
    body = json_body()
    value = data_value(body.get("data"))
    cas = cas_option(body.get("options"))
    service = secrets()
    existing = find(service, scope, environment, name)
    if existing is None:
        if cas not in (None, 0):
            raise InvalidInput(CAS_MISMATCH)
        draft = NewSecret(scope=scope, name=name, environment=environment)
        secret = service.create_secret(g.principal, draft, value)
    else:
        if cas is not None and cas != existing.current_version:
            raise InvalidInput(CAS_MISMATCH)
        secret = writes().write_value(
            g.principal,
            existing.id,
            value,
            # A check-and-set holds from the version read to the write.
            expected_revision=existing.revision if cas is not None else None,
        )
    written = secret.updated_at or secret.created_at  # the new version's time
    return answer(
        {
            "created_time": vault_time(written),
            "custom_metadata": custom_metadata(secret),
            "deletion_time": "",
            "destroyed": False,
            "version": secret.current_version,
        }
    )


@blp.delete("/<mount>/data/<path:path>")
def delete_data(mount: str, path: str) -> Response:
    """Soft delete (see `delete_metadata`)."""
    return delete_metadata(mount, path)


# -- metadata ------------------------------------------------------------------------------


@blp.route(
    "/<mount>/metadata/", methods=list(LIST_METHODS), defaults={"path": ""}, strict_slashes=False
)
@blp.route("/<mount>/metadata/<path:path>", methods=list(LIST_METHODS))
def read_metadata(mount: str, path: str) -> Response:
    """A secret's metadata and versions; with `LIST` (or `?list=true`), the keys below a path."""
    if request.method == "LIST" or request.args.get("list") == "true":
        return answer({"keys": list_keys(mount, path)})
    scope, environment, name = secret_at(mount, path)
    secret = secrets().find_secret(g.principal, scope, name, environment)
    history = versions().list_versions(g.principal, secret.id)
    return answer(
        {
            "versions": {
                str(record.version): {
                    **version_metadata(secret, record),
                    "created_by": record.created_by,
                }
                for record in history
            },
            "current_version": secret.current_version,
            "oldest_version": history[0].version if history else 0,
            "created_time": vault_time(secret.created_at),
            "updated_time": vault_time(secret.updated_at or secret.created_at),
            "max_versions": secret.max_versions or 0,
            "cas_required": False,
            "delete_version_after": "0s",
            "custom_metadata": custom_metadata(secret),
        }
    )


@blp.delete("/<mount>/metadata/<path:path>")
def delete_metadata(mount: str, path: str) -> Response:
    """Soft delete, as `secretctl delete`: hidden at once, every version kept for the
    retention window (restorable), then purged."""
    scope, environment, name = secret_at(mount, path)
    service = secrets()
    secret = service.find_secret(g.principal, scope, name, environment)
    service.delete_secret(g.principal, secret.id)
    return Response(status=204)


# -- versions ------------------------------------------------------------------------------


@blp.route(
    "/<mount>/<any(delete, undelete, destroy):operation>/<path:path>", methods=["POST", "PUT"]
)
def change_versions(mount: str, operation: str, path: str) -> Response:
    """`delete` disables versions, `undelete` enables them (and first restores the secret if
    it was deleted), `destroy` removes their values for good; the current version cannot be
    deleted nor destroyed (write a new value first)."""
    scope, environment, name = secret_at(mount, path)
    numbers = versions_option(json_body().get("versions"))
    if operation == "undelete":
        secret = find(secrets(), scope, environment, name) or restore(scope, environment, name)
    else:
        secret = secrets().find_secret(g.principal, scope, name, environment)
    service = versions()
    change = {"delete": service.disable, "undelete": service.enable, "destroy": service.destroy}
    for number in numbers:
        change[operation](g.principal, secret.id, number)
    return Response(status=204)


@blp.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "DELETE", "LIST", "PATCH"])
@blp.route("/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "LIST", "PATCH"])
def no_handler(rest: str) -> Response:
    raise NotFound("no handler for route: this service serves the KV v2 mount 'secret'")
