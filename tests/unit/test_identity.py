"""Identity adapters: JWTs (shared key and JWKS), the dev root token, routing by token shape."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from adapters.expiring import ExpiringCache
from adapters.identity import BearerAuthenticator, DevRootTokenAuthenticator, JwtAuthenticator
from core.domain.errors import ConfigurationError, Unauthenticated
from core.domain.values import Principal
from entrypoints.config import load_settings

ISSUER, AUDIENCE = "https://idp.test", "secret-management"
SHARED = "a-shared-hs256-key-of-more-than-32-chars"


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 60, "iat": now} | extra


def jwks_file(tmp_path: Path, *keys: tuple[str, Any]) -> Path:
    entries = []
    for kid, private in keys:
        algorithm = (
            jwt.algorithms.RSAAlgorithm
            if isinstance(private, rsa.RSAPrivateKey)
            else (jwt.algorithms.ECAlgorithm)
        )
        entry = json.loads(algorithm.to_jwk(private.public_key()))
        entries.append(entry | {"kid": kid})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": entries}))
    return path


def test_shared_key_tokens_map_subject_and_groups() -> None:
    authenticator = JwtAuthenticator(
        {"issuer": ISSUER, "audience": AUDIENCE, "shared_key_env": "IDP_KEY"}, {"IDP_KEY": SHARED}
    )
    token = jwt.encode(claims(groups=["dba", "bad group!", 7]), SHARED, "HS256")
    assert authenticator.authenticate(token) == Principal("user:alice", "user", ("group:dba",))


def test_jwks_file_with_rsa_and_ec_keys(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    path = jwks_file(tmp_path, ("r1", rsa_key), ("e1", ec_key))
    authenticator = JwtAuthenticator(
        {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(path), "user_claim": "email"},
        {},
    )
    rs256 = jwt.encode(claims(email="a@x.io"), rsa_key, "RS256", headers={"kid": "r1"})
    es256 = jwt.encode(claims(email="b@x.io"), ec_key, "ES256", headers={"kid": "e1"})
    assert authenticator.authenticate(rs256).id == "user:a@x.io"
    assert authenticator.authenticate(es256).id == "user:b@x.io"
    unknown_kid = jwt.encode(claims(email="c@x.io"), rsa_key, "RS256", headers={"kid": "zz"})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims(email="d@x.io"), other_key, "RS256", headers={"kid": "r1"})
    hs256_with_public_key = jwt.encode(claims(), SHARED, "HS256", headers={"kid": "r1"})
    for token in (unknown_kid, forged, hs256_with_public_key):
        with pytest.raises(Unauthenticated) as caught:
            authenticator.authenticate(token)
        assert caught.value.message == "invalid or expired credentials"


@pytest.mark.parametrize(
    ("settings", "environ"),
    [
        ({"issuer": ISSUER, "audience": AUDIENCE}, {}),
        ({"issuer": ISSUER, "audience": AUDIENCE, "shared_key_env": "K"}, {"K": "short"}),
        ({"audience": AUDIENCE, "shared_key_env": "K"}, {"K": SHARED}),
        ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/nonexistent.json"}, {}),
        ({"issuer": ISSUER, "audience": AUDIENCE, "shared_key_env": "K", "colour": "x"}, {}),
    ],
)
def test_bad_jwt_configuration_is_refused_without_echoing_keys(settings, environ) -> None:
    with pytest.raises(ConfigurationError) as caught:
        JwtAuthenticator(settings, environ)
    assert "identity.jwt" in caught.value.message
    assert "short" not in caught.value.message


def test_tokens_are_routed_by_shape() -> None:
    seen: list[str] = []

    def api_tokens(token: str) -> Principal:
        seen.append(token)
        return Principal("service:ci", "service")

    jwt_authenticator = JwtAuthenticator(
        {"issuer": ISSUER, "audience": AUDIENCE, "shared_key_env": "K"}, {"K": SHARED}
    )
    bearer = BearerAuthenticator(
        api_tokens, jwt_authenticator, DevRootTokenAuthenticator("dev-root-token-value")
    )
    assert bearer.authenticate("smt_abc").id == "service:ci" and seen == ["smt_abc"]
    assert bearer.authenticate(jwt.encode(claims(), SHARED, "HS256")).id == "user:alice"
    assert bearer.authenticate("dev-root-token-value").is_root
    with pytest.raises(Unauthenticated):
        bearer.authenticate("dev-root-token-valuX")
    without_root = BearerAuthenticator(api_tokens, None, None)
    with pytest.raises(Unauthenticated):
        without_root.authenticate("dev-root-token-value")


def test_dev_root_token_is_refused_in_production() -> None:
    with pytest.raises(ConfigurationError, match="refused in production"):
        load_settings({"SECRETS_MODE": "production", "SECRETS_DEV_ROOT_TOKEN": "x" * 20})
    assert (
        repr(DevRootTokenAuthenticator("x" * 20)) == "DevRootTokenAuthenticator(<token redacted>)"
    )


# -- tokens verified once, their expiry checked at every use --------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def shared_key_authenticator(clock: Clock, leeway: int = 0) -> JwtAuthenticator:
    settings = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "shared_key_env": "K",
        "leeway_seconds": leeway,
    }
    return JwtAuthenticator(settings, {"K": SHARED}, now=clock)


def test_a_token_is_verified_once_then_known(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    authenticator = shared_key_authenticator(clock)
    token = jwt.encode(claims(groups=["dba"]), SHARED, "HS256")
    decoded: list[str] = []
    real_decode = jwt.decode
    monkeypatch.setattr(
        jwt, "decode", lambda t, *a, **k: decoded.append(t) or real_decode(t, *a, **k)
    )

    first = authenticator.authenticate(token)
    again = authenticator.authenticate(token)

    assert first == again == Principal("user:alice", "user", ("group:dba",))
    assert decoded == [token]  # the second use did not verify it again
    assert token not in repr(authenticator) and token not in repr(authenticator._verified)


def test_a_known_token_is_refused_once_it_expires() -> None:
    clock = Clock()
    authenticator = shared_key_authenticator(clock)
    token = jwt.encode(claims(exp=int(clock.now) + 60), SHARED, "HS256")
    assert authenticator.authenticate(token).id == "user:alice"

    clock.now += 59
    assert authenticator.authenticate(token).id == "user:alice"
    clock.now += 1  # exp reached: PyJWT refuses from this second on, and so does the cache
    with pytest.raises(Unauthenticated) as caught:
        authenticator.authenticate(token)
    assert caught.value.message == "invalid or expired credentials"
    assert len(authenticator._verified) == 0


def test_a_known_token_keeps_the_configured_leeway() -> None:
    clock = Clock()
    authenticator = shared_key_authenticator(clock, leeway=30)
    token = jwt.encode(claims(exp=int(clock.now) + 10), SHARED, "HS256")
    authenticator.authenticate(token)

    clock.now += 39
    assert authenticator.authenticate(token).id == "user:alice"
    clock.now += 1
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(token)


def test_a_refused_token_is_not_remembered() -> None:
    clock = Clock()
    authenticator = shared_key_authenticator(clock)
    forged = jwt.encode(claims(), "another-key-of-more-than-32-characters", "HS256")
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            authenticator.authenticate(forged)
    assert len(authenticator._verified) == 0


def test_verified_tokens_are_bounded_and_age_out() -> None:
    kept: ExpiringCache[str, str] = ExpiringCache(2, 60.0)
    for token in ("t1", "t2", "t3"):
        kept.put(token, f"principal of {token}")
    assert kept.get("t1") is None  # the oldest went first
    assert kept.get("t3") == "principal of t3" and len(kept) == 2
    assert "t3" not in repr(kept) and "principal" not in repr(kept)
    expired: ExpiringCache[str, str] = ExpiringCache(2, 0.0)
    expired.put("t1", "principal of t1")
    assert expired.get("t1") is None and len(expired) == 0
