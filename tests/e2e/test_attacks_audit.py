"""Attacks on the audit trail over HTTP (issue #14, High 2 and its low items).

The audit events of concurrent requests are committed together. A request whose event cannot
be stored as it came (a version past the integer column, a NUL in the path of a refused request,
a lone surrogate in a body field, a huge or control-laden User-Agent) must neither fail the
other callers' reads in its batch nor go unrecorded. Also here: verifying a range past the
chain's head, and formulas planted in a CSV export through the User-Agent.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from adapters.db.tables import audit_events
from core.domain.audit import AuditEvent, RequestInfo
from core.domain.callers import Caller
from core.domain.errors import NotFound
from core.domain.values import Principal
from entrypoints.config import Settings
from entrypoints.http.audit import as_csv
from entrypoints.http.context import ANONYMOUS
from tests.e2e.conftest import TOKEN, ApiClient

ROOT = {"Authorization": f"Bearer {TOKEN}"}
BAD_TOKEN = {"Authorization": "Bearer not-a-token"}
LEGIT_THREADS = 6
READS_PER_THREAD = 40
POISON_THREADS = 3
POISON_ROUNDS = 6

# Sends one request with the given request id; its status and error code.
Send = Callable[[FlaskClient, str], tuple[int, str | None]]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Without the limit on failed authentication, so that every refused request here is
    audited on its own rather than in aggregate."""
    return dataclasses.replace(settings, auth={**settings.auth, "failures_per_minute": 0})


def answer(response: Any) -> tuple[int, str | None]:
    body = response.get_json(silent=True) or {}
    return response.status_code, body.get("error", {}).get("code")


def poison(secret_id: str) -> dict[str, Send]:
    """Requests whose audit event could not be stored as it came, by name."""
    value = f"/api/v1/secrets/{secret_id}/value"
    surrogate_scope = {"name": "x", "value": "v", "scope": {"type": "project", "id": "p\ud800"}}

    def get(path: str, headers: dict[str, str]) -> Send:
        return lambda c, request_id: answer(
            c.get(path, headers=headers | {"X-Request-Id": request_id})
        )

    return {
        "version past 64 bits": get(f"{value}?version=99999999999999999999", ROOT),
        "version past 32 bits": get(f"{value}?version=2147483648", ROOT),
        "NUL in a refused path": get("/api/v1/x%00", BAD_TOKEN),
        "lone surrogate in a body": lambda c, request_id: answer(
            c.post(
                "/api/v1/secrets",
                json=surrogate_scope,
                headers=ROOT | {"X-Request-Id": request_id},
            )
        ),
        "huge User-Agent, hot path": get(value, BAD_TOKEN | {"User-Agent": "A" * 20_000}),
        "control characters in a User-Agent": get(
            "/api/v1/secrets", BAD_TOKEN | {"User-Agent": "=1+1\x01\x7f\x85"}
        ),
    }


def hostile_request_facts(app: Flask) -> dict[str, Send]:
    """Events with hostile fields recorded through the app's own audit trail (its group
    commit and database), below the request layer: whatever that layer lets through."""
    container = app.extensions["container"]
    hostile = "\x00\ud800\x1b[31m" + "A" * 10_000

    def refused(client: FlaskClient, request_id: str) -> tuple[int, str | None]:
        info = RequestInfo(request_id=request_id, source_ip=hostile, user_agent=hostile)
        anonymous = Caller.of(ANONYMOUS, info)
        trail = container.audit_trail()
        trail.refused(anonymous, "auth.authenticate", f"/api/v1/{hostile}", "unauthenticated")
        return 401, "unauthenticated"

    def failed(client: FlaskClient, request_id: str) -> tuple[int, str | None]:
        trail = container.audit_trail()
        caller = Caller.of(Principal(f"user:{hostile}", "user"), RequestInfo(request_id))
        with (
            contextlib.suppress(NotFound),
            trail.attempt(caller, "secret.read_value", f"secret:{hostile}", version=10**20),
        ):
            raise NotFound("no such secret")
        return 404, "not_found"

    return {"hostile request facts": refused, "hostile fields of a failed read": failed}


