"""Kubernetes workloads authenticate with their projected service-account tokens, beside the
people's identity provider (docs/kubernetes.md): each cluster is an issuer of its own
(`[identity.issuers.<name>]`), whose tokens stand for `service:<name>:<namespace>:<account>`.
And External Secrets Operator's Vault provider, replayed request by request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from werkzeug.serving import make_server

from entrypoints.config import Settings
from tests.e2e.conftest import ISSUER, JWT_KEY, ApiClient, user_token

PROD = "https://kubernetes.default.svc.cluster.local"  # a cluster's usual `iss`
STAGING = "https://staging.k8s.example.com"
AUDIENCE = "secret-management"
PRINCIPAL = "service:prod:payments:api"
VALUE = "pw-k8s-canary-7e1d"
SCOPE = {"type": "project", "id": "p-42"}
VAULT_PATH = "project/p-42/production/DB"
# What Vault's Go client (External Secrets Operator's) sends with every request.
VAULT_CLIENT = {"X-Vault-Request": "true", "User-Agent": "Go-http-client/1.1"}


class Cluster:
    """A Kubernetes API server's service-account token issuer: an RSA key and its JWKS."""

    def __init__(self, issuer: str, directory: Path, kid: str) -> None:
        self.issuer, self.kid = issuer, kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = directory / f"{kid}.jwks.json"
        self.jwks.write_text(json.dumps({"keys": [public | {"kid": kid, "use": "sig"}]}))

    def token(
        self,
        namespace: str = "payments",
        account: str = "api",
        audience: str | list[str] = AUDIENCE,
        **claims: Any,
    ) -> str:
        """A projected token as the kubelet mounts it (`serviceAccountToken` volume)."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": audience if isinstance(audience, list) else [audience],
            "sub": f"system:serviceaccount:{namespace}:{account}",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": f"{account}-7d9f-x2x", "uid": "2d7a…"},
                "serviceaccount": {"name": account, "uid": "5e3c…"},
            },
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture
def prod(tmp_path: Path) -> Cluster:
    return Cluster(PROD, tmp_path, "prod-key-1")


@pytest.fixture
def staging(tmp_path: Path) -> Cluster:
    return Cluster(STAGING, tmp_path, "staging-key-1")


@pytest.fixture
def settings(settings: Settings, prod: Cluster, staging: Cluster) -> Settings:
    """The people's identity provider of conftest, and two clusters."""
    issuers = {
        "prod": {"issuer": PROD, "audience": AUDIENCE, "jwks_file": str(prod.jwks)},
        "staging": {
            "issuer": STAGING,
            "audience": AUDIENCE,
            "jwks_file": str(staging.jwks),
            "kind": "kubernetes",
        },
    }
    return replace(settings, identity={**settings.identity, "issuers": issuers})


@pytest.fixture
def bound(api: ApiClient) -> ApiClient:
    """A secret in project p-42, and the prod cluster's payments/api bound as its reader."""
    api.create(name="DB", value=VALUE, scope=SCOPE, environment="production")
    body = {"principal": PRINCIPAL, "role": "reader", "scope": SCOPE}
    response = api.post("/role-bindings", json=body)
    assert response.status_code == 201, response.get_json()
    return api


def value_as(app: Flask, token: str) -> Any:
    return ApiClient(app.test_client(), token=token).get(
        "/scopes/project/p-42/secrets/DB/value", query_string={"environment": "production"}
    )


def whoami(app: Flask, token: str) -> Any:
    return ApiClient(app.test_client(), token=token).get("/auth/whoami")


def test_a_service_account_token_reads_what_its_principal_is_bound_to(
    app: Flask, bound: ApiClient, prod: Cluster
) -> None:
    token = prod.token()
    me = whoami(app, token).get_json()
    assert (me["principal"], me["kind"], me["groups"]) == (PRINCIPAL, "service", [])
    read = value_as(app, token)
    assert read.status_code == 200, read.get_json()
    assert read.get_json()["value"] == VALUE
    assert value_as(app, token).get_json()["value"] == VALUE  # the verified token, cached

    other = value_as(app, prod.token(account="batch"))  # another account of the namespace
    assert other.status_code in (403, 404)
    assert VALUE not in other.get_data(as_text=True)


