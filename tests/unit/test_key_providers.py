"""Key providers: the environment variable, the key file, and the built-in plugin's choices."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from pathlib import Path

import pytest

from adapters.keys import EnvKeyProvider, FileKeyProvider
from core.domain.errors import ConfigurationError
from plugins.key_providers import auto_provider, env_provider, file_provider
from ports.security import KeyEncryptionKey, KeyProviderContext

KEY = bytes(range(32))
ENCODED_KEY = base64.b64encode(KEY).decode()


def shown(material: bytes) -> list[str]:
    """The ways key bytes could show up in a text."""
    return [base64.b64encode(material).decode(), material.hex(), repr(material)]


def context(
    tmp_path: Path, *, production: bool, environ: dict[str, str] | None = None
) -> KeyProviderContext:
    return KeyProviderContext(str(tmp_path / "data"), environ or {}, production)


# -- environment variable ---------------------------------------------------------------------


def test_env_key_has_a_stable_id_that_reveals_nothing() -> None:
    provider = EnvKeyProvider({"SECRETS_MASTER_KEY": ENCODED_KEY})
    again = EnvKeyProvider({"SECRETS_MASTER_KEY": f"  {ENCODED_KEY}\n"})
    key = provider.active_key()

    assert re.fullmatch(r"env-[0-9a-f]{12}", key.id)
    assert key.id == again.active_key().id
    assert key.material == KEY
    assert provider.key(key.id) == key
    assert all(text not in key.id for text in shown(KEY))


def test_env_checksum_key_is_derived_not_the_key_itself() -> None:
    provider = EnvKeyProvider({"SECRETS_MASTER_KEY": ENCODED_KEY})
    assert len(provider.checksum_key()) == 32
    assert provider.checksum_key() != KEY
    assert (
        provider.checksum_key()
        == EnvKeyProvider({"SECRETS_MASTER_KEY": ENCODED_KEY}).checksum_key()
    )


def test_env_provider_does_not_know_other_keys() -> None:
    with pytest.raises(ConfigurationError, match="file-0123"):
        EnvKeyProvider({"SECRETS_MASTER_KEY": ENCODED_KEY}).key("file-0123")


def test_a_missing_env_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="SECRETS_MASTER_KEY is not set"):
        EnvKeyProvider({})


@pytest.mark.parametrize(
    "value",
    [
        "not base64 at all: s3cr3t-v4lue!",
        base64.b64encode(b"sixteen byte key").decode(),
        base64.b64encode(KEY + b"!").decode(),
        ENCODED_KEY[:-4],
        "ключ" * 11,
    ],
    ids=["not-base64", "16-bytes", "33-bytes", "bad-padding", "non-ascii"],
)
def test_an_invalid_env_key_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        EnvKeyProvider({"SECRETS_MASTER_KEY": value})

    message = f"{raised.value} {raised.value.args!r} {raised.value.details!r}"
    assert "SECRETS_MASTER_KEY" in message
    assert value not in message
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None or raised.value.__suppress_context__


def test_a_key_encryption_key_repr_shows_no_material() -> None:
    key = EnvKeyProvider({"SECRETS_MASTER_KEY": ENCODED_KEY}).active_key()
    assert all(text not in f"{key!r} {key!s}" for text in shown(KEY))


# -- key file ---------------------------------------------------------------------------------


def test_a_new_key_file_is_private_and_announced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data" / "master.key"
    with caplog.at_level(logging.WARNING, logger="adapters.keys"):
        provider = FileKeyProvider(path, create=True)

    assert path.stat().st_mode & 0o777 == 0o600
    document = json.loads(path.read_text())
    assert document["format"] == 1
    assert document["active"] == provider.active_key().id
    assert set(document["keys"]) == {provider.active_key().id}
    assert re.fullmatch(r"file-[0-9a-f]{12}", provider.active_key().id)
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert str(path) in caplog.text and "back it up" in caplog.text
    for material in (provider.active_key().material or b"", provider.checksum_key()):
        assert all(text not in caplog.text for text in shown(material))


def test_a_new_key_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        FileKeyProvider(tmp_path / "master.key", create=True)
    finally:
        os.umask(previous)
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600


def test_an_existing_key_file_is_loaded_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    created = FileKeyProvider(path, create=True)
    loaded = FileKeyProvider(path, create=True)

    assert loaded.active_key() == created.active_key()
    assert loaded.checksum_key() == created.checksum_key()
    assert loaded.checksum_key() != loaded.active_key().material


def test_a_missing_key_file_is_not_created_without_create(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    with pytest.raises(ConfigurationError, match="does not exist"):
        FileKeyProvider(path, create=False)
    assert not path.exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_other_users_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    FileKeyProvider(path, create=True)
    path.chmod(mode)

    with pytest.raises(ConfigurationError) as raised:
        FileKeyProvider(path, create=False)
    assert str(path) in raised.value.message
    assert f"chmod 600 {path}" in raised.value.message


def test_a_key_file_that_cannot_be_made_or_read_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "a-file" / "master.key"  # a file where a directory goes
    with pytest.raises(ConfigurationError, match="cannot create the key file") as made:
        FileKeyProvider(path, create=True)
    with pytest.raises(ConfigurationError, match="cannot be read") as read:
        FileKeyProvider(path, create=False)
    assert made.value.details == {"key": "keys.path"} and str(path) in read.value.message


def test_rotate_adds_a_new_active_key_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    provider = FileKeyProvider(path, create=True)
    old, checksum_key = provider.active_key(), provider.checksum_key()

    new = provider.rotate()

    assert new.id != old.id and new.material != old.material
    assert provider.active_key() == new
    assert provider.key(old.id) == old
    assert provider.checksum_key() == checksum_key
    reloaded = FileKeyProvider(path, create=False)
    assert reloaded.active_key() == new and reloaded.key(old.id) == old
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["master.key"]


def test_a_key_rotated_by_another_process_is_found(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    this_process = FileKeyProvider(path, create=True)
    new = FileKeyProvider(path, create=False).rotate()

    assert this_process.key(new.id) == new
    with pytest.raises(ConfigurationError, match="file-000000000000"):
        this_process.key("file-000000000000")


def _write(path: Path, document: object) -> None:
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    path.chmod(0o600)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "not a JSON object"),
        ({"format": 2, "active": "k", "keys": {"k": ENCODED_KEY}}, "not a format 1 key file"),
        ({"format": 1, "active": "x", "keys": {"k": ENCODED_KEY}}, "'active'"),
        (
            {
                "format": 1,
                "active": "k",
                "keys": {"k": ENCODED_KEY[:-8]},
                "checksum_key": ENCODED_KEY,
            },
            "keys.k",
        ),
        ({"format": 1, "active": "k", "keys": {"k": ENCODED_KEY}}, "checksum_key"),
        ({"format": 1, "active": "a b", "keys": {"a b": ENCODED_KEY}}, "key id 'a b'"),
    ],
    ids=["json", "object", "format", "active", "short-key", "no-checksum-key", "key-id"],
)
def test_an_invalid_key_file_is_refused_without_echoing_keys(
    tmp_path: Path, document: object, message: str
) -> None:
    path = tmp_path / "master.key"
    _write(path, document)

    with pytest.raises(ConfigurationError, match=re.escape(message)) as raised:
        FileKeyProvider(path, create=True)
    assert str(path) in raised.value.message
    assert ENCODED_KEY[:-8] not in raised.value.message


# -- the built-in plugin's choices ------------------------------------------------------------


def test_auto_uses_the_environment_variable_when_it_is_set(tmp_path: Path) -> None:
    environ = {"SECRETS_MASTER_KEY": ENCODED_KEY}
    provider = auto_provider({}, context(tmp_path, production=True, environ=environ))
    assert isinstance(provider, EnvKeyProvider)


def test_auto_generates_a_key_file_outside_production(tmp_path: Path) -> None:
    provider = auto_provider({}, context(tmp_path, production=False))
    assert isinstance(provider, FileKeyProvider)
    assert provider.path == tmp_path / "data" / "master.key"
    assert provider.path.exists()


def test_production_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError,
        match=re.escape("production mode needs a key: set SECRETS_MASTER_KEY or [keys] path"),
    ):
        auto_provider({}, context(tmp_path, production=True))
    assert not (tmp_path / "data").exists()


def test_production_uses_an_existing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    created = FileKeyProvider(path, create=True)
    provider = auto_provider({"path": str(path)}, context(tmp_path, production=True))
    assert provider.active_key() == created.active_key()


def test_the_file_provider_never_creates_a_key_in_production(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        file_provider({}, context(tmp_path, production=True))
    assert not (tmp_path / "data").exists()


def test_the_file_provider_takes_its_path_from_settings(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.key"
    provider = file_provider({"path": str(path)}, context(tmp_path, production=False))
    assert isinstance(provider, FileKeyProvider) and provider.path == path
    assert isinstance(provider.active_key(), KeyEncryptionKey)


@pytest.mark.parametrize(
    ("provider", "settings", "key"),
    [
        (file_provider, {"pth": "/tmp/master.key"}, "keys.pth"),
        (auto_provider, {"paht": "/tmp/master.key"}, "keys.paht"),
        (env_provider, {"path": "/tmp/master.key"}, "keys.path"),
    ],
)
def test_a_setting_the_provider_does_not_take_is_refused(
    tmp_path: Path, provider, settings: dict[str, str], key: str
) -> None:
    """A misspelt `path` would otherwise make or read a key file somewhere else, silently."""
    environ = {"SECRETS_MASTER_KEY": ENCODED_KEY}
    with pytest.raises(ConfigurationError, match=f"configuration key '{re.escape(key)}'"):
        provider(settings, context(tmp_path, production=False, environ=environ))
    assert not (tmp_path / "data").exists()
