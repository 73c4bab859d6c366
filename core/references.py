"""References: the one syntax that names a secret (and a version of it) instead of its value.

`secret://{scope_type}/{scope_id}/{NAME}` names the secret without an environment,
`secret://{scope_type}/{scope_id}/{NAME}?env={environment}` the one in that environment; the
global scope is `secret://global/{NAME}` (`secret://global/global/{NAME}` is accepted too). The
query may also pick a version: `version=N` or `stage=current|previous|pending`, not both. No part
ever needs percent-encoding under the naming rules, so a reference with any (or anything else that
does not read back as the canonical form) is refused, as is any other query key.

A value may hold `${secret://…}`; `expand` replaces each with the referenced value, reading it
through the caller's own value read (authorized and audited as any), recursively, refusing a
cycle (the same secret version twice on one path) and a depth beyond `MAX_DEPTH`. `$${` stands
for a literal `${`. Errors name the reference, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit
from uuid import UUID

from core.domain.errors import InvalidInput, InvalidSecretValue, ServiceError
from core.domain.references import SCHEME, format_reference
from core.domain.secrets import RevealedValue, Secret, Stage
from core.domain.values import GLOBAL_SCOPE_ID, ScopeRef, ScopeType, SecretValue
from core.policy import ENVIRONMENT_PATTERN, SCOPE_ID_PATTERN

MAX_LENGTH = 1024
MAX_DEPTH = 10
QUERY_KEYS = ("env", "version", "stage")
# What a name may hold and still need no percent-encoding in a URL path segment.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.~!$&'()*+,;=:@-]{1,255}")
VERSION_PATTERN = re.compile(r"[1-9][0-9]{0,9}")
# `$${` (a literal `${`) or `${secret://…}`; anything else stays as it is.
PLACEHOLDER = re.compile(r"\$\$\{|\$\{(secret://[^}]*)\}")


class ReferenceCycle(InvalidSecretValue):
    code = "reference_cycle"


class ReferenceTooDeep(InvalidSecretValue):
    code = "reference_too_deep"


class ReferenceUnresolvable(InvalidSecretValue):
    code = "reference_unresolvable"


@dataclass(frozen=True)
class Reference:
    """A secret by scope, name and environment; optionally one version (by number or stage)."""

    scope: ScopeRef
    name: str
    environment: str | None = None
    version: int | None = None
    stage: Stage | None = None

    def __str__(self) -> str:
        return format_reference(self.scope, self.name, self.environment, self.version, self.stage)

    @property
    def secret(self) -> Reference:
        """The reference of the secret itself, without a version or stage."""
        return Reference(self.scope, self.name, self.environment)


def reference_of(secret: Secret) -> str:
    """What an API answer describing `secret` carries as its `reference`."""
    return format_reference(secret.scope, secret.name, secret.environment)


def _refuse(reason: str) -> InvalidInput:
    return InvalidInput(f"invalid reference: {reason}", details={"field": "reference"})


def parse_reference(text: str) -> Reference:
    """The reference `text` names; `InvalidInput` (never echoing it) if it is not one."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        raise _refuse(f"it must be text of at most {MAX_LENGTH} characters")
    if not text.startswith(SCHEME):
        raise _refuse(f"it must start with {SCHEME}")
    if "%" in text or "#" in text or not text.isprintable() or not text.isascii():
        raise _refuse("it must not be percent-encoded, hold a fragment or control characters")
    parts = urlsplit(text)
    segments = [parts.netloc, *parts.path.split("/")[1:]]
    if segments[:2] == ["global", GLOBAL_SCOPE_ID] and len(segments) == 3:
        segments = segments[1:]
    if segments[0] == "global" and len(segments) == 2:
        scope, name = ScopeRef.global_scope(), segments[1]
    elif len(segments) == 3 and segments[0] != "global":
        kind, scope_id, name = segments
        try:
            scope_type = ScopeType(kind)
        except ValueError:
            raise _refuse(
                f"unknown scope type; one of {', '.join(t.value for t in ScopeType)}"
            ) from None
        if not SCOPE_ID_PATTERN.fullmatch(scope_id):
            raise _refuse(f"the scope id must match {SCOPE_ID_PATTERN.pattern}")
        scope = ScopeRef(scope_type, scope_id)
    else:
        raise _refuse("use secret://TYPE/ID/NAME or secret://global/NAME")
    if not NAME_PATTERN.fullmatch(name):
        raise _refuse("the name must be 1 to 255 characters that need no encoding")
    if "?" in text and not parts.query:
        raise _refuse("an empty query")
    query = _query(parts.query)
    environment = query.get("env")
    if environment is not None and not ENVIRONMENT_PATTERN.fullmatch(environment):
        raise _refuse(f"env must match {ENVIRONMENT_PATTERN.pattern}")
    version = None
    if "version" in query:
        if not VERSION_PATTERN.fullmatch(query["version"]) or int(query["version"]) > 2**31 - 1:
            raise _refuse("version must be a version number")
        version = int(query["version"])
    stage = None
    if "stage" in query:
        if version is not None:
            raise _refuse("give version or stage, not both")
        try:
            stage = Stage(query["stage"])
        except ValueError:
            raise _refuse("stage is one of current, previous, pending") from None
    reference = Reference(scope, name, environment, version, stage)
    if _canonical_parts(str(reference)) != _canonical_parts(text, alias=True):
        raise _refuse("it does not read back as its canonical form")
    return reference


