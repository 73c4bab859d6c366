"""KV v2's paths, bodies and answers in this service's terms, for the Vault-compatible API
(entrypoints/http/vault_compat.py): a path names a scope, an environment and a name; a KV entry's
`data` is a secret's value as JSON text."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Response, g, jsonify, request
from marshmallow import ValidationError

from core.domain.errors import InvalidInput, NotFound
from core.domain.paging import PageRequest
from core.domain.secrets import Secret, SecretFilter, SecretVersion, VersionState
from core.domain.values import GLOBAL_SCOPE_ID, ScopeRef, ScopeType, SecretValue
from core.reads import ReadService
from core.secrets import MAX_PAGE_SIZE, SecretService
from core.versions import VersionService
from entrypoints.http.context import current_container
from entrypoints.http.schemas.fields import INT32_MAX, ValueText
from entrypoints.http.secrets import path_text, scope_ref

MOUNT = "secret"
NO_ENVIRONMENT = "_"
# A listing reads at most this many secrets' metadata (pages of MAX_PAGE_SIZE).
MAX_LISTED = 20 * MAX_PAGE_SIZE
# The lengths of the REST API's path parameters (entrypoints/http/secrets.py) and environments.
MAX_SCOPE_TYPE, MAX_SCOPE_ID, MAX_ENVIRONMENT, MAX_NAME = 32, 128, 64, 255


def secrets() -> SecretService:
    return current_container().secret_service()


def reads() -> ReadService:
    return current_container().read_service()


def versions() -> VersionService:
    return current_container().version_service()


def answer(data: Any, **extra: Any) -> Response:
    """Vault's response envelope around `data`."""
    return jsonify(
        {
            "request_id": g.get("request_id", ""),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": data,
            "wrap_info": None,
            "warnings": None,
            "auth": None,
            **extra,
        }
    )


def parts_of(mount: str, path: str) -> list[str]:
    if mount != MOUNT:
        raise NotFound("no handler for route: this service serves the KV v2 mount 'secret'")
    return [part for part in path.strip("/").split("/", 3) if part] if path.strip("/") else []


def scope_of(scope_type: str, scope_id: str) -> ScopeRef:
    if len(scope_type) > MAX_SCOPE_TYPE or len(scope_id) > MAX_SCOPE_ID:
        raise NotFound("no scope at this path")  # as the REST API's bounded routes answer
    scope = scope_ref(scope_type, path_text(scope_id, "scope"))
    if scope.type is ScopeType.GLOBAL and scope_id != GLOBAL_SCOPE_ID:
        raise NotFound(f"the global scope's id is '{GLOBAL_SCOPE_ID}'")
    return scope


def secret_at(mount: str, path: str) -> tuple[ScopeRef, str | None, str]:
    """The scope, environment and name of `{scope_type}/{scope_id}/{environment|_}/{NAME}`."""
    parts = parts_of(mount, path)
    if len(parts) != 4:
        raise NotFound(
            "a path is {scope_type}/{scope_id}/{environment}/{NAME} ('_': no environment)"
        )
    scope_type, scope_id, environment, name = parts
    if len(environment) > MAX_ENVIRONMENT or len(name) > MAX_NAME:
        raise NotFound("no secret at this path")  # longer than any stored one
    env = None if environment == NO_ENVIRONMENT else path_text(environment, "environment")
    return scope_of(scope_type, scope_id), env, path_text(name, "name")


def find(
    service: SecretService, scope: ScopeRef, environment: str | None, name: str
) -> Secret | None:
    """The secret at a path, or None when there is none the caller may see."""
    try:
        return service.find_secret(g.principal, scope, name, environment)
    except NotFound:
        return None


def restore(scope: ScopeRef, environment: str | None, name: str) -> Secret:
    """Restore the soft-deleted secret at a path (KV: undelete what `DELETE data/` deleted)."""
    criteria = SecretFilter(scope=scope, environment=environment, prefix=name, deleted=True)
    for secret in listed(criteria):
        if secret.name == name and secret.environment == environment:
            return secrets().restore_secret(g.principal, secret.id)
    raise NotFound("no secret at this path")


