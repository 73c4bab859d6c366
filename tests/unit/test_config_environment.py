"""Settings from the environment arrive with the type their key declares: a list-valued key takes
`a,b` or `["a", "b"]` (never the characters of one text), numbers and flags arrive as numbers
and flags, and a bad value stops the start (`load_settings`, `create_app`) with a
`ConfigurationError` naming the key, never a request."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from marshmallow import Schema, fields

from adapters.identity import JwtAuthenticator
from core.domain.errors import ConfigurationError
from entrypoints.config import Settings, load_settings
from entrypoints.config_schema import ListSetting, SettingsSchema
from entrypoints.container import Container, check_configured
from entrypoints.http.app import create_app
from plugins import vault_backend
from plugins.backend_settings import BackendSettings, PluginSettings, setting_list

ISSUER, AUDIENCE = "https://idp.test", "secret-management"
IDP_KEY = "a-shared-hmac-key-long-enough-for-hs512-too-0123456789abcdefghijk"
HOOK_KEY = "an-hmac-key-for-the-owner-0123456789"
# Every section set from the environment alone, as a container's or a systemd unit's would be.
BASE = {
    "SECRETS_IDENTITY__JWT__ISSUER": ISSUER,
    "SECRETS_IDENTITY__JWT__AUDIENCE": AUDIENCE,
    "SECRETS_IDENTITY__JWT__SHARED_KEY_ENV": "IDP_KEY",
    "IDP_KEY": IDP_KEY,
    "SECRETS_IDENTITY__ISSUERS__DB__ISSUER": "https://cluster.test",
    "SECRETS_IDENTITY__ISSUERS__DB__AUDIENCE": AUDIENCE,
    "SECRETS_IDENTITY__ISSUERS__DB__SHARED_KEY_ENV": "IDP_KEY",
    "SECRETS_ROTATION__WEBHOOKS__DB__URL": "https://db-owner.example.com/rotate",
    "SECRETS_ROTATION__WEBHOOKS__DB__SECRET_ENV": "HOOK_KEY",
    "SECRETS_ROTATION__WEBHOOKS__DB__SCOPES": "global",
    "HOOK_KEY": HOOK_KEY,
}
VAULT = {
    "SECRETS_BACKENDS__VAULT__PLUGIN": "vault",
    "SECRETS_BACKENDS__VAULT__URL": "http://127.0.0.1:8200",
    "SECRETS_BACKENDS__VAULT__TOKEN_ENV": "VAULT_TOKEN",
    "VAULT_TOKEN": "s.not-a-real-token",
}


@pytest.fixture(autouse=True)
def _vault_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backends read their credentials' variables from the process environment."""
    monkeypatch.setenv("VAULT_TOKEN", VAULT["VAULT_TOKEN"])


def environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    return {"SECRETS_DATA_DIR": str(tmp_path), **BASE, **variables}


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Callable[..., Container]]:
    built: list[Container] = []

    def build(**variables: str) -> Container:
        built.append(Container(settings=load_settings(environment(tmp_path, **variables))))
        built[-1].environ.override(environment(tmp_path, **variables))
        return built[-1]

    yield build
    for each in built:
        each.shutdown_resources()


# -- every list-valued key ----------------------------------------------------------------------

