"""The console's audit, access, resolve, import/export and operations pages through Flask's
client (tests/browser drives them in Chromium): each page renders over the API's use cases, a
refused caller gets the service's refusal, a new API token is shown once."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import TOKEN, ApiClient, user_token

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Two backends: somewhere to migrate to."""
    return replace(settings, backends={"local": {"plugin": "local"}, "spare": {"plugin": "local"}})


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["container"].shutdown_resources()


def csrf(client: FlaskClient, path: str = "/ui/signin") -> str:
    page = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def signed_in(app: Flask, token: str = TOKEN) -> FlaskClient:
    client = app.test_client()
    answer = client.post("/ui/signin", data={"token": token, "csrf_token": csrf(client)})
    assert answer.status_code == 302, answer.text
    return client


def post(client: FlaskClient, path: str, **data: Any) -> Any:
    return client.post(path, data={"csrf_token": csrf(client, "/ui/scopes"), **data})


def test_the_audit_page_lists_filters_pages_and_verifies(app: Flask, api: ApiClient) -> None:
    client = signed_in(app)
    page = client.get("/ui/audit")
    assert page.status_code == 200, page.text
    assert "scope.create" in page.text
    filtered = client.get("/ui/audit?action=scope.create&outcome=success")
    assert filtered.status_code == 200
    assert "organization/acme" in filtered.text
    none = client.get("/ui/audit?actor=user:nobody")
    assert "No event matches." in none.text
    verified = post(client, "/ui/audit/verify")
    assert verified.status_code == 200
    assert 'data-verification="ok"' in verified.text
    exported = client.get("/ui/audit/export?format=csv&action=scope.create")
    assert exported.status_code == 200, exported.text
    assert exported.headers["Content-Disposition"].startswith("attachment;")
    assert "scope.create" in exported.text
    for report in ("expiring", "never-read", "rotation-overdue", "stale-tokens"):
        answer = client.get(f"/ui/reports?report={report}")
        assert answer.status_code == 200, (report, answer.text)


def test_a_viewer_may_not_read_the_audit_trail(app: Flask, api: ApiClient) -> None:
    api.post(
        "/role-bindings",
        json={
            "principal": "user:vera",
            "role": "viewer",
            "scope": {"type": "organization", "id": "acme"},
        },
    )
    token = user_token("vera")
    client, vera = signed_in(app, token), ApiClient(app.test_client(), token)
    refused = vera.get("/audit/events").status_code
    assert refused in (403, 404)
    assert client.get("/ui/audit").status_code == refused  # as the API answers her
    assert post(client, "/ui/audit/verify").status_code == vera.post("/audit/verify").status_code
    assert client.get("/ui/reports").status_code == vera.get("/reports/expiring").status_code
    assert "Verify the chain" not in client.get("/ui/audit").text


def test_access_grants_and_a_token_is_shown_once(app: Flask, api: ApiClient) -> None:
    client = signed_in(app)
    assert client.get("/ui/access").status_code == 200
    page = client.get("/ui/scopes/organization/acme/access")
    assert page.status_code == 200, page.text
    granted = post(
        client,
        "/ui/scopes/organization/acme/access/bindings",
        principal="user:bob",
        role="reader",
        name_pattern="DB_*",
    )
    assert granted.status_code == 302, granted.text
    listed = client.get("/ui/scopes/organization/acme/access")
    assert "user:bob" in listed.text and "DB_*" in listed.text
    created = post(
        client, "/ui/scopes/organization/acme/access/service-accounts", name="ci", description="x"
    )
    assert created.status_code == 302, created.text
    account_url = created.headers["Location"]
    issued = post(client, f"{account_url}/tokens", description="deploy")
    assert issued.status_code == 200
    token = re.search(r'id="new-token"[^>]*>([^<]+)</pre>', issued.text)
    assert token, issued.text
    assert ApiClient(app.test_client(), token.group(1)).get("/auth/whoami").status_code == 200
    again = client.get(account_url)
    assert token.group(1) not in again.text
    assert "deploy" in again.text


