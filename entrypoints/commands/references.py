"""How a command names a scope or a secret: one parser for each, the same forms everywhere.

A scope is `global` or `TYPE:ID` (`project:p-42`). A secret is its id (a UUID), a reference as
the service prints it (`secret://project/p-42/OPENAI_API_KEY?env=production`;
`secret://global/NAME` for the global scope; read by `core.references`, the service's own
parser), `TYPE:ID/NAME`, or a bare NAME in the scope `--scope` names (global by default).
`--env` picks the environment of a name in each form but the id (a reference's `?env=` does the
same; both must agree). Where a value is read (`get`), a reference may pick a version too:
`?version=N` or `?stage=current|previous|pending`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import click

from core.domain.errors import InvalidInput
from core.domain.references import format_reference
from core.domain.secrets import Stage
from core.domain.values import ScopeRef, ScopeType
from core.references import parse_reference
from entrypoints.commands.exits import CommandError, ExitCode

REFERENCE_SCHEME = "secret://"
SECRET_FORMS = "an id, secret://TYPE/ID/NAME[?env=E], TYPE:ID/NAME, or NAME with --scope"  # noqa: S105


@dataclass(frozen=True)
class Scope:
    type: str
    id: str

    def body(self) -> dict[str, str]:
        """As the API takes it in a request body."""
        return {"type": "global"} if self.type == "global" else {"type": self.type, "id": self.id}

    @property
    def path(self) -> str:
        return f"/scopes/{quote(self.type, safe='')}/{quote(self.id, safe='')}"

    def query(self) -> dict[str, str]:
        return {"scope_type": self.type, "scope_id": self.id}

    def __str__(self) -> str:
        return "global" if self.type == "global" else f"{self.type}:{self.id}"


def parse_scope(text: str, param_hint: str = "scope") -> Scope:
    if text == "global":
        return Scope("global", "global")
    kind, sep, scope_id = text.partition(":")
    if not sep or not kind or not scope_id or "/" in scope_id:
        raise click.BadParameter(
            "use 'global' or TYPE:ID, e.g. project:p-42", param_hint=param_hint
        )
    return Scope(kind, scope_id)


def scope_body(text: str) -> dict[str, str]:
    return parse_scope(text).body()


@dataclass(frozen=True)
class SecretRef:
    """A secret as a command was given it: by id, or by scope, name and environment."""

    id: str | None = None
    scope: Scope | None = None
    name: str | None = None
    environment: str | None = None
    version: int | None = None  # a reference's ?version= (get only)
    stage: Stage | None = None  # a reference's ?stage= (get only)

    @property
    def path(self) -> str:
        """`/scopes/{type}/{id}/secrets/{name}`, for a secret named by name."""
        assert self.scope is not None and self.name is not None
        return f"{self.scope.path}/secrets/{quote(self.name, safe='')}"

    def query(self) -> dict[str, str]:
        return {"environment": self.environment} if self.environment else {}

    def __str__(self) -> str:
        if self.id is not None:
            return self.id
        assert self.scope is not None
        env = f" ({self.environment})" if self.environment else ""
        return f"{self.scope.type}/{self.scope.id}/{self.name}{env}"


def parse_secret(
    text: str, scope: str | None, environment: str | None, *, versions: bool = False
) -> SecretRef:
    """The one parser of a secret's name on the command line (see the module's docstring).
    With `versions`, a reference may pick a version or a stage."""
    try:
        return SecretRef(id=str(uuid.UUID(text)))
    except ValueError:
        pass
    if text.startswith(REFERENCE_SCHEME):
        return _from_reference(text, environment, versions)
    if "/" in text:
        where, _, name = text.rpartition("/")
        return SecretRef(scope=parse_scope(where, "secret"), name=name, environment=environment)
    return SecretRef(scope=parse_scope(scope or "global"), name=text, environment=environment)


def _from_reference(text: str, environment: str | None, versions: bool) -> SecretRef:
    try:
        reference = parse_reference(text)
    except InvalidInput as error:
        raise click.BadParameter(
            f"{error.message}; use {SECRET_FORMS}", param_hint="secret"
        ) from None
    if environment is not None and reference.environment not in (None, environment):
        raise click.BadParameter(
            f"the reference says env={reference.environment}, --env says {environment}",
            param_hint="--env",
        )
    if not versions and (reference.version is not None or reference.stage is not None):
        raise click.BadParameter(
            "a reference picks a version or stage only where a value is read (get)",
            param_hint="secret",
        )
    return SecretRef(
        scope=Scope(reference.scope.type.value, reference.scope.id),
        name=reference.name,
        environment=reference.environment or environment,
        version=reference.version,
        stage=reference.stage,
    )


def value_request(ref: SecretRef, version: int | None) -> tuple[str, dict[str, Any]]:
    """The request that reads the value `ref` names (`--version` as `version`): by id, by path,
    or by reference for a stage."""
    if version is not None and (ref.version not in (None, version) or ref.stage is not None):
        raise click.BadParameter(
            "the reference picks another version than --version", param_hint="--version"
        )
    number = version if version is not None else ref.version
    params: dict[str, Any] = {"version": number} if number is not None else {}
    if ref.id is not None:
        return f"/secrets/{ref.id}/value", params
    if ref.stage is not None:
        assert ref.scope is not None and ref.name is not None
        text = format_reference(
            ScopeRef(ScopeType(ref.scope.type), ref.scope.id),
            ref.name,
            ref.environment,
            stage=ref.stage,
        )
        return "/references/value", {"ref": text}
    return f"{ref.path}/value", params | ref.query()


def secret_argument(command: Any) -> Any:
    """The SECRET argument with the --scope and --env that complete a bare name."""
    for decorator in reversed(
        (
            click.argument("secret"),
            click.option("--scope", help="global or TYPE:ID, for a bare NAME [global]."),
            click.option("--env", "environment", help="The environment of the secret named."),
        )
    ):
        command = decorator(command)
    return command


def find_secret(client: Any, ref: SecretRef, *, deleted: bool = False) -> dict[str, Any]:
    """The secret's metadata (with its `ETag`, as `_etag`): by id, or by scope and name. With
    `deleted`, a soft-deleted secret is found too (restore, purge)."""
    if ref.id is not None:
        params = {"include_deleted": "true"} if deleted else {}
        response = client.request("GET", f"/secrets/{ref.id}", params=params)
        return {**response.json(), "_etag": response.headers.get("ETag")}
    if not deleted:
        response = client.request("GET", ref.path, params=ref.query())
        return {**response.json(), "_etag": response.headers.get("ETag")}
    assert ref.scope is not None and ref.name is not None
    query = {**ref.scope.query(), **ref.query(), "prefix": ref.name, "deleted": "true"}
    for item in client.pages("/secrets", query):
        if item["name"] == ref.name and item["environment"] == ref.environment:
            return find_secret(client, SecretRef(id=item["id"]), deleted=True)
    found = client.call("GET", ref.path, params=ref.query())
    if found.status_code == 200:  # a live secret: restore and purge say so themselves
        return {**found.json(), "_etag": found.headers.get("ETag")}
    raise CommandError(f"not_found: no deleted secret {ref}", ExitCode.NOT_FOUND)
