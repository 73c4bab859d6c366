"""A signed webhook the operator configured: where requests go and the key that signs them.

Only the operator's configuration makes one (`[events.webhooks.<name>]`,
`[rotation.webhooks.<name>]`); no request, policy or setting ever names a URL or a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.domain.values import ScopeRef


@dataclass(frozen=True)
class WebhookTarget:
    """A configured webhook, by name. Its URL (which may be a credential itself) and its key
    stay out of reprs. `scopes`, for a rotation target: the scopes whose secrets may name it,
    each with what lies below it (a personal scope only when it is listed itself)."""

    name: str
    url: str = field(repr=False)
    key: bytes = field(repr=False)
    timeout: float = 10.0
    scopes: tuple[ScopeRef, ...] = ()
