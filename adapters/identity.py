"""Identity adapters: who a bearer token stands for.

Three kinds of token: JWTs (of the people's identity provider, `[identity.jwt]`, and of each
workload issuer, `[identity.issuers.<name>]`, e.g. a Kubernetes cluster), API tokens of service
accounts issued here (`smt_…`), and the development root token. Every failure is the same 401,
with no hint of why: the reason goes to the debug log only.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt

from adapters.expiring import ExpiringCache
from core.access import INVALID_CREDENTIALS
from core.domain.errors import ConfigurationError, Unauthenticated
from core.domain.values import Principal
from core.service_accounts import looks_like_api_token
from ports.security import Authenticator

log = logging.getLogger(__name__)

ROOT = Principal(id="root", kind="root", is_root=True)
# Short enough that `user:<subject>` fits the 255-character principal columns.
SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,249}$")
JWT_SETTINGS = frozenset(
    {
        "issuer",
        "audience",
        "algorithms",
        "shared_key_env",
        "jwks_file",
        "jwks_url",
        "user_claim",
        "groups_claim",
        "leeway_seconds",
    }
)
# What each kind of key verifies: a shared key (`shared_key_env`), a JWKS document's public keys.
SHARED_KEY_ALGORITHMS = ("HS256", "HS384", "HS512")
PUBLIC_KEY_ALGORITHMS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512", "EdDSA"),
)
JWT_ALGORITHMS = SHARED_KEY_ALGORITHMS + PUBLIC_KEY_ALGORITHMS
MAX_LEEWAY_SECONDS = 600
# `[identity.issuers.<name>]`: a workload issuer's settings. No user or groups claim: its tokens
# only ever stand for `service:<name>:…` principals, never a user nor a group.
ISSUER_SETTINGS = (JWT_SETTINGS - {"user_claim", "groups_claim"}) | {"kind", "subject_claim"}
ISSUER_KINDS = ("kubernetes", "subject")
# No `:` in a name, so the name an issuer's principals start with is always read back whole.
ISSUER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# A projected service-account token's `sub`: namespace (a DNS label), account (a DNS subdomain).
KUBERNETES_SUBJECT = re.compile(
    r"^system:serviceaccount:(?P<namespace>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
    r":(?P<account>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)$"
)
MAX_PRINCIPAL = 255  # the principal columns' width


class DevRootTokenAuthenticator(Authenticator):
    """The development root token (as Vault's `-dev-root-token-id`), compared in constant time."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    def authenticate(self, token: str) -> Principal:
        if self._token is not None and hmac.compare_digest(token.encode(), self._token):
            return ROOT
        raise Unauthenticated(INVALID_CREDENTIALS)

    def __repr__(self) -> str:
        return "DevRootTokenAuthenticator(<token redacted>)"


# A token verified once is known for a minute (its expiry still checked at every use): its
# signature and claims are not checked again on each request of a client that sends it many
# times. A minute is well within the five minutes a JWKS URL's keys are kept anyway.
VERIFIED_TOKENS = 4096
VERIFIED_TOKEN_SECONDS = 60.0


class JwtAuthenticator(Authenticator):
    """Bearer JWTs of one issuer: HS256 with a shared key, or RS256/ES256 with keys from a JWKS
    document (a file or a URL). The issuer and audience must match.

    Without a `name`, the people's identity provider (`[identity.jwt]`): a token stands for
    `user:<user_claim>` with its groups. With one, a workload issuer
    (`[identity.issuers.<name>]`): a token stands for a service principal carrying that name,
    `service:<name>:<namespace>:<account>` for `kind = "kubernetes"` (`sub` =
    `system:serviceaccount:<namespace>:<account>`), or `service:<name>:<subject_claim>` for
    `kind = "subject"`; never a user, never a group."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        environ: Mapping[str, str],
        now: Callable[[], float] = time.time,
        name: str | None = None,
    ) -> None:
        self.name = name
        key = "identity.jwt" if name is None else f"identity.issuers.{name}"
        if name is not None and not ISSUER_NAME.fullmatch(name):
            raise ConfigurationError(
                f"configuration key 'identity.issuers.{name[:64]}': an issuer's name must match "
                f"{ISSUER_NAME.pattern}"
            )
        unknown = set(settings) - (JWT_SETTINGS if name is None else ISSUER_SETTINGS)
        if unknown:
            raise ConfigurationError(
                f"configuration key '{key}.{sorted(unknown)[0]}': unknown setting"
            )
        for required in ("issuer", "audience"):
            if not settings.get(required):
                raise ConfigurationError(f"configuration key '{key}.{required}' is required")
        self.issuer = str(settings["issuer"])
        self._audience = str(settings["audience"])
        self._kind = "user" if name is None else settings.get("kind", "kubernetes")
        if name is not None and self._kind not in ISSUER_KINDS:
            raise ConfigurationError(
                f"configuration key '{key}.kind': one of {', '.join(ISSUER_KINDS)}"
            )
        subject_claim = "user_claim" if name is None else "subject_claim"
        self._user_claim = str(settings.get(subject_claim, "sub"))
        if self._kind == "kubernetes" and self._user_claim != "sub":
            raise ConfigurationError(
                f"configuration key '{key}.subject_claim': a Kubernetes issuer's subject is `sub`"
            )
        self._groups_claim = str(settings.get("groups_claim", "groups"))
        self._leeway = settings.get("leeway_seconds", 30)
        if not isinstance(self._leeway, int) or not 0 <= self._leeway <= MAX_LEEWAY_SECONDS:
            raise ConfigurationError(
                f"configuration key '{key}.leeway_seconds': must be a whole number of "
                f"seconds from 0 to {MAX_LEEWAY_SECONDS}"
            )
        self._key_for, default_algorithms = _key_source(settings, environ, key)
        verifiable = (
            SHARED_KEY_ALGORITHMS if "HS256" in default_algorithms else PUBLIC_KEY_ALGORITHMS
        )
        self._algorithms = _algorithms(
            settings.get("algorithms"), verifiable, default_algorithms, key
        )
        # What a token proved (its principal, its `exp`), by the token.
        self._verified: ExpiringCache[str, tuple[Principal, float]] = ExpiringCache(
            VERIFIED_TOKENS, VERIFIED_TOKEN_SECONDS
        )
        self._now = now

    def authenticate(self, token: str) -> Principal:
        return self.verify(token)[0]

    def verify(self, token: str) -> tuple[Principal, float]:
        """Who the token stands for, and until when (its `exp`, a Unix time)."""
        verified = self._verified.get(token)
        if verified is not None:
            _principal, expires = verified
            if expires > self._now() - self._leeway:  # PyJWT's own test of `exp`
                return verified
            self._verified.forget(token)
            raise Unauthenticated(INVALID_CREDENTIALS)
        verified = self._verify(token)
        self._verified.put(token, verified)
        return verified

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", self._user_claim]},
            )
        except (jwt.PyJWTError, ValueError) as error:
            log.debug("JWT refused: %s", type(error).__name__)
            raise Unauthenticated(INVALID_CREDENTIALS) from None
        subject = claims.get(self._user_claim)
        if self.name is not None:
            return self._service(subject, claims), float(claims["exp"])
        groups = claims.get(self._groups_claim) or []
        if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
            raise Unauthenticated(INVALID_CREDENTIALS)
        if not isinstance(groups, list):
            groups = []
        principal = Principal(
            id=f"user:{subject}",
            kind="user",
            groups=tuple(
                f"group:{group}"
                for group in groups
                if isinstance(group, str) and SUBJECT.fullmatch(group)
            ),
        )
        return principal, float(claims["exp"])

    def _service(self, subject: Any, claims: Mapping[str, Any]) -> Principal:
        """The service principal a workload issuer's token stands for: always named after this
        issuer, so no token of one issuer is ever taken for a principal of another."""
        if not isinstance(subject, str):
            raise Unauthenticated(INVALID_CREDENTIALS)
        if self._kind == "kubernetes":
            match = KUBERNETES_SUBJECT.fullmatch(subject)
            if match is None or not _kubernetes_claims_agree(claims, match):
                log.debug("JWT refused: not a service account's token")
                raise Unauthenticated(INVALID_CREDENTIALS)
            principal = f"service:{self.name}:{match['namespace']}:{match['account']}"
        elif SUBJECT.fullmatch(subject):
            principal = f"service:{self.name}:{subject}"
        else:
            raise Unauthenticated(INVALID_CREDENTIALS)
        if len(principal) > MAX_PRINCIPAL:
            raise Unauthenticated(INVALID_CREDENTIALS)
        return Principal(id=principal, kind="service")

    def __repr__(self) -> str:
        if self.name is None:
            return f"JwtAuthenticator(issuer={self.issuer!r})"
        return f"JwtAuthenticator(name={self.name!r}, issuer={self.issuer!r})"


def _kubernetes_claims_agree(claims: Mapping[str, Any], subject: re.Match[str]) -> bool:
    """The `kubernetes.io` claim, when the token has one, names the same namespace and account
    as its `sub` (the API server writes both; a token where they differ is not its own)."""
    kubernetes = claims.get("kubernetes.io")
    if kubernetes is None:
        return True
    if not isinstance(kubernetes, Mapping):
        return False
    account = kubernetes.get("serviceaccount")
    return (
        kubernetes.get("namespace") == subject["namespace"]
        and isinstance(account, Mapping)
        and account.get("name") == subject["account"]
    )


class IssuerAuthenticator(Authenticator):
    """JWTs of several issuers: the token's `iss` (read before any check) picks the one issuer
    whose keys, audience and algorithms then verify it; no other issuer's keys are ever tried.
    A token of an issuer not configured is refused as any bad token is."""

    def __init__(self, issuers: list[JwtAuthenticator]) -> None:
        self._by_iss: dict[str, JwtAuthenticator] = {}
        for issuer in issuers:
            if issuer.issuer in self._by_iss:
                key = "identity.jwt" if issuer.name is None else f"identity.issuers.{issuer.name}"
                raise ConfigurationError(
                    f"configuration key '{key}.issuer': another issuer already has the "
                    f"issuer {issuer.issuer[:200]!r}: each token's `iss` must pick one issuer"
                )
            self._by_iss[issuer.issuer] = issuer

    def authenticate(self, token: str) -> Principal:
        return self.verify(token)[0]

    def verify(self, token: str) -> tuple[Principal, float]:
        """Who the token stands for, and until when (its `exp`, a Unix time)."""
        try:
            claimed = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except (jwt.PyJWTError, ValueError, AttributeError) as error:
            log.debug("JWT refused: %s", type(error).__name__)
            raise Unauthenticated(INVALID_CREDENTIALS) from None
        issuer = self._by_iss.get(claimed) if isinstance(claimed, str) else None
        if issuer is None:
            log.debug("JWT refused: no issuer configured for its iss")
            raise Unauthenticated(INVALID_CREDENTIALS)
        return issuer.verify(token)

    def __repr__(self) -> str:
        return f"IssuerAuthenticator({list(self._by_iss.values())!r})"


def _key_source(
    settings: Mapping[str, Any], environ: Mapping[str, str], key: str = "identity.jwt"
) -> tuple[Callable[[str], Any], tuple[str, ...]]:
    """How to find the verification key of a token, and the algorithms that key allows."""
    sources = [name for name in ("shared_key_env", "jwks_file", "jwks_url") if settings.get(name)]
    if len(sources) != 1:
        raise ConfigurationError(
            f"configuration key '{key}': set exactly one of shared_key_env, jwks_file, jwks_url"
        )
    if settings.get("shared_key_env"):
        variable = str(settings["shared_key_env"])
        shared = environ.get(variable)
        if not shared or len(shared) < 32:
            raise ConfigurationError(
                f"configuration key '{key}.shared_key_env': the environment variable "
                f"{variable} must hold a key of at least 32 characters"
            )
        return (lambda _token: shared.encode()), ("HS256",)
    if settings.get("jwks_url"):
        client = jwt.PyJWKClient(str(settings["jwks_url"]), cache_keys=True, lifespan=300)
        return (lambda token: client.get_signing_key_from_jwt(token).key), ("RS256", "ES256")
    path = Path(str(settings["jwks_file"]))
    try:
        key_set = jwt.PyJWKSet.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, jwt.PyJWTError) as error:
        raise ConfigurationError(
            f"configuration key '{key}.jwks_file': cannot load {path}: {type(error).__name__}"
        ) from None
    return (lambda token: _key_by_id(key_set, token)), ("RS256", "ES256")


def _algorithms(
    configured: Any, allowed: tuple[str, ...], default: tuple[str, ...], key: str = "identity.jwt"
) -> list[str]:
    """The algorithms accepted: those configured (a list, each one the key source verifies)."""
    if configured is None:
        return list(default)
    if not isinstance(configured, list | tuple) or not configured:
        raise ConfigurationError(f"configuration key '{key}.algorithms': must be a non-empty list")
    for algorithm in configured:
        if algorithm not in allowed:
            raise ConfigurationError(
                f"configuration key '{key}.algorithms': {str(algorithm)[:20]!r} is not "
                f"one this key verifies ({', '.join(allowed)})"
            )
    return list(configured)


def _key_by_id(key_set: jwt.PyJWKSet, token: str) -> Any:
    key_id = jwt.get_unverified_header(token).get("kid")
    for key in key_set.keys:
        if key.key_id == key_id:
            return key.key
    raise ValueError("no key with that id")


class BearerAuthenticator(Authenticator):
    """Sends each token to the authenticator its shape calls for."""

    def __init__(
        self,
        api_tokens: Callable[[str], Principal],
        jwt_authenticator: Authenticator | None,
        dev_root: Authenticator | None,
    ) -> None:
        self._api_tokens = api_tokens
        self._jwt = jwt_authenticator
        self._dev_root = dev_root

    def authenticate(self, token: str) -> Principal:
        if looks_like_api_token(token):
            return self._api_tokens(token)
        if self._jwt is not None and token.count(".") == 2:
            return self._jwt.authenticate(token)
        if self._dev_root is not None:
            return self._dev_root.authenticate(token)
        raise Unauthenticated(INVALID_CREDENTIALS)
