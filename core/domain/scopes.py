"""The scope hierarchy: a scope as stored, and what still lives in one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.domain.values import ScopeRef


@dataclass
class Scope:
    """A node of the scope hierarchy as stored: its key, its external name, and its `path`,
    the keys of its ancestors and itself (`/1/7/12/`), so "at or below" is a prefix test;
    `parent` names its parent (None for the global scope)."""

    pk: int
    ref: ScopeRef
    path: str
    parent_pk: int | None = None
    created_at: datetime | None = None
    parent: ScopeRef | None = None


@dataclass(frozen=True)
class ScopeUsage:
    """What still lives in a scope, so that deleting it can be refused."""

    children: int
    secrets: int
    service_accounts: int
