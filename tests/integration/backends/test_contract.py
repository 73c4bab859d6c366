"""The backend contract suite against Vault/OpenBao, AWS, Azure and GCP, on their servers."""

from __future__ import annotations

import pytest

from plugins.testing import BackendContract
from ports.storage import StorageBackend


class TestExternalBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, external_backend: StorageBackend) -> StorageBackend:
        return external_backend
