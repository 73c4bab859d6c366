"""Signing in and out: with an API token (or, in development mode, the development root token),
or with the identity provider (`[ui.oidc]`: OpenID Connect authorization code with PKCE, by
Authlib).

A token is authenticated by the API's own authenticator. An ID token is checked by Authlib
(signature, issuer, audience, nonce, expiry) and then mapped to its principal by the API's
`JwtAuthenticator` (`user:<sub>` with its groups, by `[identity.jwt]`'s `user_claim` and
`groups_claim`), which authenticates it again at every request: the session ends when the ID
token expires. A failed sign-in is counted and audited as the API's failed authentications are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, flash, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from adapters.identity import JwtAuthenticator
from core.domain.errors import ConfigurationError, ServiceError, Unauthenticated
from core.domain.values import Principal
from entrypoints.container import Container
from entrypoints.http.context import current_container, request_info
from entrypoints.http.errors import status_of
from entrypoints.ui.web import (
    CREDENTIAL_KINDS,
    bp,
    current_principal,
    page,
    safe_next,
    signed_in,
    start_session,
)

log = logging.getLogger(__name__)
OIDC = "oidc"
TOO_MANY = 429
# What `[identity.jwt]` says of its tokens' claims, applied to the ID tokens alike.
CLAIM_SETTINGS = ("user_claim", "groups_claim", "leeway_seconds")


def oidc_settings() -> dict[str, Any] | None:
    oidc = current_container().settings().ui.get("oidc")
    return dict(oidc) if oidc else None


def client_secret(settings: dict[str, Any], environ: Mapping[str, str]) -> str | None:
    """The client secret, from its variable or file (never from the configuration itself)."""
    if settings.get("client_secret_env"):
        secret = environ.get(settings["client_secret_env"])
        if not secret:
            raise ConfigurationError(
                f"configuration key 'ui.oidc.client_secret_env': the variable "
                f"{settings['client_secret_env']} is not set"
            )
        return str(secret)
    if settings.get("client_secret_file"):
        try:
            return Path(settings["client_secret_file"]).read_text().strip()
        except OSError as error:
            raise ConfigurationError(
                f"configuration key 'ui.oidc.client_secret_file': cannot read it: "
                f"{type(error).__name__}"
            ) from None
    return None


def check_configured(container: Container) -> None:
    """The client secret `[ui.oidc]` names must be there when the server starts."""
    settings = container.settings().ui.get("oidc")
    if settings:
        client_secret(dict(settings), container.environ())


def oidc_client(app: Flask) -> Any:
    """The Authlib client of this app, registered on first use (its metadata fetched then)."""
    oauth: OAuth | None = app.extensions.get("ui_oauth")
    settings = oidc_settings()
    if settings is None:
        return None
    if oauth is None:
        oauth = OAuth(app)
        issuer = str(settings["issuer"]).rstrip("/")
        oauth.register(
            OIDC,
            client_id=settings["client_id"],
            client_secret=client_secret(settings, current_container().environ()),
            server_metadata_url=f"{issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": "openid profile email",
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": "client_secret_post"
                if settings.get("client_secret_env") or settings.get("client_secret_file")
                else "none",
            },
        )
        app.extensions["ui_oauth"] = oauth
    return oauth.create_client(OIDC)


class IdTokens(JwtAuthenticator):
    """The API's JWT authenticator, for the identity provider's ID tokens, whose keys come from
    the provider's JWKS URL. A token without a `kid` header (oidc-provider-mock issues such, and
    `JwtAuthenticator`'s JWKS lookup needs one) is verified with the provider's only key, if it
    has exactly one; with several keys it is refused."""

    def __init__(self, settings: dict[str, Any], environ: Any) -> None:
        super().__init__(settings, environ)
        keys = jwt.PyJWKClient(str(settings["jwks_url"]), cache_keys=True, lifespan=300)
        by_id = self._key_for

        def key_for(token: str) -> Any:
            if jwt.get_unverified_header(token).get("kid") is not None:
                return by_id(token)
            signing = keys.get_signing_keys()
            if len(signing) != 1:
                raise ValueError("a token without kid, and several keys")
            return signing[0].key

        self._key_for = key_for


def id_token_authenticator() -> JwtAuthenticator:
    """The API's JWT authenticator for the identity provider's ID tokens: its issuer and keys
    (from the provider's metadata), the client id as audience, and `[identity.jwt]`'s claims."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cached: JwtAuthenticator | None = app.extensions.get("ui_id_tokens")
    if cached is not None:
        return cached
    client = oidc_client(app)
    if client is None:
        raise Unauthenticated("the identity provider is not configured")
    metadata = client.load_server_metadata()
    claims = current_container().settings().identity.get("jwt") or {}
    settings = {
        "issuer": metadata["issuer"],
        "audience": oidc_settings()["client_id"],  # type: ignore[index]
        "jwks_url": metadata["jwks_uri"],
        **{key: claims[key] for key in CLAIM_SETTINGS if key in claims},
    }
    authenticator = IdTokens(settings, current_container().environ())
    app.extensions["ui_id_tokens"] = authenticator
    return authenticator


def authenticate_id_token(credential: str) -> Principal:
    return id_token_authenticator().authenticate(credential)


CREDENTIAL_KINDS[OIDC] = authenticate_id_token


def refuse(error: Unauthenticated) -> None:
    """Count and audit a failed sign-in as the API does a failed authentication; raises."""
    failures = current_container().failed_authentications()
    failures.refuse(error, request_info(), request.path[:255])


def signin_page(status: int = 200, message: str | None = None) -> tuple[str, int]:
    settings = current_container().settings()
    return page(
        "signin.html",
        status,
        message=message,
        oidc=oidc_settings() is not None,
        development=not settings.production and bool(settings.dev_root_token),
    )


@bp.get("/signin")
def signin() -> Any:
    if current_principal() is not None:
        return redirect(url_for("ui.home"))
    return signin_page()


@bp.post("/signin")
def signin_with_token() -> Any:
    token = request.form.get("token", "").strip()
    try:
        if not token:
            raise Unauthenticated("a token is required")
        current_container().authenticator().authenticate(token)
    except Unauthenticated as error:
        try:
            refuse(error)
        except ServiceError as refused:
            if status_of(refused) == TOO_MANY:
                return signin_page(TOO_MANY, "Too many failed sign-ins: wait a minute.")
        return signin_page(401, "That token was not accepted.")
    following = session.get("next")
    start_session("token", token)
    return redirect(safe_next(following))


@bp.get("/signin/oidc")
def signin_with_oidc() -> Any:
    """Off to the identity provider (a link, not a form: CSP's form-action would stop the
    redirect to another origin)."""
    client = oidc_client(current_app._get_current_object())  # type: ignore[attr-defined]
    if client is None:
        return signin_page(404, "Signing in with an identity provider is not configured.")
    return client.authorize_redirect(url_for("ui.oidc_callback", _external=True))


@bp.get("/signin/oidc/callback")
def oidc_callback() -> Any:
    client = oidc_client(current_app._get_current_object())  # type: ignore[attr-defined]
    if client is None:
        return signin_page(404, "Signing in with an identity provider is not configured.")
    try:
        answer = client.authorize_access_token()
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise Unauthenticated("the identity provider sent no ID token")
        authenticate_id_token(id_token)
    except (OAuthError, Unauthenticated, ValueError, KeyError) as error:
        # The kind of failure only: an OAuth error's text is the provider's, never a token.
        log.warning("identity provider sign-in refused: %s", type(error).__name__)
        log.debug("identity provider sign-in refused: %s", str(error)[:300])
        try:
            refuse(Unauthenticated(type(error).__name__))
        except ServiceError:
            pass
        return signin_page(401, "The identity provider's sign-in did not succeed.")
    following = session.get("next")
    start_session(OIDC, id_token)
    return redirect(safe_next(following))


@bp.post("/signout")
def signout() -> BaseResponse:
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("ui.signin"))


@bp.get("/")
@signed_in
def home() -> BaseResponse:
    return redirect(url_for("ui.scopes"))
