"""The schedule port: when a cron expression fires next."""

from __future__ import annotations

import abc
from datetime import datetime


class CronSchedule(abc.ABC):
    @abc.abstractmethod
    def check(self, expression: str) -> None:
        """Raise `InvalidInput` (core.domain.errors) unless `expression` is a valid cron line."""

    @abc.abstractmethod
    def next_after(self, expression: str, moment: datetime) -> datetime:
        """The first time strictly after `moment` (aware, UTC) that the expression matches."""
