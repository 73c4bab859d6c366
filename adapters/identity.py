"""Identity adapters: who a bearer token stands for.

Three kinds of token: the platform identity provider's JWTs, API tokens of service accounts
issued here (`smt_…`), and the development root token. Every failure is the same 401, with no
hint of why: the reason goes to the debug log only.
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
from core.errors import ConfigurationError, Unauthenticated
from core.service_accounts import looks_like_api_token
from ports.security import Authenticator
from ports.values import Principal

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
    """Bearer JWTs of the platform's identity provider: HS256 with a shared key, or RS256/ES256
    with keys from a JWKS document (a file or a URL). The issuer and audience must match."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        environ: Mapping[str, str],
        now: Callable[[], float] = time.time,
    ) -> None:
        unknown = set(settings) - JWT_SETTINGS
        if unknown:
            raise ConfigurationError(
                f"configuration key 'identity.jwt.{sorted(unknown)[0]}': unknown setting"
            )
        for required in ("issuer", "audience"):
            if not settings.get(required):
                raise ConfigurationError(f"configuration key 'identity.jwt.{required}' is required")
        self._issuer = str(settings["issuer"])
        self._audience = str(settings["audience"])
        self._user_claim = str(settings.get("user_claim", "sub"))
        self._groups_claim = str(settings.get("groups_claim", "groups"))
        self._leeway = settings.get("leeway_seconds", 30)
        if not isinstance(self._leeway, int) or not 0 <= self._leeway <= MAX_LEEWAY_SECONDS:
            raise ConfigurationError(
                "configuration key 'identity.jwt.leeway_seconds': must be a whole number of "
                f"seconds from 0 to {MAX_LEEWAY_SECONDS}"
            )
        self._key_for, default_algorithms = _key_source(settings, environ)
        verifiable = (
            SHARED_KEY_ALGORITHMS if "HS256" in default_algorithms else PUBLIC_KEY_ALGORITHMS
        )
        self._algorithms = _algorithms(settings.get("algorithms"), verifiable, default_algorithms)
        # What a token proved (its principal, its `exp`), by the token.
        self._verified: ExpiringCache[str, tuple[Principal, float]] = ExpiringCache(
            VERIFIED_TOKENS, VERIFIED_TOKEN_SECONDS
        )
        self._now = now

    def authenticate(self, token: str) -> Principal:
        verified = self._verified.get(token)
        if verified is not None:
            principal, expires = verified
            if expires > self._now() - self._leeway:  # PyJWT's own test of `exp`
                return principal
            self._verified.forget(token)
            raise Unauthenticated(INVALID_CREDENTIALS)
        principal, expires = self._verify(token)
        self._verified.put(token, (principal, expires))
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", self._user_claim]},
            )
        except (jwt.PyJWTError, ValueError) as error:
            log.debug("JWT refused: %s", type(error).__name__)
            raise Unauthenticated(INVALID_CREDENTIALS) from None
        subject = claims.get(self._user_claim)
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

    def __repr__(self) -> str:
        return f"JwtAuthenticator(issuer={self._issuer!r})"


def _key_source(
    settings: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[Callable[[str], Any], tuple[str, ...]]:
    """How to find the verification key of a token, and the algorithms that key allows."""
    sources = [key for key in ("shared_key_env", "jwks_file", "jwks_url") if settings.get(key)]
    if len(sources) != 1:
        raise ConfigurationError(
            "configuration key 'identity.jwt': set exactly one of shared_key_env, jwks_file, "
            "jwks_url"
        )
    if settings.get("shared_key_env"):
        variable = str(settings["shared_key_env"])
        shared = environ.get(variable)
        if not shared or len(shared) < 32:
            raise ConfigurationError(
                f"configuration key 'identity.jwt.shared_key_env': the environment variable "
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
            f"configuration key 'identity.jwt.jwks_file': cannot load {path}: "
            f"{type(error).__name__}"
        ) from None
    return (lambda token: _key_by_id(key_set, token)), ("RS256", "ES256")


def _algorithms(configured: Any, allowed: tuple[str, ...], default: tuple[str, ...]) -> list[str]:
    """The algorithms accepted: those configured (a list, each one the key source verifies)."""
    if configured is None:
        return list(default)
    if not isinstance(configured, list | tuple) or not configured:
        raise ConfigurationError(
            "configuration key 'identity.jwt.algorithms': must be a non-empty list"
        )
    for algorithm in configured:
        if algorithm not in allowed:
            raise ConfigurationError(
                f"configuration key 'identity.jwt.algorithms': {str(algorithm)[:20]!r} is not "
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
