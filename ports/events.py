"""The event publisher port: where change events go once their change has committed.

Events are written to the outbox in the transaction of the change they report, then delivered
by the worker through a publisher (the webhook adapter: HMAC-signed HTTP POSTs). An event never
carries a secret value.
"""

from __future__ import annotations

import abc

from core.domain.events import OutboxMessage


class EventPublisher(abc.ABC):
    @abc.abstractmethod
    def publish(self, message: OutboxMessage) -> None:
        """Deliver one event to its subscriber (`message.target`); raise `DeliveryFailed`
        (from `core.domain.errors`) when it is not accepted. Deliveries are at least once."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release connections."""
