"""Values put in each store by someone else are found under a prefix and read by their adopted
locators, which belong to exactly one version key: version 1 of the secret adoption makes."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from core.adoption import adopted_secret_id
from core.domain.errors import ValueIntegrityError
from core.domain.values import SecretValue, VersionKey
from ports.storage import StorageBackend


def test_values_already_in_the_store_are_found_and_bound_to_one_key(
    external_backend: StorageBackend, seed: Callable[[str, str], None]
) -> None:
    run = uuid.uuid4().hex[:8]
    prefix = f"legacy-{run}-"
    seeded = {f"{prefix}db": "db-password-7c1e", f"{prefix}api": "api-key-41d0"}
    for name, text in seeded.items():
        seed(name, text)
    seed(f"other-{run}", "not under the prefix")
    managed_key = VersionKey(uuid.uuid4(), 1)
    external_backend.put(managed_key, SecretValue(b"written by the service"))

    found = {item.external_name: item.locator for item in external_backend.list_external(prefix)}

    assert set(found) == set(seeded)
    for name, locator in found.items():
        secret_id = adopted_secret_id(external_backend.name, locator)
        assert (
            external_backend.get(VersionKey(secret_id, 1), locator).reveal()
            == seeded[name].encode()
        )
        for wrong in (VersionKey(secret_id, 2), VersionKey(uuid.uuid4(), 1), managed_key):
            with pytest.raises(ValueIntegrityError):
                external_backend.get(wrong, locator)
