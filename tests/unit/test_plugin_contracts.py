"""Every built-in plugin runs the contract of its kind from `plugins.testing`, as a third
party's would: formats, secret types, rotators, key providers and audit sinks (storage backends
run `BackendContract` in their own modules). A kind's built-ins are found through the plugin
manager, so a new built-in without a contract case fails `test_every_built_in_has_a_case`."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from core.domain.values import SecretValue
from plugins.manager import (
    audit_sink_plugins,
    build_plugin_manager,
    format_plugins,
    key_provider_plugins,
    rotator_plugins,
    secret_type_plugins,
)
from plugins.testing import (
    AuditSinkContract,
    FormatContract,
    KeyProviderContract,
    RotatorContract,
    SecretTypeContract,
)
from plugins.testing.audit_sinks import Delivered
from ports.audit import AuditSink
from ports.formats import SecretFormat
from ports.rotation import Rotator, RotatorContext
from ports.security import KeyProvider, KeyProviderContext
from ports.types import SecretType
from ports.webhooks import WebhookTarget
from tests.support.webhooks import webhook_receiver

MANAGER = build_plugin_manager()
FORMATS = format_plugins(MANAGER)
TYPES = secret_type_plugins(MANAGER)
ROTATORS = rotator_plugins(MANAGER)
KEY_PROVIDERS = key_provider_plugins(MANAGER)
AUDIT_SINKS = audit_sink_plugins(MANAGER)


# -- generated key material (none is a real credential) ---------------------------------------


def pem(key: Any) -> str:
    encoded: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return encoded.decode()


@cache
def certificate_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "contract.internal")])
    not_after = datetime(2031, 1, 2, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x5EC2E7)
        .not_valid_before(not_after - timedelta(days=365))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), pem(key)


@cache
def ssh_private_key() -> str:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


@cache
def gcp_key_file() -> dict[str, str]:
    return {
        "type": "service_account",
        "project_id": "contract-project-42",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "client_email": "ci@contract-project-42.iam.gserviceaccount.com",
        "client_id": "112233445566778899",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


AWS = {
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
AZURE = {
    "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
    "client_secret": "generated~client~secret~0001",
}


def type_cases() -> dict[str, tuple[Any, Any]]:
    """Per built-in type: a value it accepts and one it refuses (None: it accepts anything)."""
    certificate, key = certificate_pair()
    return {
        "generic": ("anything at all", None),
        "api_key": ("sk-test-0123456789abcdef", "two words"),
        "oauth_token": (
            {
                "access_token": "at-0001",
                "refresh_token": "rt-0001",
                "token_url": "https://idp.example.com/token",
            },
            {"access_token": "at-0001", "refresh_token": "rt-0001"},
        ),
        "username_password": (
            {"username": "app", "password": "pw-0001"},
            {"username": "app", "password": "pw-0001", "pasword": "typo-0001"},
        ),
        "connection_string": (
            "postgresql://app:pw-0001@db.internal:5432/payments",
            "postgresql://app:pw-0001@db.internal:99999/payments",
        ),
        "certificate": (
            {"certificate": certificate, "private_key": key},
            {
                "certificate": certificate,
                "private_key": pem(ec.generate_private_key(ec.SECP256R1())),
            },
        ),
        "ssh_key": (ssh_private_key(), "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n"),
        "aws_credentials": (AWS, {**AWS, "access_key_id": "ASIAIOSFODNN7EXAMPLE"}),
        "azure_service_principal": (AZURE, {**AZURE, "tenant_id": "not-a-uuid-0001"}),
        "gcp_service_account": (
            gcp_key_file(),
            {k: v for k, v in gcp_key_file().items() if k != "client_email"},
        ),
    }


def as_value(raw: Any) -> SecretValue:
    return SecretValue.from_text(raw if isinstance(raw, str) else json.dumps(raw))


ROTATOR_SETTINGS: dict[str, dict[str, Any]] = {
    "random": {"length": 24, "alphabet": "hex"},
    "webhook": {"target": "contract", "length": 40},
}


def test_every_built_in_has_a_case() -> None:
    assert set(TYPES) == set(type_cases())
    assert set(ROTATORS) == set(ROTATOR_SETTINGS)
    assert set(KEY_PROVIDERS) == {"env", "file", "auto"}
    assert set(AUDIT_SINKS) == {"stdout", "file"}
    assert FORMATS, "no format is registered"


class TestBuiltInFormats(FormatContract):
    @pytest.fixture(params=sorted(FORMATS))
    def secret_format(self, request: pytest.FixtureRequest) -> SecretFormat:
        return FORMATS[request.param]


class TestBuiltInSecretTypes(SecretTypeContract):
    @pytest.fixture(params=sorted(TYPES))
    def type_name(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def secret_type(self, type_name: str) -> SecretType:
        return TYPES[type_name]

    @pytest.fixture
    def valid_value(self, type_name: str) -> SecretValue:
        return as_value(type_cases()[type_name][0])

    @pytest.fixture
    def invalid_value(self, type_name: str) -> SecretValue | None:
        invalid = type_cases()[type_name][1]
        return None if invalid is None else as_value(invalid)


@pytest.fixture(scope="module")
def receiver_url() -> Iterator[str]:
    """A rotation target that accepts every value, for the webhook rotator."""
    with webhook_receiver() as receiver:
        yield receiver.url


class TestBuiltInRotators(RotatorContract):
    @pytest.fixture(params=sorted(ROTATORS))
    def rotator_name(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def rotator(self, rotator_name: str, receiver_url: str) -> Rotator:
        target = WebhookTarget("contract", receiver_url, os.urandom(32))
        context = RotatorContext(environ={}, webhooks={"contract": target})
        return ROTATORS[rotator_name].factory(context)

    @pytest.fixture
    def settings(self, rotator_name: str) -> Mapping[str, Any]:
        return ROTATOR_SETTINGS[rotator_name]


class TestBuiltInKeyProviders(KeyProviderContract):
    @pytest.fixture(params=["env", "file", "auto-env", "auto-file"])
    def provider(self, request: pytest.FixtureRequest, tmp_path: Path) -> KeyProvider:
        plugin, _, source = str(request.param).partition("-")
        environ = {}
        if "env" in (plugin, source):
            environ["SECRETS_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
        context = KeyProviderContext(str(tmp_path / "data"), environ, production=False)
        settings = {"path": str(tmp_path / "keys.json")} if plugin == "file" else {}
        return KEY_PROVIDERS[plugin].factory(settings, context)


class TestBuiltInAuditSinks(AuditSinkContract):
    @pytest.fixture(params=sorted(AUDIT_SINKS))
    def sink_name(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def stdout(self, monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
        stream = io.StringIO()
        monkeypatch.setattr(sys, "stdout", stream)
        return stream

    @pytest.fixture
    def sink(self, sink_name: str, tmp_path: Path, stdout: io.StringIO) -> Iterator[AuditSink]:
        settings = {"path": str(tmp_path / "audit.jsonl")} if sink_name == "file" else {}
        sink = AUDIT_SINKS[sink_name].factory(settings)
        assert sink.name == sink_name
        yield sink
        sink.close()

    @pytest.fixture
    def delivered(self, sink_name: str, tmp_path: Path, stdout: io.StringIO) -> Delivered:
        def read() -> list[dict[str, Any]]:
            if sink_name == "file":
                text = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
            else:
                text = stdout.getvalue()
            return [json.loads(line) for line in text.splitlines()]

        return read
