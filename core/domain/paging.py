"""A page of a listing: which one to read, and what it holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
P = TypeVar("P")


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    page_size: int = 50

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class Slice(Generic[T, P]):
    """A page read after a position (keyset paging): it stops after its items, so its cost does
    not grow with the listing, and no total is counted (as OpenBao's LIST, AWS's NextToken).
    `next` is the position to read the following page after; None at the end."""

    items: list[T]
    page_size: int
    next: P | None