LISTS: list[tuple[str, str, Callable[[Settings], Any], Any]] = [
    ("SECRETS_EXPIRY_WARNING_DAYS", "5", lambda s: s.expiry_warning_days, (5,)),
    ("SECRETS_EXPIRY_WARNING_DAYS", "30,7,1", lambda s: s.expiry_warning_days, (30, 7, 1)),
    ("SECRETS_EXPIRY_WARNING_DAYS", "[14, 3]", lambda s: s.expiry_warning_days, (14, 3)),
    ("SECRETS_PLUGINS__DISABLED", "aws", lambda s: s.disabled_plugins, ("aws",)),
    ("SECRETS_PLUGINS__DISABLED", " aws, gcp ", lambda s: s.disabled_plugins, ("aws", "gcp")),
    ("SECRETS_PLUGINS__DISABLED", '["aws","gcp"]', lambda s: s.disabled_plugins, ("aws", "gcp")),
    ("SECRETS_PLUGINS__DISABLED", "", lambda s: s.disabled_plugins, ()),
    ("SECRETS_AUDIT__SINKS", "stdout", lambda s: s.audit["sinks"], ["stdout"]),
    ("SECRETS_AUDIT__SINKS", "stdout,file", lambda s: s.audit["sinks"], ["stdout", "file"]),
    ("SECRETS_AUDIT__SINKS", "['stdout']", lambda s: s.audit["sinks"], ["stdout"]),
    (
        "SECRETS_IDENTITY__JWT__ALGORITHMS",
        "HS256",
        lambda s: s.identity["jwt"]["algorithms"],
        ["HS256"],
    ),
    (
        "SECRETS_IDENTITY__JWT__ALGORITHMS",
        "HS256,HS512",
        lambda s: s.identity["jwt"]["algorithms"],
        ["HS256", "HS512"],
    ),
    (
        "SECRETS_IDENTITY__JWT__ALGORITHMS",
        '["HS384"]',
        lambda s: s.identity["jwt"]["algorithms"],
        ["HS384"],
    ),
    (
        "SECRETS_IDENTITY__ISSUERS__DB__ALGORITHMS",
        "HS256,HS384",
        lambda s: s.identity["issuers"]["db"]["algorithms"],
        ["HS256", "HS384"],
    ),
    (
        "SECRETS_TRUSTED_PROXIES",
        "10.0.0.0/8, 192.168.1.7",
        lambda s: s.trusted_proxies,
        ("10.0.0.0/8", "192.168.1.7"),
    ),
    ("SECRETS_TRUSTED_PROXIES", '["::1"]', lambda s: s.trusted_proxies, ("::1",)),
    (
        "SECRETS_CORS__ALLOWED_ORIGINS",
        "https://console.example.com,https://admin.example.com",
        lambda s: s.cors["allowed_origins"],
        ["https://console.example.com", "https://admin.example.com"],
    ),
    (
        "SECRETS_ROTATION__WEBHOOKS__DB__SCOPES",
        "organization/acme",
        lambda s: s.rotation["webhooks"]["db"]["scopes"],
        ["organization/acme"],
    ),
    (
        "SECRETS_ROTATION__WEBHOOKS__DB__SCOPES",
        "organization/acme, team/t-1",
        lambda s: s.rotation["webhooks"]["db"]["scopes"],
        ["organization/acme", "team/t-1"],
    ),
]


@pytest.mark.parametrize(("variable", "text", "read", "expected"), LISTS)
def test_a_list_valued_key_reads_from_the_environment(
    tmp_path: Path, variable: str, text: str, read: Callable[[Settings], Any], expected: Any
) -> None:
    assert read(load_settings(environment(tmp_path, **{variable: text}))) == expected


def list_keys(schema: Schema, prefix: str = "") -> set[str]:
    """The dotted key of every list-valued field in a schema and the schemas it nests."""
    found = set()
    for name, field in schema.fields.items():
        key = f"{prefix}{name}"
        if isinstance(field, fields.Dict) and isinstance(field.value_field, fields.Nested):
            found |= list_keys(field.value_field.schema, f"{key}.*.")
        elif isinstance(field, fields.Nested):
            found |= list_keys(field.schema, f"{key}.")
        elif isinstance(field, fields.List):
            assert isinstance(field, ListSetting), f"{key} is a plain List: use ListSetting"
            found.add(key)
    return found


def test_every_list_valued_key_is_declared_and_tested_from_the_environment() -> None:
    declared = list_keys(SettingsSchema())
    tested = {
        ".".join("*" if part == "db" else part for part in variable[8:].lower().split("__"))
        for variable, *_ in LISTS
    }
    assert declared == tested
    assert declared >= {"audit.sinks", "identity.jwt.algorithms", "plugins.disabled"}


def test_the_list_rule_for_text() -> None:
    assert setting_list("a, b,,c ") == ["a", "b", "c"]
    assert setting_list('["a,b", "c"]') == ["a,b", "c"]  # an array when an item holds a comma
    assert setting_list("[1, 2]") == [1, 2]
    assert setting_list(" ") == []
    assert setting_list(("x",)) == ["x"]
    for bad in ("[alpha, beta]", '["gamma"', '["delta"]\nmode = "production"', 7):
        with pytest.raises(ValueError, match="must be a list") as caught:
            setting_list(bad)
        assert not {"alpha", "gamma", "delta", "7"} & set(str(caught.value).split())


