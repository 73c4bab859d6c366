"""The console's access pages in Chromium: an administrator grants a role binding and a second
user's view changes (the scope and its secret appear only after the grant); a service account's
new token is shown once; a viewer is offered no administrator's action (operations, access,
audit). Each page is checked with axe-core and photographed for the README."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import (
    VIEWPORT,
    Console,
    check_accessibility,
    screenshot,
    sign_in,
    user_token,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def second_user(browser: Any, console: Console, subject: str) -> Any:
    """Another person's browser (a context of its own), signed in with an identity token."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    context.set_default_timeout(15_000)
    other = context.new_page()
    sign_in(other, console, user_token(subject))
    return other


def test_a_grant_changes_a_second_users_view(page: Any, browser: Any, console: Console) -> None:
    console.scope("organization", "granted", ("global", "global"))
    made = console.api(
        "POST",
        "/secrets",
        json={
            "name": "SHARED_KEY",
            "scope": {"type": "organization", "id": "granted"},
            "value": "v",
        },
    )
    assert made.status_code == 201, made.text
    dana = second_user(browser, console, "dana")
    try:
        assert dana.get_by_text("You can see no scope yet").is_visible()
        dana.goto(f"{console.url}/ui/scopes/organization/granted/secrets")
        assert dana.get_by_text("SHARED_KEY").count() == 0

        sign_in(page, console)
        page.get_by_role("link", name="Access", exact=True).click()
        page.get_by_role("link", name=re.compile("organization granted")).click()
        page.get_by_label("Principal", exact=True).fill("user:dana")
        page.get_by_label("Role", exact=True).select_option("viewer")
        page.get_by_role("button", name="Grant").click()
        page.get_by_text("user:dana is now viewer at organization/granted.").wait_for()
        assert page.get_by_role("cell", name="user:dana", exact=True).is_visible()
        check_accessibility(page)
        screenshot(page, "access")

        dana.goto(f"{console.url}/ui/scopes")
        assert dana.get_by_role("link", name=re.compile("organization granted")).is_visible()
        dana.goto(f"{console.url}/ui/scopes/organization/granted/secrets")
        assert dana.get_by_role("link", name="SHARED_KEY").is_visible()

        # removing the binding takes it away again
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Remove user:dana viewer").click()
        page.get_by_text("Role binding removed.").wait_for()
        dana.goto(f"{console.url}/ui/scopes/organization/granted/secrets")
        assert dana.get_by_text("SHARED_KEY").count() == 0
    finally:
        dana.context.close()


def test_a_new_token_is_shown_once(page: Any, console: Console) -> None:
    console.scope("organization", "tokens", ("global", "global"))
    sign_in(page, console)
    page.goto(f"{console.url}/ui/scopes/organization/tokens/access")
    page.get_by_label("Account name").fill("deployer")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/ui/service-accounts/[0-9a-f-]{36}$"))
    account_url = page.url
    page.get_by_label("Description").fill("pipeline")
    page.get_by_role("button", name="Issue token").click()
    token = page.get_by_label("New API token").inner_text().strip()
    assert len(token) > 20
    assert page.get_by_text("shown this once").is_visible()
    check_accessibility(page)
    whoami = console.api("GET", "/auth/whoami", token=token)
    assert whoami.status_code == 200 and whoami.json()["principal"].startswith("service:deployer")
    page.goto(account_url)
    assert token not in page.content()
    assert page.get_by_role("cell", name="pipeline", exact=True).is_visible()
    screenshot(page, "service-account")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=re.compile("^Revoke token")).click()
    page.get_by_text("Token revoked").wait_for()
    assert console.api("GET", "/auth/whoami", token=token).status_code == 401


def test_a_viewer_sees_no_administrators_actions(page: Any, console: Console) -> None:
    console.scope("organization", "viewed", ("global", "global"))
    console.grant("user:vince", "viewer", ("organization", "viewed"))
    sign_in(page, console, user_token("vince"))
    page.get_by_role("link", name="Operations").click()
    page.get_by_text("Only administrators and auditors of the global scope").wait_for()
    assert page.get_by_role("button", name="Start migration").count() == 0
    assert page.get_by_role("button", name="Dry run").count() == 0
    check_accessibility(page)
    page.get_by_role("link", name="Access", exact=True).click()
    page.get_by_text("You administer no scope").wait_for()
    assert page.get_by_role("cell", name="viewer", exact=True).is_visible()  # her own binding
    check_accessibility(page)
    page.goto(f"{console.url}/ui/scopes/organization/viewed/access")
    assert page.get_by_role("button", name="Grant").count() == 0
    page.goto(f"{console.url}/ui/audit")
    assert page.get_by_role("button", name="Verify the chain").count() == 0
    assert page.get_by_role("table").count() == 0