def test_no_token_of_another_issuer_becomes_the_clusters_principal(
    app: Flask, bound: ApiClient, staging: Cluster, prod: Cluster
) -> None:
    # The people's IdP vouching for the same subject stands for a user, not the service.
    person = user_token("system:serviceaccount:payments:api", groups=("service:prod:payments",))
    assert whoami(app, person).get_json()["principal"] == "user:system:serviceaccount:payments:api"
    assert value_as(app, person).status_code in (403, 404)
    # Another cluster's payments/api is another principal: the issuer's name is in it.
    token = staging.token()
    assert whoami(app, token).get_json()["principal"] == "service:staging:payments:api"
    assert value_as(app, token).status_code in (403, 404)
    # The cluster's `iss` on a token signed with the people's IdP key (HS256), or with the
    # other cluster's key: only the prod cluster's own keys and algorithms verify its tokens.
    now = int(time.time())
    claims = {"iss": PROD, "aud": AUDIENCE, "sub": "system:serviceaccount:payments:api"}
    forged_hs = jwt.encode(claims | {"exp": now + 300}, JWT_KEY, algorithm="HS256")
    assert value_as(app, forged_hs).status_code == 401
    forged_kid = jwt.encode(
        claims | {"exp": now + 300}, staging.key, algorithm="RS256", headers={"kid": prod.kid}
    )
    assert value_as(app, forged_kid).status_code == 401
    # A cluster's token claiming the people's IdP as its issuer: the IdP verifies HS256 only.
    as_idp = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300},
        prod.key,
        algorithm="RS256",
        headers={"kid": prod.kid},
    )
    assert whoami(app, as_idp).status_code == 401


@pytest.mark.parametrize(
    "change",
    [
        {"audience": "vault"},  # ESO's default audience: meant for another service
        {"exp": int(time.time()) - 3600},
        {"iss": "https://unknown-cluster.example.com"},
        {"sub": "system:serviceaccount:payments"},  # not a service account's subject
        {"sub": "alice"},
        {"kubernetes.io": {"namespace": "kube-system", "serviceaccount": {"name": "api"}}},
    ],
)
def test_a_token_not_for_us_is_refused_as_any_bad_token(
    app: Flask, bound: ApiClient, prod: Cluster, change: dict[str, Any]
) -> None:
    refused = value_as(app, prod.token(**change))
    assert refused.status_code == 401
    assert refused.get_json()["error"]["message"] == "invalid or expired credentials"