def test_a_plugin_reads_its_own_list_setting_by_the_same_rule() -> None:
    options = PluginSettings("audit.acme", {"topics": "audit, security"}, known=("topics",))
    assert options.texts("topics") == ["audit", "security"]
    assert PluginSettings("audit.acme", {}, known=("topics",)).texts("topics", ["a"]) == ["a"]
    with pytest.raises(ConfigurationError, match=re.escape("'audit.acme.topics'")):
        PluginSettings("audit.acme", {"topics": "[1, 2]"}, known=("topics",)).texts("topics")


# -- what the consumers get ---------------------------------------------------------------------


def user_token(algorithm: str = "HS256") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 60}
    return jwt.encode(claims, IDP_KEY, algorithm=algorithm)


def test_a_jwt_signed_with_hs256_verifies_when_the_algorithm_comes_from_the_environment(
    container: Callable[..., Container],
) -> None:
    authenticator = container(SECRETS_IDENTITY__JWT__ALGORITHMS="HS256").authenticator()
    assert authenticator.authenticate(user_token()).id == "user:alice"
    both = container(SECRETS_IDENTITY__JWT__ALGORITHMS="HS256,HS512").authenticator()
    assert both.authenticate(user_token("HS512")).id == "user:alice"


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"algorithms": "HS256"}, "identity.jwt.algorithms"),  # a text, from code: not a list
        ({"algorithms": ["RS256"]}, "identity.jwt.algorithms"),  # a shared key verifies HS*
        ({"algorithms": ["none"]}, "identity.jwt.algorithms"),
        ({"leeway_seconds": "30"}, "identity.jwt.leeway_seconds"),
        ({"leeway_seconds": 3600}, "identity.jwt.leeway_seconds"),
    ],
)
def test_the_jwt_authenticator_refuses_settings_of_the_wrong_type(
    settings: dict[str, Any], key: str
) -> None:
    """Settings built in code skip `load_settings`; the authenticator still refuses them."""
    base = {"issuer": ISSUER, "audience": AUDIENCE, "shared_key_env": "IDP_KEY"}
    with pytest.raises(ConfigurationError, match=re.escape(f"configuration key '{key}'")):
        JwtAuthenticator(base | settings, {"IDP_KEY": IDP_KEY})


def test_a_jwks_verifies_public_key_algorithms_only(tmp_path: Path) -> None:
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(f'{{"keys": [{jwt.algorithms.ECAlgorithm.to_jwk(public)}]}}')
    base = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(jwks)}
    assert JwtAuthenticator(base | {"algorithms": ["ES384"]}, {})
    with pytest.raises(ConfigurationError, match="'HS256' is not one this key verifies"):
        JwtAuthenticator(base | {"algorithms": ["HS256"]}, {})


def test_numbers_from_the_environment_arrive_as_numbers(
    container: Callable[..., Container],
) -> None:
    built = container(
        SECRETS_AUDIT__CHECKPOINT_EVERY="5", SECRETS_IDENTITY__JWT__LEEWAY_SECONDS="120"
    )
    assert built.audit_chain().every == 5
    assert built.settings().identity["jwt"]["leeway_seconds"] == 120
    now = int(time.time())  # expired a minute ago: inside the two minutes of leeway
    late = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now - 60}
    assert built.authenticator().authenticate(jwt.encode(late, IDP_KEY, "HS256")).id == "user:alice"


def test_a_backends_numbers_and_flags_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        environment(
            tmp_path,
            **VAULT,
            SECRETS_BACKENDS__VAULT__TIMEOUT="5",
            SECRETS_BACKENDS__AZ__PLUGIN="azure",
            SECRETS_BACKENDS__AZ__VERIFY_CHALLENGE_RESOURCE="false",
        )
    )
    vault = {k: v for k, v in settings.backends["vault"].items() if k != "plugin"}
    assert (
        BackendSettings("vault", vault, vault_backend.SETTINGS).integer("timeout", 10, 1, 300) == 5
    )
    azure = BackendSettings(
        "az", {"verify_challenge_resource": "false"}, ("verify_challenge_resource",)
    )
    assert azure.flag("verify_challenge_resource", True) is False
    assert settings.backends["az"]["verify_challenge_resource"] == "false"


# -- a bad value stops the start ----------------------------------------------------------------


def start(tmp_path: Path, **variables: str) -> None:
    """What `secretctl serve` and each server process do: load the settings, build the app."""
    environ = environment(tmp_path, **variables)
    settings = load_settings(environ)
    app_container = Container(settings=settings)
    app_container.environ.override(environ)
    create_app(settings, app_container)
    app_container.shutdown_resources()


