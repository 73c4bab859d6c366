"""Times and durations on the command line: `30d`, `12h`, `15m`, `90s`, or an ISO 8601 time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

DURATION = re.compile(r"^(\d{1,7})([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, param_hint: str) -> timedelta:
    match = DURATION.fullmatch(text.strip())
    if match is None:
        raise click.BadParameter(
            "use a number and s, m, h, d or w: 90s, 15m, 12h, 30d", param_hint=param_hint
        )
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def parse_time(text: str, param_hint: str) -> str:
    """An ISO 8601 time as the API takes it: given as such, or a duration from now (`30d`)."""
    if DURATION.fullmatch(text.strip()):
        return (datetime.now(UTC) + parse_duration(text, param_hint)).isoformat()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            "use an ISO 8601 time (2027-01-31T00:00:00Z) or a duration from now (30d)",
            param_hint=param_hint,
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
