"""The reference syntax (issue #18's contract), parsed and formatted client-side:
`secret://{scope_type}/{scope_id}/{NAME}[?env={environment}][&version=N|&stage=S]`,
`secret://global/{NAME}` for the global scope."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from secret_management_client.errors import InvalidReference

SCOPE_TYPES = ("global", "organization", "team", "project", "user")
STAGES = ("current", "previous", "pending")
QUERY_KEYS = ("env", "version", "stage")


@dataclass(frozen=True, slots=True)
class Reference:
    scope_type: str
    scope_id: str
    name: str
    environment: str | None = None
    version: int | None = None
    stage: str | None = None

    @property
    def base(self) -> str:
        """The secret's canonical reference: no version or stage (what the server's answers
        and change events carry)."""
        path = (
            f"secret://global/{self.name}"
            if self.scope_type == "global"
            else f"secret://{self.scope_type}/{self.scope_id}/{self.name}"
        )
        return path + (f"?env={self.environment}" if self.environment else "")

    def __str__(self) -> str:
        query: list[tuple[str, str]] = []
        if self.environment:
            query.append(("env", self.environment))
        if self.version is not None:
            query.append(("version", str(self.version)))
        if self.stage:
            query.append(("stage", self.stage))
        path = self.base.split("?", 1)[0]
        return path + (f"?{urlencode(query)}" if query else "")

    def path(self) -> str:
        """The secret by path (`/api/v1/scopes/{type}/{id}/secrets/{name}`)."""
        return (
            f"/api/v1/scopes/{quote(self.scope_type, safe='')}/{quote(self.scope_id, safe='')}"
            f"/secrets/{quote(self.name, safe='')}"
        )


def parse_reference(text: str) -> Reference:
    """A reference, or `InvalidReference` (its message names the problem, never a value)."""
    if not isinstance(text, str):
        raise InvalidReference("a reference is a string", code="invalid_reference")
    if "%" in text or "+" in text or any(ch.isspace() for ch in text):
        raise InvalidReference(
            "a reference needs no percent-encoding (names, ids, environments never do)",
            code="invalid_reference",
        )
    parts = urlsplit(text)
    if parts.scheme != "secret" or parts.fragment or not parts.netloc:
        raise InvalidReference(
            "a reference looks like secret://{scope_type}/{scope_id}/{NAME}",
            code="invalid_reference",
        )
    scope_type = parts.netloc
    if scope_type not in SCOPE_TYPES:
        raise InvalidReference(
            f"unknown scope type in reference; one of {', '.join(SCOPE_TYPES)}",
            code="invalid_reference",
        )
    segments = parts.path.split("/")[1:] if parts.path.startswith("/") else []
    if scope_type == "global" and len(segments) == 1:
        segments = ["global", *segments]
    if len(segments) != 2 or not all(segments):
        raise InvalidReference(
            "a reference has a scope id and a name: secret://{scope_type}/{scope_id}/{NAME}",
            code="invalid_reference",
        )
    scope_id, name = segments
    if scope_type == "global" and scope_id != "global":
        raise InvalidReference("the global scope's id is 'global'", code="invalid_reference")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise InvalidReference(
            "a reference's query is malformed", code="invalid_reference"
        ) from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in QUERY_KEYS or key in query or not value:
            raise InvalidReference(
                "a reference's query takes env, version or stage, once each, with a value",
                code="invalid_reference",
            )
        query[key] = value
    if "version" in query and "stage" in query:
        raise InvalidReference("version or stage, not both", code="invalid_reference")
    version = None
    if "version" in query:
        if not query["version"].isdigit() or int(query["version"]) < 1:
            raise InvalidReference("version is a positive number", code="invalid_reference")
        version = int(query["version"])
    if "stage" in query and query["stage"] not in STAGES:
        raise InvalidReference(f"stage is one of {', '.join(STAGES)}", code="invalid_reference")
    return Reference(scope_type, scope_id, name, query.get("env"), version, query.get("stage"))
