"""A change and its audit event committed together, the event sent to the chain with the COMMIT
itself (`Attempt.succeed(at_commit=True)`): the chain's lock is then taken and released inside
the database, never held across the transaction's round trips. Should a signed checkpoint fall
due (`CheckpointDue`: nothing committed), the change is made again, its event appended the
careful way (the chain's lock taken in the transaction, the checkpoint signed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from core.audit import Attempt
from core.audit_chain import CheckpointDue
from ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")


def commit_audited(
    uow_factory: UnitOfWorkFactory,
    attempt: Attempt,
    change: Callable[[UnitOfWork], tuple[T, dict[str, Any]]],
) -> T:
    """Run `change` in a unit of work (it returns its result and the fields of its success,
    as `Attempt.succeed` takes them), record the success and commit; `change` must be safe to
    run again (it reads what it changes in its own unit of work)."""
    at_commit = True
    while True:
        try:
            with uow_factory() as uow:
                result, fields = change(uow)
                attempt.succeed(uow, at_commit=at_commit, **fields)
                uow.commit()
            return result
        except CheckpointDue:
            if not at_commit:
                raise  # the careful way signs the checkpoint itself: never raised then
            at_commit = False