@pytest.mark.parametrize(
    ("variables", "key"),
    [
        ({"SECRETS_AUDIT__SINKS": "nope"}, "audit.sinks"),
        (
            {"SECRETS_AUDIT__SINKS": "stdout", "SECRETS_AUDIT__STDOUT__COLOUR": "red"},
            "audit.stdout.colour",
        ),
        ({"SECRETS_AUDIT__SINKS": "file"}, "audit.file.path"),
        ({"SECRETS_AUDIT__FILES__PATH": "/tmp/audit.log"}, "audit.files"),
        ({"SECRETS_AUDIT__SINK": "stdout"}, "audit.sink"),
        ({"SECRETS_AUDIT__CHECKPOINT_EVERY": "often"}, "audit.checkpoint_every"),
        ({"SECRETS_IDENTITY__JWT__ALGORITHMS": "HS257"}, "identity.jwt.algorithms[0]"),
        ({"SECRETS_IDENTITY__JWT__ALGORITHMS": "none"}, "identity.jwt.algorithms[0]"),
        ({"SECRETS_IDENTITY__JWT__ALGORITHMS": "RS256"}, "identity.jwt.algorithms"),
        ({"SECRETS_IDENTITY__JWT__ALGORITHMS": ""}, "identity.jwt.algorithms"),
        ({"SECRETS_IDENTITY__JWT__LEEWAY_SECONDS": "soon"}, "identity.jwt.leeway_seconds"),
        ({"SECRETS_IDENTITY__JWT__ISSUERS": ISSUER}, "identity.jwt.issuers"),
        ({"SECRETS_IDENTITY__JWT": "on"}, "identity.jwt"),
        ({"SECRETS_EXPIRY_WARNING_DAYS": "30,soon"}, "expiry_warning_days[1]"),
        ({"SECRETS_EXPIRY_WARNING_DAYS": "[30,"}, "expiry_warning_days"),
        ({"SECRETS_PLUGINS__DISABLED": "vualt"}, "plugins.disabled"),
        ({"SECRETS_ROTATION__WEBHOOKS__DB__SCOPES": ""}, "rotation.webhooks.db.scopes"),
        ({"SECRETS_KEYS__PROVIDER": "nope"}, "keys.provider"),
        ({"SECRETS_KEYS__PAHT": "/tmp/master.key"}, "keys.paht"),
        ({**VAULT, "SECRETS_BACKENDS__VAULT__TIMEOUT": "soon"}, "backends.vault.timeout"),
        ({"SECRETS_WORKER__BATCH_SIZE": "many"}, "worker.batch_size"),
    ],
)
def test_a_bad_setting_stops_the_start_naming_its_key(
    tmp_path: Path, variables: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        start(tmp_path, **variables)
    assert f"configuration key '{key}'" in caught.value.message
    assert IDP_KEY not in caught.value.message and HOOK_KEY not in caught.value.message


def test_an_audit_file_that_cannot_be_written_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    path = tmp_path / "not-a-directory" / "audit.log"
    with pytest.raises(ConfigurationError, match=re.escape("key 'audit.file.path'")):
        start(tmp_path, SECRETS_AUDIT__SINKS="file", SECRETS_AUDIT__FILE__PATH=str(path))


def test_the_same_settings_start_when_they_are_good(tmp_path: Path) -> None:
    start(
        tmp_path,
        SECRETS_AUDIT__SINKS="stdout,file",
        SECRETS_AUDIT__FILE__PATH=str(tmp_path / "audit" / "events.log"),
        SECRETS_IDENTITY__JWT__ALGORITHMS="HS256",
        SECRETS_PLUGINS__DISABLED="gcp",
        SECRETS_KEYS__PROVIDER="file",
        SECRETS_KEYS__PATH=str(tmp_path / "keys" / "master.key"),
    )
    assert (tmp_path / "keys" / "master.key").exists()


def test_check_configured_closes_what_it_opened_before_the_bad_piece(tmp_path: Path) -> None:
    environ = environment(tmp_path, SECRETS_AUDIT__SINKS="file", **VAULT)
    environ |= {"SECRETS_AUDIT__FILE__PATH": str(tmp_path / "events.log")}
    environ |= {"SECRETS_BACKENDS__VAULT__TIMEOUT": "soon"}
    built = Container(settings=load_settings(environ))
    built.environ.override(environ)
    with pytest.raises(ConfigurationError, match=re.escape("'backends.vault.timeout'")):
        check_configured(built)
    assert not built.audit_sinks.initialized
