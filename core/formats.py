"""The import/export formats of the installed plugins, by name (shared by `core.imports` and
`core.exports`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from core.registry import Registry
from ports.formats import SecretFormat


class FormatRegistry:
    """The import/export formats of the installed plugins, by name."""

    def __init__(self, formats: Mapping[str, SecretFormat]) -> None:
        self._formats = Registry("format", formats, details={"field": "format"})

    def get(self, name: str) -> SecretFormat:
        return self._formats.get(name)

    def for_filename(self, filename: str) -> str | None:
        """The format a file's name suggests (`prod.env`, `.env.local`, `backup.json`)."""
        base = filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
        for secret_format in self._formats:
            for extension in secret_format.extensions:
                if base.endswith(extension) or base.startswith(extension + "."):
                    return secret_format.name
        return None

    def __iter__(self) -> Iterator[SecretFormat]:
        return iter(self._formats)
