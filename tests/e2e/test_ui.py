"""The web console's sessions and protections, through Flask's client (the browser tests in
tests/browser drive the same pages in Chromium): the session cookie's flags and encryption, the
idle timeout, a revoked token ending the session, CSRF, the console's CSP, `[ui] enabled`."""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.domain.errors import ConfigurationError
from entrypoints.config import Settings, load_settings
from entrypoints.http.app import create_app
from entrypoints.ui.web import COOKIE
from tests.e2e.conftest import TOKEN, ApiClient, user_token


def csrf(client: FlaskClient, path: str = "/ui/signin") -> str:
    page = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def sign_in(client: FlaskClient, token: str = TOKEN) -> Any:
    return client.post("/ui/signin", data={"token": token, "csrf_token": csrf(client)})


def session_cookie(answer: Any) -> str:
    cookies = [value for value in answer.headers.getlist("Set-Cookie") if value.startswith(COOKIE)]
    assert len(cookies) == 1, answer.headers
    return cookies[0]


def test_the_session_cookie_is_httponly_lax_scoped_and_encrypted(app: Flask) -> None:
    client = app.test_client()
    answer = sign_in(client)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/ui/"
    cookie = session_cookie(answer)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    assert TOKEN not in cookie  # the credential is in it, encrypted
    assert client.get("/ui/scopes").status_code == 200


def test_the_session_cookie_is_secure_over_tls(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/ui/signin", base_url="https://localhost")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = client.post(
        "/ui/signin",
        data={"token": TOKEN, "csrf_token": token},
        base_url="https://localhost",
    )
    assert "Secure" in session_cookie(answer)