def _query(query: str) -> dict[str, str]:
    if not query:
        return {}
    pairs = query.split("&")
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if key not in QUERY_KEYS:
            raise _refuse(f"the query keys are {', '.join(QUERY_KEYS)}")
        if not sep or not value or key in found:
            raise _refuse(f"give {key} once, with a value")
        found[key] = value
    # urllib's own reading must agree (it would decode what we refused above).
    if dict(parse_qsl(query, keep_blank_values=True)) != found:
        raise _refuse("the query does not read back as written")
    return found


def _canonical_parts(text: str, *, alias: bool = False) -> tuple[str, frozenset[str]]:
    """The path of a reference and its query pairs in any order (their order is free)."""
    path, _, query = text.partition("?")
    if alias and path.startswith(f"{SCHEME}global/{GLOBAL_SCOPE_ID}/"):
        path = SCHEME + "global/" + path.removeprefix(f"{SCHEME}global/{GLOBAL_SCOPE_ID}/")
    return path, frozenset(query.split("&")) if query else frozenset()


# -- expansion -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expansion:
    """One reference a value was expanded with: its text and the version read for it."""

    reference: str
    secret_id: UUID
    version: int


Read = Callable[[Reference], RevealedValue]


def expand(revealed: RevealedValue, read: Read) -> tuple[SecretValue, list[Expansion]]:
    """The value with each `${secret://…}` replaced by the referenced value (each read with
    `read`, which authorizes and audits it as the caller's), and the references used, in the
    order read. A value that is not UTF-8 text is returned as it is."""
    expansions: list[Expansion] = []
    origin = (revealed.secret.id, revealed.version.version)
    value = _expand(revealed.value, read, [origin], expansions)
    return value, expansions


def _expand(
    value: SecretValue,
    read: Read,
    path: list[tuple[UUID, int]],
    expansions: list[Expansion],
) -> SecretValue:
    try:
        text = value.reveal().decode("utf-8")
    except UnicodeDecodeError:
        return value
    if "${" not in text:
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "${"
        return _resolve(match.group(1), read, path, expansions)

    return SecretValue.from_text(PLACEHOLDER.sub(replace, text))


def _resolve(
    text: str, read: Read, path: list[tuple[UUID, int]], expansions: list[Expansion]
) -> str:
    try:
        reference = parse_reference(text)
    except InvalidInput as error:
        raise ReferenceUnresolvable(
            f"the value refers to {text!r}, which is not a reference: {error.message}",
            details={"reference": text, "reason": error.code},
        ) from None
    shown = str(reference)
    if len(path) > MAX_DEPTH:
        raise ReferenceTooDeep(
            f"references nest deeper than {MAX_DEPTH} levels at {shown}",
            details={"reference": shown, "max_depth": MAX_DEPTH},
        )
    try:
        nested = read(reference)
    except (ReferenceCycle, ReferenceTooDeep, ReferenceUnresolvable):
        raise
    except ServiceError as error:
        if error.code in ("audit_unavailable", "backend_unavailable", "database_unavailable"):
            raise
        raise ReferenceUnresolvable(
            f"the value refers to {shown}, which cannot be read for this caller",
            details={"reference": shown, "reason": error.code},
        ) from None
    key = (nested.secret.id, nested.version.version)
    if key in path:
        raise ReferenceCycle(f"references form a cycle at {shown}", details={"reference": shown})
    expansions.append(Expansion(shown, nested.secret.id, nested.version.version))
    inner = _expand(nested.value, read, [*path, key], expansions)
    try:
        return inner.reveal().decode("utf-8")
    except UnicodeDecodeError:
        raise ReferenceUnresolvable(
            f"the value refers to {shown}, whose value is not UTF-8 text",
            details={"reference": shown, "reason": "not_text"},
        ) from None
