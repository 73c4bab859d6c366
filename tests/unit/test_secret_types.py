"""The built-in secret types: for each, a value that passes and one that fails, what passing
values reveal as metadata (never a secret part), and how values render as environment variables.
Keys and certificates are generated here; none is a real credential."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from core.domain.values import SecretValue
from plugins.manager import build_plugin_manager, secret_type_plugins
from ports.types import SecretType, TypeCheck

NOT_AFTER = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
PASSPHRASE = b"generated-test-passphrase"


@pytest.fixture(scope="module")
def types() -> dict[str, SecretType]:
    return secret_type_plugins(build_plugin_manager())


def check(
    types: dict[str, SecretType], name: str, value: str | bytes | dict[str, Any]
) -> TypeCheck:
    if isinstance(value, dict):
        value = json.dumps(value)
    raw = value.encode() if isinstance(value, str) else value
    return types[name].validate(SecretValue(raw))


# -- generated key material -------------------------------------------------------------------


def private_text(key: Any, layout: Any, password: bytes | None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, layout, encryption).decode()


def pem_key(key: Any, password: bytes | None = None) -> str:
    return private_text(key, serialization.PrivateFormat.PKCS8, password)


def openssh_key(key: Any, password: bytes | None = None) -> str:
    return private_text(key, serialization.PrivateFormat.OpenSSH, password)


def certificate_for(key: Any, issuer_key: Any | None = None, name: str = "svc.internal") -> str:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(0x1234ABCD)
        .not_valid_before(NOT_AFTER - timedelta(days=365))
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(issuer_key or key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def ec_key() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ssh_key() -> Any:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def gcp_key_file(rsa_key: Any) -> dict[str, str]:
    return {
        "type": "service_account",
        "project_id": "acme-payments-42",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem_key(rsa_key),
        "client_email": "ci@acme-payments-42.iam.gserviceaccount.com",
        "client_id": "112233445566778899",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "universe_domain": "googleapis.com",
    }


AWS = {
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "region": "eu-west-1",
}
AZURE = {
    "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
    "client_secret": "generated~client~secret~0001",
}


@pytest.fixture(scope="module")
def cases(ec_key: Any, ssh_key: Any, gcp_key_file: dict[str, str]) -> dict[str, Any]:
    """Per type: a passing value, a failing value, and the field the failure names."""
    other_key = ec.generate_private_key(ec.SECP256R1())
    certificate = certificate_for(ec_key)
    return {
        "generic": ("anything at all", None, None),
        "api_key": ("sk-test-0123456789abcdef", "two words", "api_key"),
        "oauth_token": (
            {"access_token": "at-1", "refresh_token": "rt-1", "token_url": "https://idp.test/t"},
            {"access_token": "at-1", "refresh_token": "rt-1"},
            "token_url",
        ),
        "username_password": (
            {"username": "app", "password": "pw-0001"},
            {"username": "app"},
            "password",
        ),
        "connection_string": (
            "postgresql://app:pw-0001@db.internal:5432/payments?sslmode=require",
            "postgresql://app:pw-0001@db.internal:99999/payments",
            "port",
        ),
        "certificate": (
            {"certificate": certificate, "private_key": pem_key(ec_key)},
            {"certificate": certificate, "private_key": pem_key(other_key)},
            "private_key",
        ),
        "ssh_key": (
            openssh_key(ssh_key),
            "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n",
            "private_key",
        ),
        "aws_credentials": (AWS, {**AWS, "access_key_id": "ASIAIOSFODNN7EXAMPLE"}, "session_token"),
        "azure_service_principal": (AZURE, {**AZURE, "tenant_id": "not-a-uuid"}, "tenant_id"),
        "gcp_service_account": (
            gcp_key_file,
            {key: v for key, v in gcp_key_file.items() if key != "client_email"},
            "client_email",
        ),
    }


def test_every_built_in_type_has_a_passing_and_a_failing_case(
    types: dict[str, SecretType], cases: dict[str, Any]
) -> None:
    assert set(cases) == set(types)
    for name, (passing, failing, field) in cases.items():
        assert check(types, name, passing).valid, name
        if failing is not None:
            result = check(types, name, failing)
            assert [p.field for p in result.problems][:1] == [field], name


def test_problems_never_quote_the_value(
    types: dict[str, SecretType], cases: dict[str, Any]
) -> None:
    secret_parts = ("pw-0001", "two words", "rt-1", "nope", "wJalrXUtnFEMI", "not-a-uuid")
    for name, (_, failing, _) in cases.items():
        if failing is not None:
            reasons = " ".join(p.reason for p in check(types, name, failing).problems)
            assert not [part for part in secret_parts if part in reasons], name


def test_every_type_but_generic_wants_text(types: dict[str, SecretType]) -> None:
    for name in set(types) - {"generic"}:
        [problem] = check(types, name, b"\xff\xfe\x00").problems
        assert (problem.field, problem.reason) == ("value", "is not UTF-8 text"), name


def test_a_structured_type_names_unknown_and_missing_fields(types: dict[str, SecretType]) -> None:
    result = check(types, "username_password", {"user": "app", "password": "pw"})

    assert {(p.field, p.reason) for p in result.problems} == {
        ("user", "Unknown field."),
        ("username", "Missing data for required field."),
    }
    assert check(types, "username_password", "plain text").problems[0].field == "value"


# -- certificates -----------------------------------------------------------------------------


def test_a_certificate_reveals_its_subject_and_its_not_after_becomes_the_expiry(
    types: dict[str, SecretType], ec_key: Any
) -> None:
    result = check(
        types,
        "certificate",
        {"certificate": certificate_for(ec_key), "private_key": pem_key(ec_key)},
    )

    assert result.expires_at == NOT_AFTER
    assert result.metadata["subject"] == "CN=svc.internal"
    assert result.metadata["not_after"] == NOT_AFTER.isoformat()
    assert result.metadata["serial"] == "1234abcd"
    assert result.metadata["dns_names"] == "svc.internal"
    assert "PRIVATE" not in json.dumps(result.metadata)


def test_a_certificate_bundle_holds_the_chain_and_the_key_in_any_order(
    types: dict[str, SecretType], ec_key: Any
) -> None:
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate_for(ec_key, issuer_key)
    bundle = pem_key(ec_key) + leaf + certificate_for(issuer_key, name="ca.internal")

    result = check(types, "certificate", bundle)
    variables = types["certificate"].environment("TLS", SecretValue.from_text(bundle))

    assert result.valid and result.expires_at == NOT_AFTER
    assert set(variables) == {"TLS_CERTIFICATE", "TLS_PRIVATE_KEY", "TLS_CHAIN"}
    assert variables["TLS_CERTIFICATE"] == leaf


@pytest.mark.parametrize(
    ("value", "field", "reason"),
    [
        ("no pem here", "certificate", "the bundle holds no PEM certificate"),
        (
            {"certificate": "garbage", "private_key": "garbage"},
            "certificate",
            "is not a PEM certificate",
        ),
    ],
)
def test_a_certificate_that_does_not_parse_is_refused(
    types: dict[str, SecretType], value: Any, field: str, reason: str
) -> None:
    [problem] = check(types, "certificate", value).problems

    assert (problem.field, problem.reason) == (field, reason)


def test_an_encrypted_certificate_key_needs_its_passphrase(
    types: dict[str, SecretType], ec_key: Any
) -> None:
    value = {"certificate": certificate_for(ec_key), "private_key": pem_key(ec_key, PASSPHRASE)}

    without = check(types, "certificate", value)
    wrong = check(types, "certificate", {**value, "private_key_passphrase": "wrong"})
    right = check(types, "certificate", {**value, "private_key_passphrase": PASSPHRASE.decode()})

    assert without.problems[0].field == "private_key_passphrase"
    assert wrong.problems[0].field == "private_key"
    assert right.valid


# -- SSH keys ---------------------------------------------------------------------------------


def test_an_ssh_key_reveals_its_public_key_and_fingerprint(
    types: dict[str, SecretType], ssh_key: Any
) -> None:
    public = ssh_key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    digest = hashlib.sha256(base64.b64decode(public.split()[1])).digest()

    result = check(types, "ssh_key", openssh_key(ssh_key))

    assert result.metadata == {
        "key_type": "ssh-ed25519",
        "fingerprint": "SHA256:" + base64.b64encode(digest).decode().rstrip("="),
        "public_key": public.decode(),
    }


def test_an_rsa_ssh_key_in_pem_reports_its_size(types: dict[str, SecretType], rsa_key: Any) -> None:
    result = check(types, "ssh_key", pem_key(rsa_key))

    assert result.metadata["key_type"] == "ssh-rsa" and result.metadata["bits"] == "2048"


def test_an_encrypted_ssh_key_needs_its_passphrase(
    types: dict[str, SecretType], ssh_key: Any
) -> None:
    encrypted = openssh_key(ssh_key, PASSPHRASE)

    without = check(types, "ssh_key", encrypted)
    wrong = check(types, "ssh_key", {"private_key": encrypted, "passphrase": "wrong"})
    right = check(types, "ssh_key", {"private_key": encrypted, "passphrase": PASSPHRASE.decode()})

    assert (without.problems[0].field, wrong.problems[0].field) == ("passphrase", "private_key")
    assert right.valid and right.metadata["key_type"] == "ssh-ed25519"
    variables = types["ssh_key"].environment(
        "DEPLOY_KEY",
        SecretValue.from_text(
            json.dumps({"private_key": encrypted, "passphrase": PASSPHRASE.decode()})
        ),
    )
    assert set(variables) == {"DEPLOY_KEY", "DEPLOY_KEY_PASSPHRASE"}
    with pytest.raises(ValueError):  # the wrong passphrase: no variables
        types["ssh_key"].environment(
            "DEPLOY_KEY",
            SecretValue.from_text(json.dumps({"private_key": encrypted, "passphrase": "wrong"})),
        )


# -- connection strings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "metadata"),
    [
        (
            "postgresql://app:pw-0001@db.internal:5432/payments?sslmode=require&password=pw-0001",
            {
                "scheme": "postgresql",
                "host": "db.internal",
                "port": "5432",
                "username": "app",
                "database": "payments",
            },
        ),
        (
            "Server=tcp:sql.example.net,1433;Initial Catalog=orders;User ID=svc;Password=pw-0001;",
            {"host": "sql.example.net", "port": "1433", "username": "svc", "database": "orders"},
        ),
        (
            "host=db.internal port=5433 user=app password='pw-0001' dbname=ledger",
            {"host": "db.internal", "port": "5433", "username": "app", "database": "ledger"},
        ),
        ("sqlite:///var/lib/app.db", {"scheme": "sqlite", "database": "var/lib/app.db"}),
    ],
)
def test_a_connection_string_reveals_everything_but_its_password(
    types: dict[str, SecretType], value: str, metadata: dict[str, str]
) -> None:
    result = check(types, "connection_string", value)

    assert result.valid and dict(result.metadata) == metadata
    assert "pw-0001" not in json.dumps(dict(result.metadata))


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("postgresql:///payments", "host"),
        ("just some words", "value"),
        ("Server=;Database=x", "host"),
        ("Server=db,notaport;Database=x", "port"),
        ("host='unterminated", "value"),
        ("", "value"),
    ],
)
def test_a_connection_string_that_does_not_parse_names_the_part(
    types: dict[str, SecretType], value: str, field: str
) -> None:
    assert check(types, "connection_string", value).problems[0].field == field


# -- environment variables --------------------------------------------------------------------


def test_types_render_as_their_conventional_environment_variables(
    types: dict[str, SecretType], gcp_key_file: dict[str, str]
) -> None:
    def render(name: str, value: Any) -> dict[str, str]:
        text = json.dumps(value) if isinstance(value, dict) else value
        return types[name].environment("APP", SecretValue.from_text(text))

    assert render("generic", "v") == {"APP": "v"}
    assert render("api_key", "sk-1") == {"APP": "sk-1"}
    assert render("username_password", {"username": "u", "password": "p"}) == {
        "APP_USERNAME": "u",
        "APP_PASSWORD": "p",
    }
    assert render("aws_credentials", AWS) == {
        "AWS_ACCESS_KEY_ID": AWS["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": AWS["secret_access_key"],
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    assert set(render("azure_service_principal", AZURE)) == {
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
    }
    gcp = render("gcp_service_account", gcp_key_file)
    assert json.loads(gcp["APP"]) == gcp_key_file
    assert gcp["GOOGLE_CLOUD_PROJECT"] == "acme-payments-42"
    assert render("connection_string", " redis://cache:6379/0 ") == {"APP": "redis://cache:6379/0"}


def test_an_invalid_or_binary_value_has_no_environment_variables(
    types: dict[str, SecretType],
) -> None:
    with pytest.raises(ValueError, match="not a valid username_password"):
        types["username_password"].environment("APP", SecretValue(b"{}"))
    with pytest.raises(ValueError, match="binary"):
        types["generic"].environment("APP", SecretValue(b"\xff"))
