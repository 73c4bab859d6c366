"""A property of the audit trail, on real SQLite and PostgreSQL databases: whatever a request
brings into an audit event (its id, source address and User-Agent, the caller's id, the path,
a reason, a scope, a version, details from its body), the event is stored and the chain still
verifies. Hypothesis draws every field: any text (NULs, lone surrogates, control characters,
huge ones), any integer, any JSON-like details."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from adapters.db.audit_appender import PostgresChainAppender
from adapters.db.uow import SqlUnitOfWork
from adapters.group_commit import GroupCommit
from core.audit import AuditTrail
from core.audit_chain import AuditChain, verify_links
from core.domain.audit import RequestInfo
from core.domain.callers import Caller
from core.domain.errors import NotFound
from core.domain.values import Principal
from tests.fakes import CHECKPOINT_KEY, FixedClock

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

# Any character, and often one that a store refuses or a reader is misled by: NUL, lone
# surrogates, escape and other control characters, a line separator.
any_character = st.characters(exclude_categories=()) | st.sampled_from(
    "\x00\ud800\udbff\udc00\udfff\x1b\r\n\t\x7f\x85\u2028"
)
short_text = st.text(any_character, max_size=40)
huge_text = st.builds(
    lambda text, times: (text or "\x00") * times, short_text, st.integers(1, 3000)
)
any_text = st.one_of(short_text, st.text(any_character, max_size=600), huge_text)
optional_text = st.none() | any_text
# Any integer, and often one just past a column's range (32 or 64 bits) or far past it.
any_integer = st.one_of(
    st.integers(),
    st.sampled_from([2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**20, 10**400]),
    st.integers(-(2**70), 2**70),
)
json_like = st.recursive(
    st.none() | st.booleans() | any_integer | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(short_text, children, max_size=5)
    ),
    max_leaves=30,
)
request_facts = st.builds(RequestInfo, optional_text, optional_text, optional_text)


@pytest.fixture
def recording(engine: Engine) -> Iterator[tuple[Engine, GroupCommit]]:
    """The group commit as the container builds it on this database."""
    appender = PostgresChainAppender(engine) if engine.dialect.name == "postgresql" else None
    group = GroupCommit(
        functools.partial(SqlUnitOfWork, engine), AuditChain(CHECKPOINT_KEY, 10), None, appender
    )
    yield engine, group
    if appender is not None:
        appender.close()


def chain_state(engine: Engine) -> tuple[int, int, Any]:
    """How many events are stored, the head's seq, and the verification of the whole chain."""
    with SqlUnitOfWork(engine) as uow:
        links = list(uow.audit.chain_links())
        verified = verify_links(links, uow.audit.checkpoints(), CHECKPOINT_KEY, checkpoint_every=10)
        return len(links), uow.audit.head()[0], verified


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    request=request_facts,
    actor=any_text,
    path=any_text,
    reason=any_text,
    scope=optional_text,
    scope_path=optional_text,
    version=st.none() | any_integer,
    details=st.dictionaries(short_text, json_like, max_size=6),
)
def test_every_request_field_is_stored_and_the_chain_verifies(
    recording: tuple[Engine, GroupCommit],
    caplog: pytest.LogCaptureFixture,
    request: RequestInfo,
    actor: str,
    path: str,
    reason: str,
    scope: str | None,
    scope_path: str | None,
    version: int | None,
    details: dict[str, Any],
) -> None:
    engine, group = recording
    trail = AuditTrail(group, AuditChain(CHECKPOINT_KEY, 10), FixedClock(NOW))
    caller = Caller.of(Principal(actor, "user"), request)  # the request's facts travel with it
    before, _, _ = chain_state(engine)

    with caplog.at_level(logging.ERROR, logger="core.audit"):
        trail.refused(caller, "auth.authenticate", path, reason)
        with (
            pytest.raises(NotFound),
            trail.attempt(
                caller,
                "secret.read_value",
                path,
                scope=scope,
                scope_path=scope_path,
                version=version,
            ) as attempt,
        ):
            attempt.learn(details=details)
            raise NotFound("no such secret")
        with trail.attempt(caller, "secret.read_value", path, version=version) as attempt:
            attempt.succeed_durably(details=details)

    assert caplog.records == []  # nothing failed to be recorded
    count, head, verified = chain_state(engine)
    assert count == head == before + 3
    assert verified == (count, None)