def test_a_tampered_cookie_is_no_session(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    cookie = client.get_cookie(COOKIE, path="/ui")
    assert cookie is not None
    client.set_cookie(COOKIE, cookie.value[:-4] + "AAAA", path="/ui")
    assert client.get("/ui/scopes").headers["Location"] == "/ui/signin"


def test_an_idle_session_ends(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    client = app.test_client()
    sign_in(client)
    assert client.get("/ui/scopes").status_code == 200
    import cryptography.fernet

    now = cryptography.fernet.time.time()
    idle = app.extensions["container"].settings().ui["idle_timeout_minutes"] * 60
    monkeypatch.setattr(cryptography.fernet.time, "time", lambda: now + idle + 5)
    answer = client.get("/ui/scopes")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/ui/signin"
    assert "Your session ended after" in client.get("/ui/signin").text


def test_a_revoked_token_ends_the_session_at_once(app: Flask) -> None:
    api = ApiClient(app.test_client())
    api.register_scope("organization", "acme", ("global", "global"))
    account = api.post(
        "/service-accounts",
        json={"name": "deployer", "scope": {"type": "organization", "id": "acme"}},
    ).json
    issued = api.post(f"/service-accounts/{account['id']}/tokens", json={}).json
    client = app.test_client()
    assert sign_in(client, issued["token"]).status_code == 302
    assert client.get("/ui/scopes").status_code == 200
    revoked = api.delete(f"/service-accounts/{account['id']}/tokens/{issued['id']}")
    assert revoked.status_code == 204
    assert client.get("/ui/scopes").headers["Location"] == "/ui/signin"


def test_a_post_without_a_csrf_token_does_nothing(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    form = {"parent": "global/global", "type": "organization", "id": "forged"}
    answer = client.post("/ui/scopes", data=form)
    assert answer.status_code == 400
    answer = client.post("/ui/scopes", data={**form, "csrf_token": "forged"})
    assert answer.status_code == 400
    assert ApiClient(app.test_client()).get("/scopes/organization/forged").status_code == 404
    # with the token it is done: the refusals were the missing token's
    answer = client.post("/ui/scopes", data={**form, "csrf_token": csrf(client, "/ui/scopes")})
    assert answer.status_code == 302
    assert ApiClient(app.test_client()).get("/scopes/organization/forged").status_code == 200


def test_a_refused_sign_in_is_counted_and_never_logged(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    wrong = "wrong-token-abcdef0123456789"
    answer = sign_in(client, wrong)
    assert answer.status_code == 401
    assert "That token was not accepted." in answer.text
    assert wrong not in answer.text
    assert wrong not in caplog.text
    assert TOKEN not in caplog.text
    events = ApiClient(app.test_client()).get("/audit/events?action=auth.authenticate").json
    assert [event["outcome"] for event in events["items"]] == ["denied"]


def test_console_pages_have_a_strict_csp_and_no_cache(app: Flask) -> None:
    answer = app.test_client().get("/ui/signin")
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["Cache-Control"] == "no-store"
    assert "<script>" not in answer.text  # no inline script: only ui.js
    assert " style=" not in answer.text


def test_the_api_keeps_no_session(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    answer = client.get("/api/v1/secrets", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert "Set-Cookie" not in answer.headers


def test_a_browser_opening_the_address_lands_on_the_console(app: Flask) -> None:
    client = app.test_client()
    bare = client.get("/ui")  # as the README writes it: Flask's redirect, no token asked
    root = client.get("/")
    assert bare.status_code == 308 and bare.headers["Location"].endswith("/ui/")
    assert root.status_code == 302 and root.headers["Location"].endswith("/ui/")
    assert client.get("/ui/", follow_redirects=True).request.path == "/ui/signin"
    assert client.get("/api/v1/secrets").status_code == 401  # the API still asks for one


def test_the_console_can_be_turned_off(settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, ui={**settings.ui, "enabled": False}))
    try:
        client = app.test_client()
        assert client.get("/ui/signin").status_code == 401  # as any path not served
        assert client.get("/").status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/ui/signin", headers=bearer).status_code == 404
    finally:
        app.extensions["container"].shutdown_resources()


def test_the_ui_settings_read_from_the_environment(tmp_path: Any) -> None:
    environ = {
        "SECRETS_DATA_DIR": str(tmp_path),
        "SECRETS_UI__ENABLED": "false",
        "SECRETS_UI__IDLE_TIMEOUT_MINUTES": "5",
        "SECRETS_UI__OIDC__ISSUER": "https://idp.example.com",
        "SECRETS_UI__OIDC__CLIENT_ID": "console",
        "SECRETS_UI__OIDC__CLIENT_SECRET_ENV": "CONSOLE_CLIENT_SECRET",
    }
    settings = load_settings(environ)
    assert settings.ui["enabled"] is False
    assert settings.ui["idle_timeout_minutes"] == 5
    assert settings.ui["oidc"]["client_id"] == "console"
    both = {**environ, "SECRETS_UI__OIDC__CLIENT_SECRET_FILE": "/run/secret"}
    with pytest.raises(ConfigurationError, match=r"ui\.oidc"):
        load_settings(both)


def test_a_missing_oidc_client_secret_stops_the_start(settings: Settings) -> None:
    oidc = {"issuer": "https://idp.example.com", "client_id": "c", "client_secret_env": "NOPE_X"}
    configured = dataclasses.replace(settings, ui={**settings.ui, "oidc": oidc})
    with pytest.raises(ConfigurationError, match="NOPE_X is not set"):
        create_app(configured)


def test_too_many_failed_sign_ins_are_answered_429(app: Flask) -> None:
    client = app.test_client()
    token = csrf(client)
    limit = app.extensions["container"].settings().auth["failures_per_minute"]
    answers = [
        client.post("/ui/signin", data={"token": f"wrong-{n}", "csrf_token": token}).status_code
        for n in range(limit + 1)
    ]
    assert answers[:limit] == [401] * limit
    assert answers[limit] == 429


def test_the_create_scope_form_is_offered_where_the_user_administers(app: Flask) -> None:
    api = ApiClient(app.test_client())
    api.register_scope("organization", "acme", ("global", "global"))
    api.register_scope("organization", "other", ("global", "global"))
    for principal, role in (("user:ada", "admin"), ("user:vic", "viewer")):
        body = {
            "principal": principal,
            "role": role,
            "scope": {"type": "organization", "id": "acme"},
        }
        assert api.post("/role-bindings", json=body).status_code == 201
    admin, viewer = app.test_client(), app.test_client()
    sign_in(admin, user_token("ada"))
    sign_in(viewer, user_token("vic"))
    offered = admin.get("/ui/scopes").text
    assert '<option value="organization/acme">' in offered
    assert "organization/other" not in offered  # not hers to see, nor to create in
    assert "Create a scope" not in viewer.get("/ui/scopes").text
    form = {"parent": "organization/acme", "type": "team", "id": "t1"}
    refused = viewer.post("/ui/scopes", data={**form, "csrf_token": csrf(viewer, "/ui/scopes")})
    assert refused.status_code == 302  # back to the tree, with core's refusal
    assert "may not create scope" in viewer.get("/ui/scopes").text
    done = admin.post("/ui/scopes", data={**form, "csrf_token": csrf(admin, "/ui/scopes")})
    assert done.status_code == 302
    assert "Scope team/t1 created." in admin.get("/ui/scopes").text


# -- secrets: the table, the typed create forms, tags (helper ui3) ------------------------------

CONNECTION_PASSWORD = "S3cr3t-conn-pass-991"
CONNECTION = f"postgresql://app_user:{CONNECTION_PASSWORD}@db.internal:5432/billing"


def secrets_of_acme(app: Flask) -> tuple[FlaskClient, ApiClient]:
    api = ApiClient(app.test_client())
    api.register_scope("organization", "acme", ("global", "global"))
    client = app.test_client()
    sign_in(client)
    return client, api


def create_form(client: FlaskClient, **form: str) -> Any:
    path = "/ui/scopes/organization/acme/secrets/new"
    return client.post(path, data={"csrf_token": csrf(client, path), **form})


def key_and_certificate() -> tuple[str, str, str]:
    """A certificate, its own key, and another key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.unit.test_secret_types import certificate_for, pem_key

    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    return certificate_for(key), pem_key(key), pem_key(other)


def test_the_certificate_form_refuses_a_key_that_is_not_the_certificates(app: Flask) -> None:
    client, api = secrets_of_acme(app)
    certificate, key, other_key = key_and_certificate()
    fields = {"type": "certificate", "name": "TLS", "field_certificate": certificate}
    for action in ("check", "create"):
        answer = create_form(client, **fields, field_private_key=other_key, action=action)
        assert answer.status_code in (400, 422)
        assert "private_key: does not match the certificate" in answer.text  # the type's words
        assert other_key.splitlines()[1] not in answer.text  # never the key
        assert certificate.splitlines()[1] not in answer.text
    assert api.get("/secrets?scope_type=organization").json["total"] == 0  # nothing stored
    checked = create_form(client, **fields, field_private_key=key, action="check")
    assert checked.status_code == 200
    assert "What the service reads from the value" in checked.text
    assert "CN=svc.internal" in checked.text  # the subject, as the type derives it
    assert key.splitlines()[1] not in checked.text
    assert api.get("/secrets?scope_type=organization").json["total"] == 0  # a check stores nothing


def test_the_connection_string_form_shows_the_parts_never_the_password(app: Flask) -> None:
    client, api = secrets_of_acme(app)
    form = {"type": "connection_string", "name": "BILLING_DB", "value": CONNECTION}
    blank = client.get("/ui/scopes/organization/acme/secrets/new?type=connection_string").text
    assert 'name="field_host"' not in blank  # one value, not a JSON object of fields
    assert "Check the value" in blank
    checked = create_form(client, **form, action="check")
    assert checked.status_code == 200
    parts = dict(re.findall(r"<dt>(\w+)</dt><dd>([^<]*)</dd>", checked.text))
    assert parts == {
        "scheme": "postgresql",
        "host": "db.internal",
        "port": "5432",
        "database": "billing",
        "username": "app_user",
    }
    assert CONNECTION_PASSWORD not in checked.text
    assert "db.internal:5432" not in checked.text  # the value itself is not sent back
    field = re.search(r'<input id="value"[^>]*>', checked.text)
    assert field, checked.text
    assert 'type="password"' in field.group(0)
    assert "value=" not in field.group(0)  # left empty
    bad_port = {**form, "value": "postgresql://db.internal:99999/x"}
    refused = create_form(client, **bad_port, action="check")
    assert refused.status_code == 422
    assert "port: is not a port" in refused.text
    # as ui.js asks (the typed value stays in the browser's form): the same check, as JSON
    path = "/ui/scopes/organization/acme/secrets/new"
    scripted = client.post(
        path,
        data={"csrf_token": csrf(client, path), **form, "action": "check"},
        headers={"Accept": "application/json"},
    )
    assert scripted.status_code == 200
    assert scripted.json == {"parts": parts}
    refused = client.post(
        path,
        data={"csrf_token": csrf(client, path), **bad_port, "action": "check"},
        headers={"Accept": "application/json"},
    )
    assert refused.status_code == 422
    assert "port: is not a port" in refused.json["error"]
    created = create_form(client, **form)
    assert created.status_code == 302
    listed = api.get("/secrets?scope_type=organization").json["items"]
    assert [(s["name"], s["tags"]["type.host"]) for s in listed] == [("BILLING_DB", "db.internal")]


def test_the_secrets_table_shows_last_rotated_and_searches_by_tag(app: Flask) -> None:
    client, api = secrets_of_acme(app)
    acme = {"type": "organization", "id": "acme"}
    billing = api.create(name="BILLING", scope=acme, value="v-1", tags={"team": "billing"})
    api.create(name="SEARCH", scope=acme, value="v-2", tags={"team": "search"})
    policy = {"rotator": "random", "interval_seconds": 3600}
    rotation = f"/secrets/{billing['id']}/rotation-policy"
    assert api.request("PUT", rotation, json=policy).status_code == 200
    assert api.post(f"/secrets/{billing['id']}/rotate", json={}).status_code == 201
    last_run = api.get(rotation).json["last_run_at"]
    table = client.get("/ui/scopes/organization/acme/secrets").text
    assert '<th scope="col">Last rotated</th>' in table
    rows = {
        name: row
        for row in re.findall(r"<tr>.*?</tr>", table, re.S)
        for name in ("BILLING", "SEARCH")
        if f">{name}</a>" in row
    }
    assert last_run[:16].replace("T", " ") + " UTC" in rows["BILLING"]
    assert "<td>—</td>" in rows["SEARCH"]  # never rotated
    assert "team=billing" in rows["BILLING"]
    found = client.get("/ui/scopes/organization/acme/secrets?tag=team%3Dsearch").text
    assert ">SEARCH</a>" in found
    assert ">BILLING</a>" not in found
    refused = client.get("/ui/scopes/organization/acme/secrets?tag=team")
    assert refused.status_code == 400
    assert "search a tag as key=value" in refused.text


def test_tags_are_edited_at_the_pages_revision_and_derived_ones_kept(app: Flask) -> None:
    client, api = secrets_of_acme(app)
    acme = {"type": "organization", "id": "acme"}
    secret = api.create(
        name="DB", scope=acme, type="connection_string", value=CONNECTION, tags={"team": "a"}
    )
    path = f"/ui/secrets/{secret['id']}"
    page = client.get(path).text
    assert re.search(r'<textarea id="edit-tags"[^>]*>team=a\n</textarea>', page)
    form = {
        "csrf_token": csrf(client, path),
        "revision": str(secret["revision"]),
        "description": "",
        "tags": "team=payments\nowner=ada",
    }
    assert client.post(f"{path}/metadata", data=form).status_code == 302
    tags = api.get(f"/secrets/{secret['id']}").json["tags"]
    own = {k: v for k, v in tags.items() if not k.startswith("type.")}
    assert own == {"team": "payments", "owner": "ada"}
    assert tags["type.host"] == "db.internal"
    # the same form again: its revision is stale, nothing is overwritten
    stale = client.post(f"{path}/metadata", data={**form, "tags": "team=stale"})
    assert stale.status_code == 302
    assert "changed by someone else" in client.get(path).text
    assert api.get(f"/secrets/{secret['id']}").json["tags"]["team"] == "payments"
    revision = str(api.get(f"/secrets/{secret['id']}").json["revision"])
    forged = {**form, "revision": revision, "tags": "type.host=evil.example"}
    client.post(f"{path}/metadata", data=forged)
    assert "tags come from the value and cannot be set" in client.get(path).text
    assert api.get(f"/secrets/{secret['id']}").json["tags"]["type.host"] == "db.internal"


def test_the_secret_page_names_the_binding_and_highlights_expiry(app: Flask) -> None:
    client, api = secrets_of_acme(app)
    acme = {"type": "organization", "id": "acme"}
    body = {"principal": "user:ada", "role": "reader", "scope": acme}
    binding = api.post("/role-bindings", json=body).json
    soon = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    secret = api.create(name="SOON", scope=acme, value="v", expires_at=soon)
    page = client.get(f"/ui/secrets/{secret['id']}").text
    assert "This secret expires soon" in page
    readers = re.search(r'<table class="readers">.*?</table>', page, re.S)
    assert readers, page
    assert "user:ada" in readers.group(0)
    assert "reader at organization/acme" in readers.group(0)
    assert binding["id"] in readers.group(0)
