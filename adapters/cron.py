"""Cron schedules with croniter: five-field lines (minute hour day month weekday), in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

from core.errors import InvalidInput
from ports.scheduling import CronSchedule

MAX_LENGTH = 128


class CroniterSchedule(CronSchedule):
    def check(self, expression: str) -> None:
        if not (
            len(expression) <= MAX_LENGTH
            and len(expression.split()) == 5
            and croniter.is_valid(expression)
        ):
            raise InvalidInput(
                "cron must be five fields, minute hour day month weekday, e.g. '0 3 * * 1'",
                details={"field": "cron"},
            )

    def next_after(self, expression: str, moment: datetime) -> datetime:
        following: datetime = croniter(expression, moment.astimezone(UTC)).get_next(datetime)
        return following.astimezone(UTC)