def test_external_secrets_operators_vault_provider_reads_a_key(
    app: Flask, bound: ApiClient, prod: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The requests ESO's Vault provider sends for a `SecretStore` with `auth.jwt` (or
    `auth.kubernetes`) and an `ExternalSecret` with `remoteRef: {key: …, property: value}`:
    `PUT /v1/auth/<path>/login` `{"role", "jwt"}` (the Go client's `Logical().Write`), the
    answer's `auth.client_token` set as the client's token, then
    `GET /v1/secret/data/<key>` (`Logical().ReadWithData`), whose `data.data` it parses."""
    client = app.test_client()
    jwt_token = prod.token()
    for auth_path in ("jwt", "kubernetes"):
        login = client.put(
            f"/v1/auth/{auth_path}/login",
            data=json.dumps({"role": "payments", "jwt": jwt_token}),
            headers=VAULT_CLIENT,
        )
        assert login.status_code == 200, login.get_json()
        auth = login.get_json()["auth"]
        assert auth["client_token"] == jwt_token  # the JWT itself: nothing minted
        assert 0 < auth["lease_duration"] <= 600 and auth["renewable"] is False
        assert auth["metadata"]["principal"] == PRINCIPAL

        headers = {**VAULT_CLIENT, "X-Vault-Token": auth["client_token"]}
        self_ = client.get("/v1/auth/token/lookup-self", headers=headers)
        assert self_.get_json()["data"]["display_name"] == PRINCIPAL
        read = client.get(f"/v1/secret/data/{VAULT_PATH}", headers=headers)
        assert read.status_code == 200, read.get_json()
        body = read.get_json()
        assert body["data"]["data"] == {"value": VALUE}  # `property: value` picks it
        assert body["data"]["metadata"]["version"] == 1

    # POST (Vault's CLI and curl) logs in as PUT does.
    posted = client.post("/v1/auth/jwt/login", json={"jwt": jwt_token})
    assert posted.status_code == 200
    assert caplog.records  # the access log saw every request, and never the token
    assert not any(jwt_token in record.getMessage() for record in caplog.records)
    signature = jwt_token.rsplit(".", 1)[1]
    assert signature not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        {"role": "payments", "jwt": "not-a-jwt"},
        {"role": "payments", "jwt": "e2e-root-token-0123456789"},  # the development root
        {"role": "payments", "jwt": "a.b.c"},
    ],
)
def test_a_login_with_a_bad_jwt_is_vaults_permission_denied(
    app: Flask, bound: ApiClient, body: dict[str, str]
) -> None:
    login = app.test_client().put("/v1/auth/jwt/login", data=json.dumps(body), headers=VAULT_CLIENT)
    assert login.status_code == 403
    assert login.get_json() == {"errors": ["permission denied"]}


def test_a_login_without_a_jwt_or_on_another_auth_path_is_refused(
    app: Flask, bound: ApiClient, prod: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    missing = client.put("/v1/auth/jwt/login", json={"role": "payments"}, headers=VAULT_CLIENT)
    assert missing.status_code == 400
    assert missing.get_json() == {"errors": ["missing jwt"]}
    other = client.put("/v1/auth/approle/login", json={"jwt": prod.token()}, headers=VAULT_CLIENT)
    assert other.status_code == 404
    expired = prod.token(exp=int(time.time()) - 3600)
    refused = client.put("/v1/auth/kubernetes/login", json={"jwt": expired})
    assert refused.status_code == 403
    assert expired.rsplit(".", 1)[1] not in caplog.text  # never the token
    events = bound.get("/audit/events", query_string={"limit": "1000"})
    refusals = [
        event
        for event in events.get_json()["items"]
        if event["action"] == "auth.authenticate" and event["outcome"] != "success"
    ]
    assert [event["resource"] for event in refusals] == ["/v1/auth/kubernetes/login"]
    assert expired.rsplit(".", 1)[1] not in events.get_data(as_text=True)


@pytest.fixture
def server(app: Flask, bound: ApiClient) -> Iterator[str]:
    """The app behind a threaded HTTP server on a free loopback port."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=10)


def test_hvac_logs_in_with_the_jwt_and_kubernetes_methods_and_reads(
    server: str, prod: Cluster, staging: Cluster
) -> None:
    """A Vault client nobody here wrote: hvac's `auth.jwt.jwt_login` and
    `auth.kubernetes.login` take the client token from the answer and read with it."""
    client = hvac.Client(url=server)
    client.auth.jwt.jwt_login(role="payments", jwt=prod.token(), path="jwt")
    assert client.is_authenticated()
    read = client.secrets.kv.v2.read_secret_version(
        path=VAULT_PATH, mount_point="secret", raise_on_deleted_version=True
    )
    assert read["data"]["data"] == {"value": VALUE}

    other = hvac.Client(url=server)
    other.auth.kubernetes.login(role="payments", jwt=staging.token())
    with pytest.raises(hvac.exceptions.InvalidPath):  # staging's payments/api: not bound
        other.secrets.kv.v2.read_secret_version(
            path=VAULT_PATH, mount_point="secret", raise_on_deleted_version=True
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=server).auth.jwt.jwt_login(role="x", jwt=prod.token(audience="vault"))
