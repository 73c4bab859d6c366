"""The key provider contract: cases every `ports.security.KeyProvider` passes.

Subclass `KeyProviderContract` and give it a `provider` fixture returning a fresh provider
(with its own key, e.g. in a `tmp_path`)::

    from plugins.testing import KeyProviderContract

    class TestMyKmsProvider(KeyProviderContract):
        @pytest.fixture
        def provider(self):
            return MyKmsProvider(FakeKms())

The rules it checks, besides the signatures of the port:

- The active key has a non-empty id, and `key(id)` gives the same key back; material, where the
  provider holds it, is 32 bytes (an AES-256 key).
- A key id the provider never gave out raises core's `ConfigurationError`, not `KeyError`.
- The checksum key is stable, at least 32 bytes, and not the active key's material.
- `rotate` either refuses (`NotImplementedError` or `ConfigurationError`) or makes a new active
  key under a new id while every older key stays readable by its id, unchanged.
- No key material shows in a repr, an error or a log record, in any common encoding.
"""

from __future__ import annotations

import base64
import logging

import pytest

from core.domain.errors import ConfigurationError
from plugins.testing.leaks import assert_not_leaked, assert_not_logged
from ports.security import KeyEncryptionKey, KeyProvider


def shown(material: bytes) -> list[str]:
    """The ways key bytes could show up in a text."""
    return [base64.b64encode(material).decode(), material.hex(), repr(material)]


class KeyProviderContract:
    """The contract cases. A subclass provides the `provider` fixture."""

    @pytest.fixture
    def provider(self) -> KeyProvider:
        raise NotImplementedError("a KeyProviderContract subclass provides `provider`")

    def test_the_active_key_is_found_again_by_its_id(self, provider: KeyProvider) -> None:
        active = provider.active_key()
        assert isinstance(active, KeyEncryptionKey)
        assert isinstance(active.id, str) and active.id
        assert provider.key(active.id) == active
        if active.material is not None:
            assert len(active.material) == 32

    def test_an_unknown_key_id_is_a_configuration_error(self, provider: KeyProvider) -> None:
        with pytest.raises(ConfigurationError) as raised:
            provider.key("no-such-key-id-for-the-contract")
        material = provider.active_key().material
        for text in shown(material) if material else ():
            assert_not_leaked(raised.value, text)

    def test_the_checksum_key_is_stable_and_not_the_key_itself(self, provider: KeyProvider) -> None:
        checksum_key = provider.checksum_key()
        assert isinstance(checksum_key, bytes) and len(checksum_key) >= 32
        assert provider.checksum_key() == checksum_key
        assert checksum_key != provider.active_key().material

    def test_rotate_refuses_or_keeps_every_older_key(self, provider: KeyProvider) -> None:
        before = provider.active_key()
        checksum_key = provider.checksum_key()
        try:
            rotated = provider.rotate()
        except (NotImplementedError, ConfigurationError):
            assert provider.active_key() == before, "a refused rotation changed the key"
            return
        assert rotated.id != before.id
        assert provider.active_key() == rotated
        assert provider.key(before.id) == before, "an older key is gone or changed"
        assert provider.checksum_key() == checksum_key, "the checksums would no longer match"

    def test_no_material_shows_in_a_repr_or_a_log_record(
        self, provider: KeyProvider, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        active = provider.active_key()
        checksum_key = provider.checksum_key()
        provider.key(active.id)
        texts = shown(checksum_key) + (shown(active.material) if active.material else [])
        for text in texts:
            assert text not in repr(active) and text not in str(active)
            assert text not in repr(provider) and text not in str(provider)
            assert_not_logged(caplog.records, text)
