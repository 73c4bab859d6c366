"""Identity adapters: who a bearer token stands for."""

from __future__ import annotations

import hmac

from core.errors import Unauthenticated
from ports.security import Authenticator
from ports.values import Principal

ROOT = Principal(id="root", kind="root", is_root=True)


class DevRootTokenAuthenticator(Authenticator):
    """The development root token (as Vault's `-dev-root-token-id`), compared in constant time."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    def authenticate(self, token: str) -> Principal:
        if self._token is not None and hmac.compare_digest(token.encode(), self._token):
            return ROOT
        raise Unauthenticated("missing or invalid token")

    def __repr__(self) -> str:
        return "DevRootTokenAuthenticator(<token redacted>)"
