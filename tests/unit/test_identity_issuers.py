"""Several JWT issuers at once (adapters/identity.py): the token's `iss` picks the one issuer that
verifies it, and a workload issuer's tokens stand for `service:<name>:…` principals only."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from adapters.identity import IssuerAuthenticator, JwtAuthenticator
from core.access import PRINCIPAL_PATTERN
from core.domain.errors import ConfigurationError, Unauthenticated
from core.domain.values import Principal
from core.service_accounts import ACCOUNT_NAME
from entrypoints.config import load_settings
from entrypoints.factories import build_jwt_authenticator

IDP, CLUSTER, CI = "https://idp.test", "https://k8s.test", "https://ci.test"
AUDIENCE = "secret-management"
KEYS = {
    "IDP_KEY": "the-people-idp-shared-key-0123456789abcdef",
    "CLUSTER_KEY": "the-clusters-shared-key-0123456789abcdef",
    "CI_KEY": "the-ci-issuers-shared-key-0123456789abcdef",
}


def token(iss: str, key: str, sub: str, **extra: Any) -> str:
    now = int(time.time())
    payload = {"iss": iss, "aud": AUDIENCE, "sub": sub, "exp": now + 60, "iat": now} | extra
    return jwt.encode(payload, KEYS[key], "HS256")


def issuer(iss: str, key: str, name: str | None = None, **settings: Any) -> JwtAuthenticator:
    base = {"issuer": iss, "audience": AUDIENCE, "shared_key_env": key}
    return JwtAuthenticator(base | settings, KEYS, name=name)


@pytest.fixture
def issuers() -> IssuerAuthenticator:
    return IssuerAuthenticator(
        [
            issuer(IDP, "IDP_KEY"),
            issuer(CLUSTER, "CLUSTER_KEY", "prod"),
            issuer(CI, "CI_KEY", "ci", kind="subject", subject_claim="repository"),
        ]
    )


@pytest.mark.parametrize(
    ("subject", "principal"),
    [
        ("system:serviceaccount:payments:api", "service:prod:payments:api"),
        (
            "system:serviceaccount:kube-system:external-secrets",
            "service:prod:kube-system:external-secrets",
        ),
        ("system:serviceaccount:a:sa.with.dots", "service:prod:a:sa.with.dots"),
    ],
)
def test_a_clusters_service_account_maps_to_a_service_named_after_the_cluster(
    issuers: IssuerAuthenticator, subject: str, principal: str
) -> None:
    found = issuers.authenticate(token(CLUSTER, "CLUSTER_KEY", subject, groups=["admins"]))
    assert found == Principal(principal, "service")  # no groups from a workload issuer
    assert PRINCIPAL_PATTERN.fullmatch(principal)  # bindings accept it
    # Never a service account's principal of this service (`service:<name>[@<scope>]`).
    assert not ACCOUNT_NAME.fullmatch(principal.removeprefix("service:").split("@")[0])


@pytest.mark.parametrize(
    "subject",
    [
        "alice",
        "system:serviceaccount:payments",
        "system:serviceaccount:payments:api:extra",
        "system:serviceaccount:Payments:api",
        "system:serviceaccount:payments:-api",
        "system:node:worker-1",
        "system:serviceaccount:payments:" + "a" * 300,
    ],
)
def test_a_cluster_token_that_is_not_a_service_accounts_is_refused(
    issuers: IssuerAuthenticator, subject: str
) -> None:
    with pytest.raises(Unauthenticated):
        issuers.authenticate(token(CLUSTER, "CLUSTER_KEY", subject))


def test_the_kubernetes_claim_must_agree_with_the_subject(issuers: IssuerAuthenticator) -> None:
    sub = "system:serviceaccount:payments:api"
    same = {"namespace": "payments", "serviceaccount": {"name": "api", "uid": "u"}}
    assert issuers.authenticate(token(CLUSTER, "CLUSTER_KEY", sub, **{"kubernetes.io": same}))
    for other in (
        {"namespace": "kube-system", "serviceaccount": {"name": "api"}},
        {"namespace": "payments", "serviceaccount": {"name": "admin"}},
        {"namespace": "payments"},
        "payments",
    ):
        with pytest.raises(Unauthenticated):
            issuers.authenticate(token(CLUSTER, "CLUSTER_KEY", sub, **{"kubernetes.io": other}))


def test_a_subject_issuer_maps_its_claim_and_the_people_idp_stays_users(
    issuers: IssuerAuthenticator,
) -> None:
    ci = token(CI, "CI_KEY", "repo:acme/app:ref:main", repository="acme/app")
    with pytest.raises(Unauthenticated):  # `acme/app`: no `/` in a principal
        issuers.authenticate(ci)
    ci = token(CI, "CI_KEY", "whatever", repository="acme.app")
    assert issuers.authenticate(ci) == Principal("service:ci:acme.app", "service")
    person = token(IDP, "IDP_KEY", "system:serviceaccount:payments:api", groups=["ops"])
    assert issuers.authenticate(person) == Principal(
        "user:system:serviceaccount:payments:api", "user", ("group:ops",)
    )


def test_iss_picks_the_issuer_and_no_other_issuers_key_is_tried(
    issuers: IssuerAuthenticator,
) -> None:
    sub = "system:serviceaccount:payments:api"
    for iss, key in ((CLUSTER, "IDP_KEY"), (CLUSTER, "CI_KEY"), (IDP, "CLUSTER_KEY")):
        with pytest.raises(Unauthenticated):
            issuers.authenticate(token(iss, key, sub))
    now = int(time.time())
    for bad in ("https://unknown.test", None, 7, ["https://k8s.test"]):
        payload = {"iss": bad, "aud": AUDIENCE, "sub": sub, "exp": now + 60}
        signed = jwt.PyJWS().encode(json.dumps(payload).encode(), KEYS["CLUSTER_KEY"], "HS256")
        with pytest.raises(Unauthenticated):
            issuers.authenticate(signed)
    for garbage in ("a.b.c", "not-a-jwt", "", "eyJhbGciOiJIUzI1NiJ9.W10.x"):
        with pytest.raises(Unauthenticated):
            issuers.authenticate(garbage)


def test_verify_gives_the_expiry_and_the_cache_keeps_it(issuers: IssuerAuthenticator) -> None:
    exp = int(time.time()) + 90
    cluster = token(CLUSTER, "CLUSTER_KEY", "system:serviceaccount:a:b", exp=exp)
    assert issuers.verify(cluster) == (Principal("service:prod:a:b", "service"), float(exp))
    assert issuers.verify(cluster) == (Principal("service:prod:a:b", "service"), float(exp))


def test_two_issuers_with_one_iss_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"identity\.issuers\.prod\.issuer"):
        IssuerAuthenticator([issuer(IDP, "IDP_KEY"), issuer(IDP, "CLUSTER_KEY", "prod")])


@pytest.mark.parametrize(
    ("name", "settings", "key"),
    [
        ("prod", {"user_claim": "email"}, "identity.issuers.prod.user_claim"),
        ("prod", {"groups_claim": "groups"}, "identity.issuers.prod.groups_claim"),
        ("prod", {"kind": "user"}, "identity.issuers.prod.kind"),
        ("prod", {"subject_claim": "email"}, "identity.issuers.prod.subject_claim"),
        ("prod", {"algorithms": ["RS256"]}, "identity.issuers.prod.algorithms"),
        ("prod", {"leeway_seconds": 3600}, "identity.issuers.prod.leeway_seconds"),
        ("prod:x", {}, "identity.issuers.prod:x"),
        ("Prod", {}, "identity.issuers.Prod"),
    ],
)
def test_an_issuers_bad_setting_is_refused_by_its_key(
    name: str, settings: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"configuration key '{key}")):
        issuer(CLUSTER, "CLUSTER_KEY", name, **settings)


def test_issuers_from_a_toml_file_are_built_beside_the_people_idp(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[identity.jwt]
issuer = "{IDP}"
audience = "{AUDIENCE}"
shared_key_env = "IDP_KEY"

[identity.issuers.prod]
issuer = "{CLUSTER}"
audience = "{AUDIENCE}"
shared_key_env = "CLUSTER_KEY"
kind = "kubernetes"
"""
    )
    settings = load_settings({"SECRETS_DATA_DIR": str(tmp_path), **KEYS}, config)
    built = build_jwt_authenticator(settings, KEYS)
    assert built is not None
    sub = "system:serviceaccount:payments:api"
    assert built.authenticate(token(CLUSTER, "CLUSTER_KEY", sub)).id == "service:prod:payments:api"
    assert built.authenticate(token(IDP, "IDP_KEY", "alice")).id == "user:alice"

    config.write_text(
        config.read_text().replace("[identity.issuers.prod]", "[identity.issuers.Prod]")
    )
    with pytest.raises(ConfigurationError, match=r"identity\.issuers"):
        load_settings({"SECRETS_DATA_DIR": str(tmp_path), **KEYS}, config)
