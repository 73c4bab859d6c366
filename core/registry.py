"""One way to keep named things of a kind (secret types, formats, backends, rotators, key
providers, audit sinks) and to look one up: a name nobody registered is refused naming the
names that exist, "unknown <kind> 'x'; known: a, b".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from core.domain.errors import ConfigurationError, InvalidInput, ServiceError

T = TypeVar("T")

Refusal = Callable[[str], ServiceError]


class Registry(Generic[T]):
    """Items of one `kind` by name.

    `listed_as` is the word before the list of names in the refusal ("known", "configured",
    "available"); `refuse` makes the error from the message (by default `InvalidInput` with
    `details`, for a name a caller gave; a registry of configured things may raise
    `ConfigurationError` instead).
    """

    def __init__(
        self,
        kind: str,
        items: Mapping[str, T] | None = None,
        *,
        listed_as: str = "known",
        details: Mapping[str, object] | None = None,
        refuse: Refusal | None = None,
    ) -> None:
        self.kind = kind
        self._listed_as = listed_as
        self._details = dict(details or {})
        self._refuse = refuse
        self._items: dict[str, T] = {}
        for name, item in (items or {}).items():
            self.register(name, item)

    def register(self, name: str, item: T) -> None:
        """Add `item` under `name`; a name registered already is refused."""
        if name in self._items:
            raise ConfigurationError(f"two {self.kind}s are named '{name}'")
        self._items[name] = item

    def get(self, name: str) -> T:
        """The item named `name`; refused, naming the names there are, when there is none."""
        try:
            return self._items[name]
        except (KeyError, TypeError):  # TypeError: a name that is not even hashable
            raise self.unknown(name) from None

    def unknown(self, name: object) -> ServiceError:
        """The error for a name nobody registered."""
        shown = name if isinstance(name, str) else repr(name)
        message = (
            f"unknown {self.kind} '{shown}'; {self._listed_as}: {', '.join(self.names()) or 'none'}"
        )
        if self._refuse is not None:
            return self._refuse(message)
        return InvalidInput(message, details=dict(self._details))

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        """The items, in the order they were registered."""
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def as_dict(self) -> dict[str, T]:
        return dict(self._items)
