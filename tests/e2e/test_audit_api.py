"""The audit trail over HTTP, on SQLite and PostgreSQL: every attempt recorded, no value
anywhere but as ciphertext, tampering detected, reads fail closed."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from uuid import UUID

import pytest
from sqlalchemy import delete, select, text, update

from adapters.db.tables import audit_events, metadata, rotation_policies, secrets
from tests.e2e.conftest import ApiClient, as_user

VALUE = "xoxb-audit-canary-5e1d7c9a3b"
VALUE_2 = "xoxb-audit-canary-second-2f4a"
CANARIES = (VALUE, VALUE_2)


def events(api: ApiClient, **query: str) -> list[dict]:
    response = api.get("/audit/events", query_string={"limit": "1000", **query})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def verify(api: ApiClient) -> dict:
    response = api.post("/audit/verify", json={})
    assert response.status_code == 200
    return response.get_json()


def drive_every_endpoint(app, api: ApiClient) -> str:
    """Touch every endpoint with the canary value: successes, failures, denials."""
    secret = api.create(
        name="SLACK_TOKEN", value=VALUE, scope={"type": "project", "id": "p-42"}, tags={"a": "b"}
    )
    sid = secret["id"]
    api.post(f"/secrets/{sid}/versions", json={"value": VALUE_2})
    api.post(f"/secrets/{sid}/versions", json={"value": VALUE}, headers={"If-Match": '"rev-1"'})
    api.post("/secrets", json={"name": "bad name", "value": VALUE})
    api.post("/secrets", json={"name": "SLACK_TOKEN", "value": VALUE, "scope": secret["scope"]})
    api.patch(f"/secrets/{sid}", json={"description": "slack"})
    for path in (
        f"/secrets/{sid}",
        f"/secrets/{sid}/value",
        f"/secrets/{sid}/value?version=1",
        f"/secrets/{sid}/versions",
        f"/secrets/{sid}/versions/2",
        f"/secrets/{sid}/access",
        "/secrets",
        "/scopes",
        "/scopes/project/p-42",
        "/scopes/project/p-42/secrets/SLACK_TOKEN",
        "/scopes/project/p-42/secrets/SLACK_TOKEN/value",
        "/resolve?project=p-42&include_values=true",
        "/role-bindings?scope_type=project&scope_id=p-42",
        "/auth/whoami",
    ):
        assert api.get(path).status_code < 500, path
    grant = {"principal": "user:eve", "role": "viewer", "scope": {"type": "project", "id": "p-42"}}
    binding = api.post("/role-bindings", json=grant).get_json()
    eve = as_user(app, "eve")
    assert eve.get(f"/secrets/{sid}/value").status_code == 403
    assert as_user(app, "stranger").get(f"/secrets/{sid}/value").status_code == 404
    assert ApiClient(app.test_client(), token=VALUE).get("/secrets").status_code == 401
    account = api.post(
        "/service-accounts", json={"name": "ci", "scope": {"type": "project", "id": "p-42"}}
    ).get_json()
    token = api.post(f"/service-accounts/{account['id']}/tokens", json={}).get_json()
    api.get(f"/service-accounts/{account['id']}/tokens")
    api.delete(f"/service-accounts/{account['id']}/tokens/{token['id']}")
    api.delete(f"/role-bindings/{binding['id']}")
    api.delete(f"/secrets/{sid}")
    api.post(f"/secrets/{sid}/restore")
    api.get("/audit/export?format=jsonl")
    api.get("/audit/export?format=csv")
    return sid


def test_every_attempt_is_recorded_and_no_value_lands_anywhere(
    app, api: ApiClient, engine, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    sid = drive_every_endpoint(app, api)

    recorded = events(api)
    by_action = {(e["action"], e["outcome"]) for e in recorded}
    for expected in [
        ("secret.create", "success"),
        ("secret.create", "error"),  # the name is taken: a conflict
        ("secret.write_value", "success"),
        ("secret.write_value", "error"),  # the stale If-Match
        ("secret.read_value", "success"),
        ("secret.read_value", "denied"),
        ("secret.read_value", "not_found"),
        ("secret.read_metadata", "success"),
        ("secret.update", "success"),
        ("secret.delete", "success"),
        ("secret.restore", "success"),
        ("secret.resolve", "success"),
        ("secret.access_report", "success"),
        ("binding.create", "success"),
        ("binding.delete", "success"),
        ("service_account.create", "success"),
        ("token.issue", "success"),
        ("token.revoke", "success"),
        ("auth.authenticate", "denied"),
        ("audit.export", "success"),
    ]:
        assert expected in by_action, expected
    reads = [
        e for e in recorded if e["action"] == "secret.read_value" and e["outcome"] == "success"
    ]
    assert {e["version"] for e in reads} >= {1, 2}
    read = reads[-1]
    assert (read["resource"], read["scope"], read["actor"]) == (
        f"secret:{sid}",
        "project/p-42",
        "root",
    )
    assert read["request_id"] and read["source_ip"] and read["user_agent"]
    denied = next(e for e in recorded if e["outcome"] == "denied" and e["actor"] == "user:eve")
    assert denied["reason"] == "forbidden"
    writes = [
        e for e in recorded if e["action"] == "secret.write_value" and e["outcome"] == "success"
    ]
    assert all(e["details"]["value_hmac"].startswith("hmac-sha256:") for e in writes)

    places = {"the audit export": api.get("/audit/export?format=jsonl").get_data(as_text=True)}
    places["the CSV export"] = api.get("/audit/export?format=csv").get_data(as_text=True)
    places["the logs"] = caplog.text
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            rows = connection.execute(select(table)).all()
            places[f"table {table.name}"] = repr(rows)
    for place, content in places.items():
        for canary in CANARIES:
            assert canary not in content, place
    assert '"action":"secret.read_value"' in places["the audit export"]
    assert verify(api)["ok"]


@pytest.mark.parametrize("tampering", ["edit", "delete", "reorder", "truncate_tail"])
def test_verify_reports_tampering(api: ApiClient, engine, tampering: str) -> None:
    secret = api.create(name="TAMPER", value=VALUE)
    for _ in range(6):
        api.get(f"/secrets/{secret['id']}/value")
    intact = verify(api)
    assert intact["ok"] and intact["checked"] >= 7
    last = intact["last_seq"]
    with engine.begin() as connection:
        if tampering == "edit":
            connection.execute(
                update(audit_events).where(audit_events.c.seq == 3).values(actor="user:innocent")
            )
        elif tampering == "delete":
            connection.execute(delete(audit_events).where(audit_events.c.seq == 3))
        elif tampering == "reorder":
            rows = {
                row.seq: row._mapping
                for row in connection.execute(
                    select(audit_events).where(audit_events.c.seq.in_([3, 4]))
                )
            }
            connection.execute(delete(audit_events).where(audit_events.c.seq.in_([3, 4])))
            for seq, other in ((3, 4), (4, 3)):
                connection.execute(audit_events.insert().values({**rows[other], "seq": seq}))
        else:
            connection.execute(delete(audit_events).where(audit_events.c.seq >= last - 1))
    report = verify(api)
    assert not report["ok"]
    if tampering == "truncate_tail":
        # Without a signed checkpoint past the cut, a cut tail is found through the head row.
        assert report["broken"]["seq"] in (last - 1, last)
    else:
        assert report["broken"]["seq"] == 3


def test_a_value_read_fails_closed_when_the_audit_trail_cannot_be_written(
    api: ApiClient, engine
) -> None:
    secret = api.create(name="FAIL_CLOSED", value=VALUE)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER no_audit BEFORE INSERT ON secret_audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION no_audit() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'audit store unavailable'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER no_audit BEFORE INSERT ON secret_audit_events "
                    "FOR EACH ROW EXECUTE FUNCTION no_audit()"
                )
            )
    try:
        response = api.get(f"/secrets/{secret['id']}/value")
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "audit_unavailable"
        assert VALUE not in response.get_data(as_text=True)
    finally:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "DROP TRIGGER no_audit"
                    + (" ON secret_audit_events" if engine.dialect.name != "sqlite" else "")
                )
            )
            if engine.dialect.name != "sqlite":
                connection.execute(text("DROP FUNCTION no_audit()"))
    assert api.get(f"/secrets/{secret['id']}/value").get_json()["value"] == VALUE


def test_concurrent_writers_make_one_unbroken_chain(app, api: ApiClient) -> None:
    secret = api.create(name="BUSY", value=VALUE)
    failures: list[int] = []

    def work() -> None:
        client = ApiClient(app.test_client())
        for _ in range(15):
            status = client.get(f"/secrets/{secret['id']}/value").status_code
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    report = verify(api)
    assert report["ok"] and report["checked"] >= 91
    seqs = [e["seq"] for e in events(api)]
    assert sorted(seqs) == list(range(1, len(seqs) + 1))


def test_audit_queries_are_for_admins_and_auditors(app, api: ApiClient) -> None:
    secret = api.create(name="Q", value=VALUE, scope={"type": "team", "id": "t-1"})
    api.create(name="ELSEWHERE", value=VALUE, scope={"type": "organization", "id": "acme"})
    for principal, role in (("user:aud", "auditor"), ("user:rea", "reader")):
        body = {"principal": principal, "role": role, "scope": {"type": "team", "id": "t-1"}}
        assert api.post("/role-bindings", json=body).status_code == 201
    auditor, reader = as_user(app, "aud"), as_user(app, "rea")
    scoped = {"scope_type": "team", "scope_id": "t-1"}
    found = events(auditor, **scoped)
    assert found and {e["scope"] for e in found} <= {"team/t-1", "project/p-42"}  # its subtree
    assert any(e["resource"] == f"secret:{secret['id']}" for e in found)
    assert auditor.get("/audit/events").status_code == 404  # not an auditor of global
    assert reader.get("/audit/events", query_string=scoped).status_code == 403
    assert reader.post("/audit/verify", json={}).status_code == 404
    page = api.get("/audit/events", query_string={"limit": "2"}).get_json()
    older = api.get(
        "/audit/events", query_string={"limit": "2", "before_seq": str(page["next_cursor"])}
    ).get_json()
    assert [e["seq"] for e in older["items"]] == [page["next_cursor"] - 1, page["next_cursor"] - 2]
    by_secret = events(api, secret=secret["id"])
    assert by_secret and all(e["resource"] == f"secret:{secret['id']}" for e in by_secret)
    lines = api.get("/audit/export", query_string={"secret": secret["id"]}).get_data(as_text=True)
    exported = [json.loads(line) for line in lines.splitlines()]
    assert [e["seq"] for e in exported] == sorted(e["seq"] for e in by_secret)


def test_compliance_reports(app, api: ApiClient, engine) -> None:
    soon = api.create(name="SOON", value=VALUE, expires_at="2001-01-01T00:00:00Z")
    later = api.create(name="LATER", value=VALUE, expires_at="2999-01-01T00:00:00Z")
    read = api.create(name="READ_OFTEN", value=VALUE)
    unread = api.create(name="NEVER_READ", value=VALUE, scope={"type": "team", "id": "t-1"})
    with engine.begin() as connection:  # old enough for the never-read window
        connection.execute(update(secrets).values(created_at=datetime(2000, 1, 1, tzinfo=UTC)))
    api.get(f"/secrets/{read['id']}/value")

    expiring = api.get("/reports/expiring?days=30").get_json()["items"]
    assert [(s["name"], s["id"]) for s in expiring] == [("SOON", soon["id"])]
    assert later["id"] not in {s["id"] for s in expiring}

    never = {s["name"] for s in api.get("/reports/never-read?days=30").get_json()["items"]}
    assert {"NEVER_READ", "SOON", "LATER"} <= never and "READ_OFTEN" not in never
    scoped = api.get("/reports/never-read?days=30&scope_type=team&scope_id=t-1").get_json()
    assert [s["name"] for s in scoped["items"]] == ["NEVER_READ"]
    assert unread["id"] == scoped["items"][0]["id"]

    account = api.post(
        "/service-accounts", json={"name": "idle", "scope": {"type": "team", "id": "t-1"}}
    ).get_json()
    api.post(f"/service-accounts/{account['id']}/tokens", json={"description": "old"})
    assert api.get("/reports/stale-tokens?days=0").get_json()["items"][0]["account"]["name"] == (
        "idle"
    )
    assert api.get("/reports/stale-tokens?days=30").get_json()["items"] == []
    assert as_user(app, "nobody").get("/reports/expiring").status_code == 404


def test_rotation_overdue_report(app, api: ApiClient, engine) -> None:
    late = api.create(name="LATE", value=VALUE, scope={"type": "team", "id": "t-1"})
    failing = api.create(name="FAILING", value=VALUE)
    on_time = api.create(name="ON_TIME", value=VALUE)
    api.create(name="NO_POLICY", value=VALUE)
    for secret in (late, failing, on_time):
        policy = {"rotator": "random", "interval_seconds": 86400}
        response = api.request("PUT", f"/secrets/{secret['id']}/rotation-policy", json=policy)
        assert response.status_code == 200, response.get_json()
    with engine.begin() as connection:
        connection.execute(
            update(rotation_policies)
            .where(rotation_policies.c.secret_id == UUID(late["id"]))
            .values(next_run_at=datetime(2001, 1, 1, tzinfo=UTC))
        )
        connection.execute(
            update(rotation_policies)
            .where(rotation_policies.c.secret_id == UUID(failing["id"]))
            .values(last_status="failed")
        )
    overdue = api.get("/reports/rotation-overdue?hours=1").get_json()["items"]
    assert sorted(s["name"] for s in overdue) == ["FAILING", "LATE"]
    scoped = api.get("/reports/rotation-overdue?scope_type=team&scope_id=t-1").get_json()
    assert [s["name"] for s in scoped["items"]] == ["LATE"]
    assert as_user(app, "nobody").get("/reports/rotation-overdue").status_code == 404
