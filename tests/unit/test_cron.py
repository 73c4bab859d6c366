"""Cron lines (`adapters/cron.py`): what croniter takes as valid fields but never fires used to
fail later, as a 500 when a policy was set (issue #14)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.cron import CroniterSchedule
from core.domain.errors import InvalidInput


@pytest.mark.parametrize("line", ["0 0 31 2 *", "0 0 30 2 *", "* * 31 4 *", "0 12 31 6,9,11 *"])
def test_a_line_that_matches_no_date_is_invalid_input(line: str) -> None:
    with pytest.raises(InvalidInput) as refusal:
        CroniterSchedule().check(line)
    assert refusal.value.details == {"field": "cron"}
    assert "no date" in refusal.value.message


@pytest.mark.parametrize("line", ["0 0 29 2 *", "0 0 31 2 1", "0 3 * * 1", "*/5 * * * *"])
def test_rare_but_possible_lines_are_taken(line: str) -> None:
    schedule = CroniterSchedule()
    schedule.check(line)
    after = datetime(2025, 3, 1, tzinfo=UTC)
    assert schedule.next_after(line, after) > after
