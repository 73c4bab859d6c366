"""Who is calling, and from where: the `Caller` a request hands to the use cases."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from uuid import UUID

from core.domain.audit import RequestInfo
from core.domain.values import Principal

NO_REQUEST = RequestInfo()  # the CLI, the worker: no HTTP request behind the action


@dataclass(frozen=True, eq=False)
class Caller(Principal):
    """A principal making one request: who (a `Principal`, compared as one) and the facts of
    the request that the audit trail stamps on its events (id, source address, user agent).

    An API token's caller also carries the token and the change generation of the cached lookup
    that found it (None when it was looked up in the database for this request): a use case
    confirms such a token in the transaction that does the work (`core.access.confirm_caller`).
    A plain `Principal` (the CLI, the worker, tests) is a caller with no request facts.
    """

    request: RequestInfo = NO_REQUEST
    token_id: UUID | None = field(default=None)
    generation: int | None = field(default=None)

    @classmethod
    def of(cls, principal: Principal, request: RequestInfo) -> Caller:
        """`principal` making the request `request` (an API token's facts kept)."""
        if isinstance(principal, Caller):
            return replace(principal, request=request)
        return cls(
            principal.id,
            principal.kind,
            principal.groups,
            principal.is_root,
            principal.is_system,
            request=request,
        )


def request_of(actor: Principal) -> RequestInfo:
    """The facts of the request `actor` makes, none for a plain principal."""
    return actor.request if isinstance(actor, Caller) else NO_REQUEST


def cached_token(actor: Principal) -> tuple[UUID, int] | None:
    """The API token of a caller the token cache found, and the change generation of that
    lookup; None for any other caller (no token, or one read from the database just now)."""
    if isinstance(actor, Caller) and actor.token_id is not None and actor.generation is not None:
        return actor.token_id, actor.generation
    return None