def test_resolve_explains_where_each_name_comes_from(app: Flask, api: ApiClient) -> None:
    api.create(name="DB_URL", scope={"type": "organization", "id": "acme"}, value="org-value")
    api.create(
        name="DB_URL",
        scope={"type": "project", "id": "p-42"},
        environment="prod",
        value="project-value",
    )
    api.create(name="ONLY_ORG", scope={"type": "organization", "id": "acme"}, value="v")
    client = signed_in(app)
    page = client.get("/ui/resolve")
    assert page.status_code == 200 and "project/p-42" in page.text
    resolved = client.get("/ui/resolve?scope=project/p-42&environment=prod&user=")
    assert resolved.status_code == 200, resolved.text
    row = re.search(r"DB_URL</a></td>(.*?)</tr>", resolved.text, re.S)
    assert row, resolved.text
    assert "p-42" in row.group(1) and "organization/acme" in row.group(1)  # wins, shadows
    assert "ONLY_ORG" in resolved.text
    assert "project-value" not in resolved.text and "org-value" not in resolved.text


def test_an_import_is_previewed_then_applied(app: Flask, api: ApiClient) -> None:
    client = signed_in(app)
    assert client.get("/ui/scopes/organization/acme/transfer").status_code == 200
    dotenv = "NEW_ONE=first-value-123\nOTHER=second-value-456\n"
    preview = post(
        client,
        "/ui/scopes/organization/acme/import",
        step="preview",
        text=dotenv,
        environment="prod",
        strategy="skip",
    )
    assert preview.status_code == 200, preview.text
    assert "create 2" in preview.text
    assert "first-value-123" not in preview.text  # the staged file is sealed
    listed = api.get("/secrets?scope_type=organization&scope_id=acme&environment=prod")
    assert listed.get_json()["total"] == 0  # nothing changed by the preview
    staged = re.search(r'name="staged" value="([^"]+)"', preview.text)
    assert staged
    applied = post(
        client,
        "/ui/scopes/organization/acme/import",
        step="apply",
        staged=staged.group(1),
        environment="prod",
        strategy="skip",
    )
    assert applied.status_code == 200, applied.text
    assert "Imported" in applied.text
    listed = api.get("/secrets?scope_type=organization&scope_id=acme&environment=prod")
    assert listed.get_json()["total"] == 2
    tampered = post(
        client,
        "/ui/scopes/organization/acme/import",
        step="apply",
        staged=staged.group(1)[:-4] + "AAAA",
        environment="prod",
    )
    assert tampered.status_code == 400 and "preview it again" in tampered.text
    exported = post(
        client,
        "/ui/scopes/organization/acme/export",
        format="dotenv",
        environment="prod",
        include_values="1",
    )
    assert exported.status_code == 200, exported.text
    assert "attachment" in exported.headers["Content-Disposition"]
    assert "NEW_ONE=first-value-123" in exported.text


def test_operations_plan_start_and_follow_a_migration(app: Flask, api: ApiClient) -> None:
    api.create(name="MOVE_ME", scope={"type": "project", "id": "p-42"}, value="to-be-moved")
    client = signed_in(app)
    page = client.get("/ui/operations")
    assert page.status_code == 200, page.text
    assert "spare" in page.text and "healthy" in page.text
    form = {"source": "local", "target": "spare", "scope": "project/p-42"}
    plan = post(client, "/ui/operations/migrations", step="plan", **form)
    assert plan.status_code == 200, plan.text
    assert "1 secret (1 version) would move" in plan.text
    assert "No migration of a scope you administer." in plan.text  # the dry run started none
    started = post(client, "/ui/operations/migrations", step="start", **form)
    assert started.status_code == 302, started.text
    job_page = client.get(started.headers["Location"])
    assert job_page.status_code == 200 and "data-poll-url" in job_page.text
    assert client.get(started.headers["Location"] + "/progress").get_json()["state"] == "pending"
    app.extensions["container"].worker().run_once()
    done = client.get(started.headers["Location"] + "/progress").get_json()
    assert done == {
        "state": "succeeded",
        "total": 1,
        "done": 1,
        "failed": 0,
        "remaining": 0,
        "finished": True,
    }
    assert "data-poll-url" not in client.get(started.headers["Location"]).text


