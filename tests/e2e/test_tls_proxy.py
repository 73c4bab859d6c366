"""TLS served directly by `secretctl serve` (`[tls]`, a self-signed certificate made here), and
`X-Forwarded-*` believed from the configured proxies (`trusted_proxies`) for the audit trail's
source address and the failed-authentication limit. What a client that is no proxy gains by
sending the headers itself is in `test_attacks_forwarded_headers.py`."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from flask import Flask, request

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import ApiClient
from tests.e2e.test_serve import BIN, free_port, running_server, serve_env
from tests.integration.backends.azure_fake import self_signed_certificate

VALUE = "tls-test-value-0c4d7e91"
PROXY = "10.20.30.40"
CLIENT = "203.0.113.7"


# -- TLS -------------------------------------------------------------------------------------


def self_signed(directory: Path) -> Path:
    """A certificate for 127.0.0.1 that is its own authority, with `key.pem` beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    certificate, key = self_signed_certificate(directory)
    key.rename(directory / "key.pem")
    return certificate


def tls_env(tmp_path: Path, certificate: Path, **settings: str) -> dict[str, str]:
    return serve_env(
        tmp_path / "data",
        free_port(),
        SECRETS_TLS__CERT_FILE=str(certificate),
        SECRETS_TLS__KEY_FILE=str(certificate.with_name("key.pem")),
        SECRETS_WORKERS="1",
        **settings,
    )


def test_serve_answers_https_with_the_configured_certificate(tmp_path: Path) -> None:
    certificate = self_signed(tmp_path / "tls")
    env = tls_env(tmp_path, certificate)
    with running_server(env, tmp_path) as server:
        assert server.addr.startswith("https://127.0.0.1:")
        auth = {"Authorization": f"Bearer {server.token}"}
        body = {"name": "OVER_TLS", "value": VALUE, "scope": {"type": "global"}}
        created = requests.post(
            f"{server.addr}/api/v1/secrets", json=body, headers=auth, verify=certificate, timeout=10
        )
        assert created.status_code == 201, created.text
        read = requests.get(
            f"{server.addr}/api/v1/secrets/{created.json()['id']}/value",
            headers=auth,
            verify=certificate,
            timeout=10,
        )
        assert read.json()["value"] == VALUE
        with pytest.raises(requests.exceptions.SSLError):  # not trusted without the certificate
            requests.get(f"{server.addr}/healthz", timeout=10)
        plain = server.addr.replace("https://", "http://")
        with pytest.raises(requests.ConnectionError):  # no plain HTTP on the port
            requests.get(f"{plain}/healthz", timeout=10)
        port = int(server.addr.rsplit(":", 1)[1])
        assert negotiated(port, certificate, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
        assert negotiated(port, certificate, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"

        client = server.cli("get", "OVER_TLS", "--scope", "global")
        assert client.returncode != 0  # the client trusts the system's authorities only…
        trusted = subprocess.run(
            [str(BIN / "secretctl"), "get", "OVER_TLS", "--scope", "global"],
            env={**server.env(), "REQUESTS_CA_BUNDLE": str(certificate)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert trusted.returncode == 0, trusted.stderr  # …or the bundle it is given
        assert trusted.stdout == VALUE + "\n"


def negotiated(port: int, certificate: Path, highest: ssl.TLSVersion) -> str | None:
    context = ssl.create_default_context(cafile=str(certificate))
    context.maximum_version = highest
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as connection,
        context.wrap_socket(connection, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


def test_tls_1_3_only_refuses_a_1_2_client(tmp_path: Path) -> None:
    certificate = self_signed(tmp_path / "tls")
    env = tls_env(tmp_path, certificate, SECRETS_TLS__MIN_VERSION="1.3")
    with running_server(env, tmp_path) as server:
        port = int(server.addr.rsplit(":", 1)[1])
        assert negotiated(port, certificate, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            negotiated(port, certificate, ssl.TLSVersion.TLSv1_2)


@pytest.mark.parametrize("fault", ["missing", "another key"])
def test_a_certificate_that_cannot_be_used_stops_the_start(tmp_path: Path, fault: str) -> None:
    certificate = self_signed(tmp_path / "tls")
    if fault == "missing":
        certificate = tmp_path / "nowhere" / "cert.pem"
    else:
        self_signed(tmp_path / "other")
        (tmp_path / "other" / "key.pem").replace(certificate.with_name("key.pem"))
    env = tls_env(tmp_path, certificate)
    if fault == "missing":
        env["SECRETS_TLS__KEY_FILE"] = str(tmp_path / "tls" / "key.pem")
    started = subprocess.run(
        [str(BIN / "secretctl"), "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "configuration key 'tls'" in started.stderr, started.stderr
    assert "Traceback" not in started.stderr


# -- trusted proxies -------------------------------------------------------------------------


@pytest.fixture
def behind_proxy(settings: Settings) -> Iterator[Flask]:
    app = create_app(
        replace(settings, trusted_proxies=("10.0.0.0/8",), auth={"failures_per_minute": 2})
    )
    yield app
    app.extensions["container"].shutdown_resources()


def refused_sources(app: Flask) -> list[str | None]:
    """The source address of each failed authentication on record, oldest first."""
    api = ApiClient(app.test_client())
    page = api.get("/audit/events?action=auth.authenticate").get_json()
    return [event["source_ip"] for event in reversed(page["items"])]


def from_proxy(app: Flask, path: str, forwarded_for: str, peer: str = PROXY) -> int:
    answer = app.test_client().get(
        f"/api/v1{path}",
        headers={"X-Forwarded-For": forwarded_for, "Authorization": "Bearer not-a-token"},
        environ_base={"REMOTE_ADDR": peer},
    )
    return answer.status_code


def test_the_client_a_trusted_proxy_saw_is_the_source(behind_proxy: Flask) -> None:
    secret = ApiClient(behind_proxy.test_client()).create(
        name="BEHIND_PROXY", value=VALUE, scope={"type": "global"}
    )
    assert from_proxy(behind_proxy, "/secrets", CLIENT) == 401  # Flask
    assert from_proxy(behind_proxy, f"/secrets/{secret['id']}/value", "198.51.100.1") == 401  # hot
    assert refused_sources(behind_proxy) == [CLIENT, "198.51.100.1"]


def test_each_client_behind_a_trusted_proxy_has_its_own_limit(behind_proxy: Flask) -> None:
    assert [from_proxy(behind_proxy, "/secrets", CLIENT) for _ in range(3)] == [401, 401, 429]
    assert from_proxy(behind_proxy, "/secrets", "198.51.100.2") == 401  # another client


def test_the_scheme_a_trusted_proxy_saw_is_the_requests(behind_proxy: Flask) -> None:
    seen: list[str] = []

    def note_scheme() -> None:
        seen.append(request.scheme)

    behind_proxy.before_request_funcs.setdefault("health", []).append(note_scheme)
    for peer in (PROXY, "192.0.2.9"):
        behind_proxy.test_client().get(
            "/healthz",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": CLIENT},
            environ_base={"REMOTE_ADDR": peer},
        )
    assert seen == ["https", "http"]
