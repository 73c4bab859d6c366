"""What the operator sees of the workers over HTTP: `/readyz` (no token: ages and counts only)
and `GET /api/v1/status` (admins and auditors of global: every worker, its host and job)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask

from core.bindings import NewBinding
from core.domain.access import Role
from core.domain.values import Principal, ScopeRef
from entrypoints.http.health import Readiness
from ports.workers import WorkerRecord
from tests.e2e.conftest import ApiClient, as_user


def beat(app: Flask, worker_id: str, host: str, silent_for: timedelta, job: str | None) -> None:
    now = datetime.now(UTC)
    record = WorkerRecord(worker_id, host, 4242, now - timedelta(hours=1), now - silent_for, job)
    app.extensions["container"].worker_registry().beat(record)


def test_readyz_shows_the_latest_heartbeat_and_the_backlog_but_no_host(
    app: Flask, api: ApiClient
) -> None:
    before = app.test_client().get("/readyz").get_json()
    assert before["worker"] == {
        "ok": True,
        "last_heartbeat_age_seconds": None,  # no worker has ever beaten
        "alive": 0,
        "backlog": {
            "outbox_pending": 0,
            "outbox_given_up": 0,
            "jobs_queued": 0,
            "rotations_due": 0,
        },
    }
    assert before["status"] == "ok"  # a missing worker delays work, not requests

    beat(app, "node-7.internal:4242:abcd", "node-7.internal", timedelta(seconds=3), "delivery")
    beat(app, "node-8.internal:99:ef01", "node-8.internal", timedelta(minutes=5), None)
    app.extensions["readiness"] = Readiness(app.extensions["container"], cache_seconds=0)
    ready = app.test_client().get("/readyz")

    assert ready.status_code == 200
    worker = ready.get_json()["worker"]
    assert 3 <= worker["last_heartbeat_age_seconds"] < 30 and worker["alive"] == 1
    assert "node-7" not in ready.get_data(as_text=True)
    assert "delivery" not in ready.get_data(as_text=True)


def test_the_status_lists_every_worker_for_admins_and_auditors_only(
    app: Flask, api: ApiClient
) -> None:
    beat(app, "node-7.internal:4242:abcd", "node-7.internal", timedelta(seconds=3), "rotation")
    beat(app, "node-8.internal:99:ef01", "node-8.internal", timedelta(minutes=5), None)

    status = api.get("/status")

    assert status.status_code == 200
    body = status.get_json()
    assert [
        (w["id"], w["host"], w["pid"], w["alive"], w["current_job"]) for w in body["workers"]
    ] == [
        ("node-7.internal:4242:abcd", "node-7.internal", 4242, True, "rotation"),
        ("node-8.internal:99:ef01", "node-8.internal", 4242, False, None),
    ]
    assert 3 <= body["last_heartbeat_age_seconds"] < 30 and body["alive"] == 1
    assert body["backlog"]["jobs_queued"] == 0

    assert ApiClient(app.test_client(), token=None).get("/status").status_code == 401
    dana = as_user(app, "dana")
    refused = dana.get("/status")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    app.extensions["container"].binding_service().create(
        Principal("cli", "root", is_root=True),
        NewBinding("user:dana", Role.AUDITOR, ScopeRef.global_scope()),
    )
    assert dana.get("/status").status_code == 200
