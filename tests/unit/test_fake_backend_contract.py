"""The backend contract suite against the in-memory fake, so the fake stays a faithful one."""

from __future__ import annotations

import pytest

from plugins.testing import BackendContract
from tests.fakes import InMemoryBackend


class TestInMemoryBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> InMemoryBackend:
        return InMemoryBackend("memory")
