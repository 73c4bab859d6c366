"""Cron schedules with croniter: five-field lines (minute hour day month weekday), in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import CroniterError, croniter

from core.domain.errors import InvalidInput
from ports.scheduling import CronSchedule

MAX_LENGTH = 128
# Where `check` looks for a first match. Without a year field, a line that fires at all fires
# within any 28 years (the calendar repeats), well inside croniter's search.
REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


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
        try:  # valid fields can still name no date at all: 31 February, 31 April
            croniter(expression, REFERENCE).get_next(datetime)
        except CroniterError:
            raise InvalidInput(
                "cron matches no date (such as 31 February)", details={"field": "cron"}
            ) from None

    def next_after(self, expression: str, moment: datetime) -> datetime:
        following: datetime = croniter(expression, moment.astimezone(UTC)).get_next(datetime)
        return following.astimezone(UTC)
