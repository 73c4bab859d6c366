"""The web console as people use it, in Chromium: sign in (token, development root token, the
identity provider), scopes, a typed secret created, revealed (and its audited read found through
the API), rolled back; a concurrent change shown, not overwritten; a viewer who cannot reveal;
a user of another organization who sees nothing. Each view is checked with axe-core and
photographed for the README (docs/screenshots)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import (
    ROOT_TOKEN,
    Console,
    check_accessibility,
    screenshot,
    sign_in,
    user_token,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "pa55-browser-Test-value-71"
PASSWORD_2 = "pa55-browser-second-value-82"


def secret_id_of(page: Any) -> str:
    match = re.search(r"/ui/secrets/([0-9a-f-]{36})", page.url)
    assert match, page.url
    return match.group(1)


def create_typed_secret(page: Any, console: Console, org: str, name: str) -> str:
    """Through the UI: the username_password form (the type's declared fields)."""
    page.goto(f"{console.url}/ui/scopes/organization/{org}/secrets")
    page.get_by_role("link", name="New secret").click()
    page.get_by_label("Type", exact=True).select_option("username_password")
    page.wait_for_url(re.compile(r"type=username_password"))
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label(re.compile("^Environment")).fill("prod")
    page.get_by_label("username", exact=True).fill("svc-billing")
    page.get_by_label("password", exact=True).fill(PASSWORD)
    page.get_by_label(re.compile("^Tags")).fill("team=billing")
    page.get_by_role("button", name="Create secret").click()
    page.wait_for_url(re.compile(r"/ui/secrets/[0-9a-f-]{36}$"))
    return secret_id_of(page)


def test_root_signs_in_creates_reveals_and_rolls_back(page: Any, console: Console) -> None:
    page.goto(f"{console.url}/ui/")
    assert page.url == f"{console.url}/ui/signin"
    check_accessibility(page)
    screenshot(page, "signin")
    sign_in(page, console)

    # a scope, created below the global one
    page.get_by_label("Parent", exact=True).select_option("global/global")
    page.get_by_label("Type", exact=True).select_option("organization")
    page.get_by_label("Id", exact=True).fill("acme")
    page.get_by_role("button", name="Create scope").click()
    page.get_by_text("Scope organization/acme created.").wait_for()
    assert page.get_by_role("link", name=re.compile("organization acme")).is_visible()
    check_accessibility(page)

    # a typed secret, its value never on the page until revealed
    page.get_by_role("link", name=re.compile("organization acme")).click()
    page.get_by_role("link", name="New secret").click()
    page.get_by_label("Type", exact=True).select_option("username_password")
    page.wait_for_url(re.compile(r"type=username_password"))
    check_accessibility(page)
    screenshot(page, "secret-new")
    page.goto(f"{console.url}/ui/scopes")
    secret_id = create_typed_secret(page, console, "acme", "BILLING_DB")
    page.get_by_text("Secret BILLING_DB created (version 1).").wait_for()
    assert PASSWORD not in page.content()
    check_accessibility(page)

    page.get_by_role("button", name="Reveal").click()
    value = page.locator("#revealed-value")
    assert PASSWORD in value.inner_text()
    assert "svc-billing" in value.inner_text()
    check_accessibility(page)
    screenshot(page, "secret-revealed")

    events = console.api(
        "GET", "/audit/events", params={"secret": secret_id, "action": "secret.read_value"}
    ).json()["items"]
    assert [event["actor"] for event in events] == ["root"]
    assert events[0]["outcome"] == "success"

    # a second value, written through the API; then rolled back to the first in the console
    answer = console.api(
        "POST",
        f"/secrets/{secret_id}/versions",
        json={"value": f'{{"username": "svc-billing", "password": "{PASSWORD_2}"}}'},
    )
    assert answer.status_code == 201, answer.text
    page.goto(f"{console.url}/ui/secrets/{secret_id}")
    page.get_by_role("button", name="Roll back to version 1").click()
    page.get_by_text("Rolled back: version 3 has version 1's value.").wait_for()
    check_accessibility(page)
    screenshot(page, "secret-detail")
    current = console.api("GET", f"/secrets/{secret_id}/value").json()
    assert current["version"] == 3
    assert PASSWORD in current["value"]
    # what an admin also sees: who can read it, its recent audit events (the reveal among them)
    events = page.get_by_role("table", name=re.compile("Latest audit events"))
    assert events.get_by_role("row", name=re.compile(r"root secret\.read_value success")).count()
    assert page.get_by_role("heading", name="Who can read the value").is_visible()

    # the scope's table, with the secret
    page.goto(f"{console.url}/ui/scopes")
    check_accessibility(page)
    screenshot(page, "scopes")
    page.goto(f"{console.url}/ui/scopes/organization/acme/secrets")
    row = page.get_by_role("row", name=re.compile("BILLING_DB"))
    assert "username_password" in row.inner_text()
    assert "team=billing" in row.inner_text()
    check_accessibility(page)
    screenshot(page, "secrets")


def test_a_concurrent_change_is_shown_not_overwritten(page: Any, console: Console) -> None:
    console.scope("organization", "initech", ("global", "global"))
    sign_in(page, console)
    secret_id = create_typed_secret(page, console, "initech", "TPS_DB")
    answer = console.api(
        "POST",
        f"/secrets/{secret_id}/versions",
        json={"value": f'{{"username": "svc", "password": "{PASSWORD_2}"}}'},
    )
    assert answer.status_code == 201
    # the page still shows revision 1's state: version 2 appeared meanwhile (not on the page)
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete …? It can be restored …"
    page.get_by_role("button", name="Delete this secret").click()
    page.get_by_text("changed by someone else").wait_for()
    assert console.api("GET", f"/secrets/{secret_id}").json()["deleted_at"] is None


def test_a_viewer_gets_no_reveal_and_core_refuses_the_read(page: Any, console: Console) -> None:
    console.scope("organization", "globex", ("global", "global"))
    created = console.api(
        "POST",
        "/secrets",
        json={
            "scope": {"type": "organization", "id": "globex"},
            "name": "VIEWED",
            "value": PASSWORD,
        },
    )
    assert created.status_code == 201, created.text
    secret_id = created.json()["id"]
    console.grant("user:vera", "viewer", ("organization", "globex"))

    sign_in(page, console, user_token("vera"))
    page.goto(f"{console.url}/ui/secrets/{secret_id}")
    assert page.get_by_role("heading", name="VIEWED").is_visible()
    assert page.get_by_role("button", name="Reveal").count() == 0
    assert page.get_by_text("You may see this secret, but not read its value.").is_visible()
    assert page.get_by_role("heading", name="Recent audit events").count() == 0
    assert page.get_by_role("heading", name="Who can read the value").count() == 0
    assert page.get_by_role("button", name="Delete this secret").count() == 0
    check_accessibility(page)

    # the POST a Reveal button would make, with a good CSRF token: core refuses it
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = page.request.post(
        f"{console.url}/ui/secrets/{secret_id}/value", headers={"X-CSRFToken": token}
    )
    assert answer.status == 403
    assert PASSWORD not in answer.text()
    refused = console.api(
        "GET", "/audit/events", params={"secret": secret_id, "action": "secret.read_value"}
    ).json()["items"]
    assert [(event["actor"], event["outcome"]) for event in refused] == [("user:vera", "denied")]


def test_a_user_of_another_organization_sees_nothing(page: Any, console: Console) -> None:
    console.scope("organization", "umbrella", ("global", "global"))
    console.scope("organization", "hooli", ("global", "global"))
    created = console.api(
        "POST",
        "/secrets",
        json={"scope": {"type": "organization", "id": "umbrella"}, "name": "T_VIRUS", "value": "x"},
    )
    assert created.status_code == 201
    console.grant("user:gavin", "admin", ("organization", "hooli"))

    sign_in(page, console, user_token("gavin"))
    tree = page.get_by_role("list", name="Scopes you can see")
    assert "hooli" in tree.inner_text()
    assert "umbrella" not in page.content()
    assert "acme" not in page.content()
    page.goto(f"{console.url}/ui/secrets/{created.json()['id']}")
    assert page.get_by_role("heading", name="Error 404").is_visible()
    assert "T_VIRUS" not in page.content()
    page.goto(f"{console.url}/ui/scopes/organization/umbrella/secrets")
    assert page.get_by_text("0 secrets").is_visible()


def test_a_post_without_the_csrf_token_is_refused(page: Any, console: Console) -> None:
    sign_in(page, console)
    answer = page.request.post(
        f"{console.url}/ui/scopes",
        form={"parent": "global/global", "type": "organization", "id": "forged"},
    )
    assert answer.status == 400
    assert "Form expired" in answer.text()
    assert console.api("GET", "/scopes/organization/forged").status_code == 404


def test_a_bad_token_is_refused_and_sign_out_ends_the_session(page: Any, console: Console) -> None:
    page.goto(f"{console.url}/ui/signin")
    page.get_by_label("Token", exact=True).fill("not-" + ROOT_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_text("That token was not accepted.").is_visible()
    sign_in(page, console)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{console.url}/ui/signin")
    page.goto(f"{console.url}/ui/scopes")
    assert page.url == f"{console.url}/ui/signin"


def test_oidc_sign_in_with_the_identity_provider(page: Any, console: Console) -> None:
    console.scope("organization", "oidc-org", ("global", "global"))
    console.grant("user:olivia", "viewer", ("organization", "oidc-org"))
    page.goto(f"{console.url}/ui/signin")
    page.get_by_role("link", name="Sign in with the identity provider").click()
    page.wait_for_url(re.compile(re.escape(console.oidc_issuer)))
    page.locator('input[name="sub"]').fill("olivia")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{console.url}/ui/scopes")
    assert page.get_by_text("user:olivia").is_visible()
    assert "oidc-org" in page.get_by_role("list", name="Scopes you can see").inner_text()


def test_dark_theme_pages_pass_the_accessibility_check(browser: Any, console: Console) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    page = context.new_page()
    try:
        console.scope("organization", "dark-org", ("global", "global"))
        created = console.api(
            "POST",
            "/secrets",
            json={
                "scope": {"type": "organization", "id": "dark-org"},
                "name": "DSN",
                "type": "connection_string",
                "value": "postgresql://app:pw-dark-0123@db.internal:5432/app",
            },
        )
        assert created.status_code == 201, created.text
        sign_in(page, console)
        check_accessibility(page)
        page.goto(f"{console.url}/ui/scopes/organization/dark-org/secrets")
        check_accessibility(page)
        page.goto(f"{console.url}/ui/secrets/{created.json()['id']}")
        assert "pw-dark-0123" not in page.content()
        check_accessibility(page)
        page.goto(f"{console.url}/ui/scopes/organization/dark-org/secrets/new?type=certificate")
        check_accessibility(page)
        screenshot(page, "secret-new-dark")
    finally:
        context.close()


def test_rotate_now_by_the_policy(page: Any, console: Console) -> None:
    console.scope("organization", "rotating", ("global", "global"))
    created = console.api(
        "POST",
        "/secrets",
        json={"scope": {"type": "organization", "id": "rotating"}, "name": "R", "value": "r-1"},
    ).json()
    policy = {"rotator": "random", "settings": {"length": 40}, "interval_seconds": 86400}
    answer = console.api("PUT", f"/secrets/{created['id']}/rotation-policy", json=policy)
    assert answer.status_code == 200, answer.text
    sign_in(page, console)
    page.goto(f"{console.url}/ui/secrets/{created['id']}")
    assert page.get_by_text("every 86400 s").is_visible()
    page.get_by_role("button", name="Rotate now").click()
    page.get_by_text("Rotated: version 2 is current.").wait_for()
    assert console.api("GET", f"/secrets/{created['id']}/value").json()["value"] != "r-1"


def test_a_new_value_and_an_expiry_from_the_secret_page(page: Any, console: Console) -> None:
    console.scope("organization", "editing", ("global", "global"))
    created = console.api(
        "POST",
        "/secrets",
        json={"scope": {"type": "organization", "id": "editing"}, "name": "E", "value": "e-1"},
    ).json()
    sign_in(page, console)
    page.goto(f"{console.url}/ui/secrets/{created['id']}")
    page.get_by_role("textbox", name=re.compile("^New value")).fill("e-2-new")
    page.get_by_role("button", name="Write a new version").click()
    page.get_by_text("Version 2 written.").wait_for()
    assert console.api("GET", f"/secrets/{created['id']}/value").json()["value"] == "e-2-new"

    page.get_by_label("Description", exact=True).fill("the editing test's secret")
    page.get_by_label(re.compile("^Expires")).fill("2030-01-02T03:04")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Metadata saved.").wait_for()
    metadata = console.api("GET", f"/secrets/{created['id']}").json()
    assert metadata["description"] == "the editing test's secret"
    assert metadata["expires_at"].startswith("2030-01-02T03:04")
    check_accessibility(page)


def test_a_certificate_whose_key_is_another_is_shown_as_the_types_error(
    page: Any, console: Console
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.unit.test_secret_types import certificate_for, pem_key

    console.scope("organization", "certs", ("global", "global"))
    certificate = certificate_for(ec.generate_private_key(ec.SECP256R1()))
    other_key = pem_key(ec.generate_private_key(ec.SECP256R1()))
    sign_in(page, console)
    page.goto(f"{console.url}/ui/scopes/organization/certs/secrets/new?type=certificate")
    page.get_by_label("Name", exact=True).fill("TLS_CERT")
    page.get_by_label("certificate", exact=True).fill(certificate)
    page.get_by_label("private_key", exact=True).fill(other_key)
    # "Check the value" (ui.js: fetched, the fields stay filled): the type's message
    page.get_by_role("button", name="Check the value").click()
    checked = page.locator("[data-check-error]")
    checked.wait_for()
    assert "private_key: does not match the certificate" in checked.inner_text()
    assert page.get_by_label("private_key", exact=True).input_value() == other_key
    check_accessibility(page)
    page.get_by_role("button", name="Create secret").click()
    alert = page.get_by_role("alert")
    assert "private_key: does not match the certificate" in alert.inner_text()
    assert other_key.splitlines()[1] not in page.content()  # neither the key nor the PEM
    assert certificate.splitlines()[1] not in page.content()
    assert page.get_by_label("Name", exact=True).input_value() == "TLS_CERT"  # kept
    where = {"scope_type": "organization", "scope_id": "certs"}
    assert console.api("GET", "/secrets", params=where).json()["total"] == 0  # nothing stored
    check_accessibility(page)
    screenshot(page, "secret-new-certificate-error")


def test_a_connection_string_is_checked_to_its_parts_never_the_password(
    page: Any, console: Console
) -> None:
    console.scope("organization", "dsn-org", ("global", "global"))
    password = "pw-Conn-string-4471"
    value = f"postgresql://app_user:{password}@db.internal:5432/billing"
    sign_in(page, console)
    page.goto(f"{console.url}/ui/scopes/organization/dsn-org/secrets/new?type=connection_string")
    page.get_by_label("Name", exact=True).fill("BILLING_DSN")
    page.get_by_label("Connection string", exact=True).fill(value)
    page.get_by_role("button", name="Check the value").click()
    parts = page.get_by_role("status").filter(has_text="What the service reads from the value")
    parts.get_by_text("db.internal").wait_for()  # ui.js: fetched, the value stays typed
    shown = dict(zip(parts.locator("dt").all_inner_texts(), parts.locator("dd").all_inner_texts()))
    assert shown == {
        "scheme": "postgresql",
        "host": "db.internal",
        "port": "5432",
        "database": "billing",
        "username": "app_user",
    }
    assert password not in parts.inner_text()
    assert password not in page.content()
    assert page.get_by_label("Connection string", exact=True).input_value() == value
    check_accessibility(page)
    screenshot(page, "secret-new-checked")
    page.get_by_role("button", name="Create secret").click()
    page.wait_for_url(re.compile(r"/ui/secrets/[0-9a-f-]{36}$"))
    assert password not in page.content()
    assert page.get_by_text("type.host=db.internal").is_visible()


def test_tags_are_edited_and_searched(page: Any, console: Console) -> None:
    console.scope("organization", "tagged", ("global", "global"))
    scope = {"type": "organization", "id": "tagged"}
    created = console.api(
        "POST", "/secrets", json={"scope": scope, "name": "T1", "value": "t", "tags": {"a": "1"}}
    ).json()
    console.api("POST", "/secrets", json={"scope": scope, "name": "T2", "value": "t"})
    sign_in(page, console)
    page.goto(f"{console.url}/ui/secrets/{created['id']}")
    tags = page.get_by_label(re.compile("^Tags"))
    assert tags.input_value() == "a=1\n"
    tags.fill("team=payments\ntier=gold")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Metadata saved.").wait_for()
    assert console.api("GET", f"/secrets/{created['id']}").json()["tags"] == {
        "team": "payments",
        "tier": "gold",
    }
    check_accessibility(page)
    page.goto(f"{console.url}/ui/scopes/organization/tagged/secrets")
    assert page.get_by_text("2 secrets").is_visible()
    page.get_by_role("link", name="team=payments").click()
    page.get_by_text("1 secret", exact=True).wait_for()
    assert page.get_by_label(re.compile("^Tag")).input_value() == "team=payments"
    assert page.get_by_role("link", name="T2").count() == 0
    check_accessibility(page)
