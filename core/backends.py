"""The configured storage backend instances, looked up by name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from core.domain.errors import ConfigurationError
from core.registry import Registry
from ports.storage import StorageBackend


class BackendRegistry:
    def __init__(self, backends: Mapping[str, StorageBackend], default: str) -> None:
        if default not in backends:
            raise ConfigurationError(
                f"the default backend '{default}' is not a configured backend instance",
                details={"key": "default_backend"},
            )
        self._backends = Registry(
            "backend", backends, listed_as="configured", details={"field": "backend"}
        )
        self.default = default

    def get(self, name: str) -> StorageBackend:
        return self._backends.get(name)

    def __iter__(self) -> Iterator[StorageBackend]:
        return iter(self._backends)

    def close(self) -> None:
        for backend in self._backends:
            backend.close()
