"""What a read decided on cached rows requires of the generation when its audit event commits:
the one rule shared by value reads and resolutions."""

from __future__ import annotations

import pytest

from core.reads import STALE, required_generation


@pytest.mark.parametrize(
    ("seen", "required"),
    [
        (set(), None),  # nothing cached: the database was read, nothing to check
        ({7}, 7),  # every cached row (and the token) from one generation
        ({7, 8}, STALE),  # cached at two generations: read again from the database
        ({3, 7, 8}, STALE),
    ],
)
def test_the_generation_required_by_what_was_seen(seen: set[int], required: int | None) -> None:
    assert required_generation(seen) == required
