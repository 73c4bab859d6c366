"""`[rotation.webhooks.<name>]` and `[events.webhooks.<name>]` are checked when the settings are
loaded: a bad URL, an HMAC key that cannot be read or is too short, or a bad scope stops the
start with a message naming the configuration key, never when a request first needs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.domain.errors import ConfigurationError
from entrypoints.config import load_settings

KEY = "an-hmac-key-for-the-owner-0123456789"
TARGET = """
[rotation.webhooks.db]
url = "https://db-owner.example.com/rotate"
secret_env = "DB_OWNER_KEY"
scopes = ["organization/acme", "project/p-42"]
timeout_seconds = 5
"""


def settings_from(tmp_path: Path, text: str, **environ: str):
    config = tmp_path / "secrets.toml"
    config.write_text(text)
    return load_settings({"SECRETS_DATA_DIR": str(tmp_path), **environ}, config)


def test_a_rotation_target_is_configured_with_its_url_key_reference_and_scopes(
    tmp_path: Path,
) -> None:
    settings = settings_from(tmp_path, TARGET, DB_OWNER_KEY=KEY)

    assert settings.rotation["webhooks"] == {
        "db": {
            "url": "https://db-owner.example.com/rotate",
            "secret_env": "DB_OWNER_KEY",
            "scopes": ["organization/acme", "project/p-42"],
            "timeout_seconds": 5.0,
        }
    }
    assert KEY not in repr(settings)
    assert settings_from(tmp_path, "").rotation["webhooks"] == {}


def test_scopes_come_from_the_environment_as_a_list(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        TARGET,
        DB_OWNER_KEY=KEY,
        SECRETS_ROTATION__WEBHOOKS__DB__SCOPES="team/t-1, global",
    )
    assert settings.rotation["webhooks"]["db"]["scopes"] == ["team/t-1", "global"]


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        (TARGET, {}, "'rotation.webhooks.db': the environment variable DB_OWNER_KEY is not set"),
        (TARGET, {"DB_OWNER_KEY": "short"}, "'rotation.webhooks.db': the HMAC key is shorter"),
        (
            TARGET.replace('secret_env = "DB_OWNER_KEY"', 'secret_file = "{dir}"'),
            {},
            "'rotation.webhooks.db': cannot read",
        ),
        (
            TARGET.replace("https://db-owner.example.com", "http://10.1.2.3:8080"),
            {"DB_OWNER_KEY": KEY},
            "'rotation.webhooks.db.url' must be an https:// URL",
        ),
        (
            TARGET.replace('"project/p-42"', '"p-42"'),
            {"DB_OWNER_KEY": KEY},
            "'rotation.webhooks.db.scopes': 'p-42' is not a scope",
        ),
        (
            TARGET.replace('scopes = ["organization/acme", "project/p-42"]', ""),
            {"DB_OWNER_KEY": KEY},
            "'rotation.webhooks.db.scopes': Missing data",
        ),
        (
            TARGET.replace('secret_env = "DB_OWNER_KEY"', ""),
            {},
            "'rotation.webhooks.db': give the HMAC key by secret_env or secret_file",
        ),
        (
            TARGET + 'secret_file = "/run/secrets/db"\n',
            {"DB_OWNER_KEY": KEY},
            "'rotation.webhooks.db': give the HMAC key by secret_env or secret_file",
        ),
        (
            TARGET + 'hmac_key = "inline"\n',
            {"DB_OWNER_KEY": KEY},
            "'rotation.webhooks.db.hmac_key': Unknown field",
        ),
        (
            '[events.webhooks.ops]\nurl = "https://hooks.example.com/x"\nsecret_env = "OPS"\n',
            {},
            "'events.webhooks.ops': the environment variable OPS is not set",
        ),
    ],
)
def test_a_bad_webhook_stops_the_start_naming_its_configuration_key(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        settings_from(tmp_path, text.replace("{dir}", str(tmp_path)), **environ)
    assert message in refused.value.message
    assert KEY not in refused.value.message