def test_a_viewer_sees_no_operations_actions(app: Flask, api: ApiClient) -> None:
    api.post(
        "/role-bindings",
        json={
            "principal": "user:vic",
            "role": "viewer",
            "scope": {"type": "project", "id": "p-42"},
        },
    )
    client = signed_in(app, user_token("vic"))
    page = client.get("/ui/operations")
    assert page.status_code == 200
    assert "Start migration" not in page.text and "Dry run" not in page.text
    assert "Only administrators and auditors of the global scope see the workers." in page.text
    refused = post(
        client,
        "/ui/operations/migrations",
        step="start",
        source="local",
        target="spare",
        scope="project/p-42",
    )
    assert refused.status_code == 403 and "forbidden" in refused.text.lower()
    assert api.get("/migrations").get_json()["items"] == []
    assert client.get("/ui/scopes/project/p-42/access").status_code == 403


def test_an_auditor_of_one_scope_starts_at_its_events(app: Flask, api: ApiClient) -> None:
    scope = {"type": "organization", "id": "acme"}
    api.post("/role-bindings", json={"principal": "user:ada", "role": "auditor", "scope": scope})
    api.create(name="ACME_KEY", scope=scope, value="v")
    client = signed_in(app, user_token("ada"))
    page = client.get("/ui/audit")
    assert page.status_code == 200, page.text
    assert 'value="organization/acme"' in page.text and "secret.create" in page.text
    assert "Verify the chain" not in page.text  # the global scope's auditors only
    assert client.get("/ui/reports").status_code == 200
    whole = ApiClient(app.test_client(), user_token("ada")).get("/audit/events").status_code
    assert whole in (403, 404)
    assert client.get("/ui/audit?scope=").status_code == whole  # the whole trail: as the API


def test_an_event_about_a_secret_links_to_it_and_no_other_does(app: Flask, api: ApiClient) -> None:
    made = api.create(name="LINKED", scope={"type": "organization", "id": "acme"}, value="v")
    page = signed_in(app).get("/ui/audit")
    assert page.status_code == 200
    assert f'href="/ui/secrets/{made["id"]}"' in page.text
    assert 'href="/ui/secrets/acme' not in page.text


def test_the_audit_pages_go_back_in_time_and_filter_by_time(
    app: Flask, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from entrypoints.ui import audit

    monkeypatch.setattr(audit, "PAGE_SIZE", 2)
    client = signed_in(app)
    first = client.get("/ui/audit?action=scope.create")
    seqs = [int(seq) for seq in re.findall(r"<tr>\s*<td>(\d+)</td>", first.text)]
    assert len(seqs) == 2 and seqs[0] > seqs[1]  # newest first
    older = re.search(r'href="(/ui/audit\?[^"]*before_seq=\d+[^"]*)">Older', first.text)
    assert older, first.text
    second = client.get(older.group(1).replace("&amp;", "&"))
    more = [int(seq) for seq in re.findall(r"<tr>\s*<td>(\d+)</td>", second.text)]
    assert more and max(more) < min(seqs)
    assert "Newest" in second.text
    future = client.get("/ui/audit?since=2999-01-01T00:00")
    assert "No event matches." in future.text
    bad = client.get("/ui/audit?since=yesterday")
    assert bad.status_code == 400


def test_an_uploaded_file_is_previewed_by_its_name(app: Flask, api: ApiClient) -> None:
    client = signed_in(app)

    def upload(content: bytes, filename: str) -> Any:
        data = {
            "csrf_token": csrf(client, "/ui/scopes"),
            "step": "preview",
            "environment": "dev",
            "file": (io.BytesIO(content), filename),
        }
        return client.post(
            "/ui/scopes/organization/acme/import", data=data, content_type="multipart/form-data"
        )

    preview = upload(b"FROM_FILE=f-1\n", "prod.env")
    assert preview.status_code == 200, preview.text
    assert "create 1" in preview.text and "FROM_FILE" in preview.text
    assert 'name="filename" value="prod.env"' in preview.text
    broken = upload(b"[1, 2]", "backup.json")
    assert "The file has 1 error: nothing will be imported from it." in broken.text
    assert "Apply the import" not in broken.text