@dataclass
class Run:
    legit: list[int] = field(default_factory=list)  # statuses of the legitimate reads
    poison: list[tuple[str, str, int, str | None]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    @property
    def legit_failures(self) -> int:
        return sum(status != 200 for status in self.legit)


def attack(app: Flask, secret_id: str, requests: dict[str, Send]) -> Run:
    """Legitimate reads (the hot path by id and by path, and Flask's) while other threads send
    poison, all at once."""
    run, lock = Run(), threading.Lock()
    reads = [
        f"/api/v1/secrets/{secret_id}/value",
        "/api/v1/scopes/project/p-42/secrets/db/value",
        f"/api/v1/secrets/{secret_id}/value?version=1",
    ]
    start = threading.Barrier(LEGIT_THREADS + POISON_THREADS)

    def read(thread: int) -> None:
        client = app.test_client()
        start.wait()
        for n in range(READS_PER_THREAD):
            status = client.get(reads[(thread + n) % len(reads)], headers=ROOT).status_code
            with lock:
                run.legit.append(status)

    def send_poison(thread: int) -> None:
        client = app.test_client()
        start.wait()
        for _ in range(POISON_ROUNDS):
            for name, send in requests.items():
                request_id = uuid.uuid4().hex
                status, code = send(client, request_id)
                with lock:
                    run.poison.append((name, request_id, status, code))

    def guarded(work: Callable[[int], None], thread: int) -> None:
        try:
            work(thread)
        except BaseException as error:  # reported by the test
            with lock:
                run.errors.append(error)

    threads = [threading.Thread(target=guarded, args=(read, t)) for t in range(LEGIT_THREADS)]
    threads += [
        threading.Thread(target=guarded, args=(send_poison, t)) for t in range(POISON_THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return run


def stored_events(app: Flask) -> dict[str, list[Any]]:
    """The stored events by request id."""
    engine = app.extensions["container"].engine()
    by_request: dict[str, list[Any]] = {}
    with engine.connect() as connection:
        for row in connection.execute(select(audit_events)):
            by_request.setdefault(row.request_id, []).append(row)
    return by_request


@pytest.mark.parametrize("sent", ["over HTTP", "below the request layer"])
def test_poison_fails_no_other_read_and_every_poison_request_is_audited(
    api: ApiClient, app: Flask, sent: str
) -> None:
    secret = api.create(name="db", value="v1", scope={"type": "project", "id": "p-42"})
    requests = poison(secret["id"]) if sent == "over HTTP" else hostile_request_facts(app)

    run = attack(app, secret["id"], requests)

    assert run.errors == []
    assert len(run.legit) == LEGIT_THREADS * READS_PER_THREAD
    events = stored_events(app)
    # Refused by the request's validation before any use case ran, a request has nothing of
    # its own to audit; every other answer, 401s above all, has its event.
    unaudited = [
        (name, status, code)
        for name, request_id, status, code in run.poison
        if request_id not in events and (status, code) != (400, "validation_error")
    ]
    assert (run.legit_failures, len(unaudited)) == (0, 0), (
        f"{run.legit_failures} of {len(run.legit)} legitimate reads failed; "
        f"{len(unaudited)} of {len(run.poison)} poison requests went unaudited: {unaudited[:3]}"
    )
    for _, request_id, status, _ in run.poison:
        if status == 401:
            [event] = events[request_id]
            assert (event.action, event.outcome, event.reason) == (
                "auth.authenticate",
                "denied",
                "unauthenticated",
            )
    assert api.post("/audit/verify", json={}).get_json()["ok"] is True


def test_a_refused_request_is_recorded_with_its_odd_fields_escaped_and_bounded(
    api: ApiClient, app: Flask
) -> None:
    client = app.test_client()
    nul = client.get("/api/v1/x%00", headers=BAD_TOKEN | {"X-Request-Id": "nul-path"})
    huge = client.get(
        "/api/v1/secrets/00000000-0000-0000-0000-000000000000/value",
        headers=BAD_TOKEN | {"X-Request-Id": "huge-agent", "User-Agent": "A\x01" * 20_000},
    )
    assert (nul.status_code, huge.status_code) == (401, 401)
    events = stored_events(app)
    [refused_nul] = events["nul-path"]
    assert refused_nul.resource == "/api/v1/x\\x00"
    [refused_huge] = events["huge-agent"]
    assert refused_huge.user_agent.startswith("A\\x01A\\x01")
    assert len(refused_huge.user_agent) == 512 and refused_huge.user_agent.endswith("…")
    assert api.post("/audit/verify", json={}).get_json()["ok"] is True


def test_a_version_past_the_column_is_refused_or_recorded_without_it(
    api: ApiClient, app: Flask
) -> None:
    secret = api.create(name="db", value="v1", scope={"type": "project", "id": "p-42"})
    response = app.test_client().get(
        f"/api/v1/secrets/{secret['id']}/value?version=99999999999999999999",
        headers=ROOT | {"X-Request-Id": "huge-version"},
    )
    events = stored_events(app).get("huge-version", [])
    if response.status_code == 400 and not events:  # the request layer refused the number
        assert response.get_json()["error"]["code"] == "validation_error"
    else:  # its event holds no version and says what was asked
        assert events and all(event.version is None for event in events)
        assert all(
            event.details["out_of_range"] == {"version": "99999999999999999999"} for event in events
        )
    assert api.post("/audit/verify", json={}).get_json()["ok"] is True


def test_verifying_from_past_the_head_reports_nothing_to_verify(api: ApiClient) -> None:
    response = api.post("/audit/verify", json={"from_seq": 999_999_999})
    assert response.status_code == 200
    result = response.get_json()
    assert result["ok"] is True and result["checked"] == 0 and result["broken"] is None


def test_the_csv_export_neutralises_formulas(api: ApiClient, app: Flask) -> None:
    agents = ('=HYPERLINK("http://evil")', "+1", "-1", "@SUM(A1)", "\tx")
    for agent in agents:
        app.test_client().get(
            "/api/v1/secrets", headers=BAD_TOKEN | {"User-Agent": agent, "X-Request-Id": "csv"}
        )
    response = api.get("/audit/export?format=csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["user_agent"] for row in rows if row["request_id"] == "csv"] == [
        '\'=HYPERLINK("http://evil")',
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "\\x09x",  # stored escaped: nothing to neutralise
    ]
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_a_stored_tab_or_carriage_return_is_neutralised_too() -> None:
    """Events stored before texts were escaped may start with a tab or a carriage return."""
    old = AuditEvent(
        time=datetime(2025, 1, 1, tzinfo=UTC),
        actor="anonymous",
        actor_type="anonymous",
        action="auth.authenticate",
        resource="\r=1+1",
        outcome="denied",
        user_agent="\t=cmd",
        seq=1,
    )
    [row] = csv.DictReader(io.StringIO("".join(as_csv(iter([old])))))
    assert (row["resource"], row["user_agent"]) == ("'\r=1+1", "'\t=cmd")
