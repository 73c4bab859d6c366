"""The configured storage backend instances, looked up by name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from core.domain.errors import ConfigurationError, InvalidInput
from ports.storage import StorageBackend


class BackendRegistry:
    def __init__(self, backends: Mapping[str, StorageBackend], default: str) -> None:
        if default not in backends:
            raise ConfigurationError(
                f"the default backend '{default}' is not a configured backend instance",
                details={"key": "default_backend"},
            )
        self._backends = dict(backends)
        self.default = default

    def get(self, name: str) -> StorageBackend:
        try:
            return self._backends[name]
        except KeyError:
            raise InvalidInput(
                f"unknown backend '{name}'; configured: {', '.join(sorted(self._backends))}",
                details={"field": "backend"},
            ) from None

    def __iter__(self) -> Iterator[StorageBackend]:
        return iter(self._backends.values())

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
