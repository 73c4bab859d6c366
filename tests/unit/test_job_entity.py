"""`Job` and `JobItem` are frozen: each state change is a method returning the changed entity,
and the one it was made from (its counters and report too) stays as it was."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.domain.jobs import ItemState, Job, JobItem, JobState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)


def job(**changes) -> Job:
    made = Job(
        id=uuid.uuid4(),
        kind="migration",
        state=JobState.RUNNING,
        params={},
        created_by="alice",
        created_by_type="user",
        created_at=T0,
        updated_at=T0,
        total=3,
        counters={"versions": 2},
        report={"failures": []},
        lease_owner="runner-1",
        lease_until=T1,
    )
    return dataclasses.replace(made, **changes)


def item(**changes) -> JobItem:
    made = JobItem(uuid.uuid4(), uuid.uuid4(), 1, ItemState.PENDING, "old", "loc-1", T0)
    return dataclasses.replace(made, **changes)


def test_a_job_and_an_item_cannot_be_changed_in_place() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        job().done = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        item().state = ItemState.COPIED  # type: ignore[misc]


def test_counting_and_reporting_leave_the_original_job_as_it_was() -> None:
    before = job()

    after = before.count_switched(2).counted("versions", 1).reported("stray_copies", [{"v": 1}])

    assert (after.done, after.counters) == (1, {"versions": 3, "versions_copied": 2})
    assert after.report == {"failures": [], "stray_copies": [{"v": 1}]}
    assert (before.done, before.counters, before.report) == (0, {"versions": 2}, {"failures": []})


def test_a_failure_after_the_switch_is_no_longer_counted_done() -> None:
    switched = job(done=1)

    failed = switched.count_failed({"reason": "why"}, was_done=True)

    assert (failed.done, failed.failed, failed.remaining) == (0, 1, 2)
    assert failed.report["failures"] == [{"reason": "why"}]
    assert job().count_failed({"reason": "why"}, was_done=False).done == 0


def test_the_fit_check_refuses_with_the_misfits_or_runs() -> None:
    refused = job(state=JobState.PENDING).checked(T1, [{"reason": "too big"}])
    running = job(state=JobState.PENDING, started_at=T0).checked(T1, [])

    assert (refused.state, refused.started_at, refused.report["misfits"]) == (
        JobState.REFUSED,
        T1,
        [{"reason": "too big"}],
    )
    assert (running.state, running.started_at) == (JobState.RUNNING, T0)  # started once


@pytest.mark.parametrize(
    ("state", "failed", "ends"),
    [
        (JobState.RUNNING, 0, JobState.SUCCEEDED),
        (JobState.RUNNING, 1, JobState.FAILED),
        (JobState.REFUSED, 0, JobState.REFUSED),
    ],
)
def test_finishing_settles_the_state_and_frees_the_lease(
    state: JobState, failed: int, ends: JobState
) -> None:
    finished = job(state=state, failed=failed, last_error="a backend was down").finished(T1)

    assert (finished.state, finished.finished_at, finished.last_error) == (ends, T1, None)
    assert (finished.lease_owner, finished.lease_until) == (None, None)


def test_a_released_job_says_why_in_at_most_512_characters() -> None:
    released = job().released("x" * 600)

    assert released.last_error == "x" * 512
    assert (released.lease_owner, released.lease_until) == (None, None)


def test_item_state_changes_keep_or_drop_the_copy() -> None:
    copied = item().copied_to("t-1", T1)

    assert (copied.state, copied.target_locator, copied.updated_at) == (ItemState.COPIED, "t-1", T1)
    assert copied.with_state(ItemState.SWITCHED, T1).target_locator == "t-1"
    assert copied.without_copy(ItemState.PENDING, T1).target_locator is None
    kept = copied.failed_with("r" * 600, T1, keep_copy=True)
    dropped = copied.failed_with("why", T1, keep_copy=False)
    assert (kept.state, kept.error, kept.target_locator) == (ItemState.FAILED, "r" * 512, "t-1")
    assert dropped.target_locator is None
