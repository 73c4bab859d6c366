"""The scope repository: the scope tree (organization, project, environment).

Repositories never commit: the unit of work does (`ports.unit_of_work`).
"""

from __future__ import annotations

import abc

from core.domain.access import AccessQuery
from core.domain.paging import Page, PageRequest
from core.domain.scopes import Scope, ScopeUsage
from core.domain.values import ScopeRef


class ScopeRepository(abc.ABC):
    @abc.abstractmethod
    def get(self, ref: ScopeRef) -> Scope | None:
        """The scope named `ref`, or None."""

    @abc.abstractmethod
    def add(self, ref: ScopeRef, parent: Scope | None) -> Scope:
        """Register a scope below `parent`; raises `Conflict` if it exists already."""

    @abc.abstractmethod
    def search(self, scope_type: str | None, access: AccessQuery, page: PageRequest) -> Page[Scope]:
        """Scopes the access query lets the caller see, by type and external id."""

    @abc.abstractmethod
    def usage(self, scope: Scope) -> ScopeUsage:
        """Counts of what lives directly in the scope (soft-deleted secrets included)."""

    @abc.abstractmethod
    def delete(self, scope: Scope) -> None:
        """Remove an empty scope and the role bindings held at it."""