def list_keys(mount: str, path: str) -> list[str]:
    """The next path segment of every secret below `path` the caller may list, folders ending
    in `/`; 404 when there is none, as Vault answers."""
    parts = parts_of(mount, path)
    depth = len(parts)
    if depth == 0:
        criteria = SecretFilter()
    elif depth == 1:
        criteria = SecretFilter(scope_type=scope_ref(parts[0], None).type.value)
    elif depth in (2, 3):
        environment = parts[2] if depth == 3 else None
        criteria = SecretFilter(
            scope=scope_of(parts[0], parts[1]),
            environment=None if environment == NO_ENVIRONMENT else environment,
        )
    else:
        raise NotFound("a secret has no keys below it")
    every_environment = depth == 3 and parts[2] == NO_ENVIRONMENT
    keys = {
        key_at(secret, depth)
        for secret in listed(criteria)
        if not every_environment or secret.environment is None
    }
    if not keys:
        raise NotFound("nothing listed at this path")
    return sorted(keys)


def key_at(secret: Secret, depth: int) -> str:
    segments = (
        f"{secret.scope.type.value}/",
        f"{secret.scope.id}/",
        f"{secret.environment or NO_ENVIRONMENT}/",
        secret.name,
    )
    return segments[depth]


def listed(criteria: SecretFilter) -> Iterator[Secret]:
    """The secrets the caller may list that match `criteria`, page after page."""
    service = secrets()
    for page in range(1, MAX_LISTED // MAX_PAGE_SIZE + 1):
        found = service.list_secrets(g.principal, criteria, PageRequest(page, MAX_PAGE_SIZE))
        yield from found.items
        if page * MAX_PAGE_SIZE >= found.total:
            return


def json_body() -> dict[str, Any]:
    """The request's JSON object (Vault clients do not always say it is JSON)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    return body


def data_value(data: Any) -> SecretValue:
    """A KV entry's `data` object as the secret's value: its canonical JSON text."""
    if not isinstance(data, dict):
        raise InvalidInput("no data provided: `data` must be a JSON object")
    try:
        text = ValueText().deserialize(data)
    except ValidationError as error:
        raise InvalidInput(f"data: {' '.join(map(str, error.messages))}") from None
    return SecretValue.from_text(text)


def kv_data(value: SecretValue) -> dict[str, Any]:
    """A value as a KV entry's `data`: a JSON object as itself, any other text as
    `{"value": text}`, bytes that are not UTF-8 as `{"value_base64": …}`."""
    raw = value.reveal()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"value_base64": base64.b64encode(raw).decode("ascii")}
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {"value": text}


def integer(raw: Any, what: str) -> int:
    """An integer as Vault's weak decoding takes it: a JSON number or a numeric string."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise InvalidInput(f"error parsing {what}")
    try:
        number = int(raw)
    except ValueError:
        raise InvalidInput(f"error parsing {what}") from None
    if not 0 <= number <= INT32_MAX:
        raise InvalidInput(f"{what} is out of range")
    return number


def cas_option(options: Any) -> int | None:
    if options is None:
        return None
    if not isinstance(options, dict):
        raise InvalidInput("options must be a JSON object")
    cas = options.get("cas")
    return None if cas is None else integer(cas, "check-and-set parameter")


def versions_option(raw: Any) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("no version number provided")
    return [integer(item, "versions") for item in raw[:100]]


def query_version() -> int | None:
    raw = request.args.get("version")
    number = None if raw in (None, "") else integer(raw, "version")
    return number or None  # version=0: the current one, as in Vault


def version_metadata(secret: Secret, record: SecretVersion) -> dict[str, Any]:
    """A version as KV v2 describes it: a disabled version is a deleted one (it can be
    undeleted), a destroyed one is destroyed."""
    deleted_at = None
    if record.state is VersionState.DISABLED:
        deleted_at = record.disable_at or secret.updated_at or record.created_at
    return {
        "created_time": vault_time(record.created_at),
        "custom_metadata": custom_metadata(secret),
        "deletion_time": vault_time(deleted_at) if deleted_at else "",
        "destroyed": record.state is VersionState.DESTROYED,
        "version": record.version,
    }


def custom_metadata(secret: Secret) -> dict[str, str] | None:
    """The secret's tags (Vault answers null for none)."""
    return dict(secret.tags) or None


def vault_time(moment: datetime) -> str:
    """RFC 3339 in UTC, as Vault writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
