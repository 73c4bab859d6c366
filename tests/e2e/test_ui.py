"""The web console's sessions and protections, through Flask's client (the browser tests in
tests/browser drive the same pages in Chromium): the session cookie's flags and encryption, the
idle timeout, a revoked token ending the session, CSRF, the console's CSP, `[ui] enabled`."""

from __future__ import annotations

import dataclasses
import logging
import re
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


def test_the_console_can_be_turned_off(settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, ui={**settings.ui, "enabled": False}))
    try:
        client = app.test_client()
        assert client.get("/ui/signin").status_code == 401  # as any path not served
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
