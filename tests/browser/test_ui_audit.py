"""The console's audit, reports, resolve, import/export and operations pages in Chromium: the
audit chain verified with its result shown; a `.env` imported with a dry run first (nothing
changed after the preview, the secrets there after "Apply"); resolve explaining where each name
comes from and what it shadows; operations. Each page is checked with axe-core and photographed
for the README (docs/screenshots)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import VIEWPORT, Console, check_accessibility, screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def console_env() -> dict[str, str]:
    """A second storage backend: somewhere to migrate to."""
    return {"SECRETS_BACKENDS__SPARE__PLUGIN": "local"}


DOTENV = "API_URL=https://api.example.test\nAPI_KEY=sk-browser-import-5c1e\nRETRIES=3\n"


def secrets_of(console: Console, scope: tuple[str, str], environment: str) -> list[str]:
    answer = console.api(
        "GET",
        "/secrets",
        params={"scope_type": scope[0], "scope_id": scope[1], "environment": environment},
    )
    assert answer.status_code == 200, answer.text
    return sorted(item["name"] for item in answer.json()["items"])


def test_import_a_dotenv_with_a_dry_run_first(page: Any, console: Console) -> None:
    console.scope("organization", "imports", ("global", "global"))
    console.api(
        "POST",
        "/secrets",
        json={
            "name": "RETRIES",
            "scope": {"type": "organization", "id": "imports"},
            "environment": "prod",
            "value": "5",
        },
    )
    sign_in(page, console)
    page.goto(f"{console.url}/ui/scopes/organization/imports/secrets?environment=prod")
    page.get_by_role("link", name="Import / export").click()
    assert page.get_by_label("Environment").first.input_value() == "prod"
    check_accessibility(page)
    page.get_by_label("Or paste its content").fill(DOTENV)
    page.get_by_label("When a name already holds another value").select_option("overwrite")
    page.get_by_role("button", name="Preview the import").click()
    page.get_by_role("heading", name="Preview (dry run): nothing changed yet").wait_for()
    assert "create 2" in page.locator("[data-import-counts]").inner_text()
    assert page.get_by_role("row", name=re.compile("RETRIES update")).is_visible()
    assert "sk-browser-import-5c1e" not in page.content()  # sealed, not echoed
    assert secrets_of(console, ("organization", "imports"), "prod") == ["RETRIES"]
    check_accessibility(page)
    screenshot(page, "import-preview")

    page.get_by_role("button", name="Apply the import").click()
    page.get_by_role("heading", name="Imported").wait_for()
    assert secrets_of(console, ("organization", "imports"), "prod") == [
        "API_KEY",
        "API_URL",
        "RETRIES",
    ]
    assert page.get_by_role("button", name="Apply the import").count() == 0

    with page.expect_download() as download:
        page.get_by_label("Format").nth(1).select_option("json")
        page.get_by_role("button", name="Download the export").click()
    assert download.value.suggested_filename.endswith(".json")


def test_resolve_explains_the_winner_and_what_it_shadows(page: Any, console: Console) -> None:
    console.scope("organization", "resolver", ("global", "global"))
    console.scope("project", "web", ("organization", "resolver"))
    for scope, environment in ((("organization", "resolver"), None), (("project", "web"), "prod")):
        made = console.api(
            "POST",
            "/secrets",
            json={
                "name": "DB_HOST",
                "scope": {"type": scope[0], "id": scope[1]},
                "environment": environment,
                "value": f"db.{scope[1]}",
            },
        )
        assert made.status_code == 201, made.text
    sign_in(page, console)
    page.get_by_role("link", name="Resolve", exact=True).click()
    page.get_by_label("Project, team or organization").select_option("project/web")
    page.get_by_label("Environment").fill("prod")
    page.get_by_role("button", name="Resolve").click()
    row = page.get_by_role("row", name=re.compile("^DB_HOST"))
    assert "project web" in " ".join((row.text_content() or "").split())
    assert (
        "organization/resolver"
        in row.get_by_role("link", name=re.compile("organization")).inner_text()
    )
    assert "db.web" not in page.content()  # metadata only
    check_accessibility(page)
    screenshot(page, "resolve")


def test_audit_verify_the_chain_and_reports(page: Any, console: Console) -> None:
    sign_in(page, console)
    page.get_by_role("link", name="Audit").click()
    page.locator("table.events tbody tr").first.wait_for()
    page.get_by_role("button", name="Verify the chain").click()
    result = page.locator("[data-verification]")
    assert result.get_attribute("data-verification") == "ok"
    assert "The chain is intact" in result.inner_text()
    check_accessibility(page)
    screenshot(page, "audit")
    page.get_by_label("Action").fill("audit.verify")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"/ui/audit\?.*action=audit.verify"))
    assert page.get_by_role("cell", name="audit.verify").count() >= 1
    assert page.get_by_role("cell", name="scope.create").count() == 0

    page.get_by_role("link", name="Reports").click()
    page.get_by_role("link", name="Stale tokens").click()
    page.get_by_role("heading", name="Stale tokens").wait_for()
    page.get_by_role("link", name="Expiring").click()
    page.wait_for_url(re.compile(r"report=expiring"))
    check_accessibility(page)
    screenshot(page, "reports")


def test_operations_plan_and_follow_a_migration(page: Any, console: Console) -> None:
    console.scope("organization", "moving", ("global", "global"))
    made = console.api(
        "POST",
        "/secrets",
        json={"name": "MOVE_ME", "scope": {"type": "organization", "id": "moving"}, "value": "m"},
    )
    assert made.status_code == 201, made.text
    sign_in(page, console)
    page.get_by_role("link", name="Operations").click()
    page.get_by_role("cell", name="spare", exact=True).wait_for()
    assert page.get_by_text("healthy").first.is_visible()
    assert page.get_by_role("heading", name="Workers").is_visible()
    page.get_by_label("From", exact=True).select_option("local")
    page.get_by_label("To", exact=True).select_option("spare")
    page.get_by_label("Scope (and below)").select_option("organization/moving")
    page.get_by_role("button", name="Dry run").click()
    plan = page.locator("[data-plan]")
    assert "1 secret (1 version) would move from local to spare" in plan.inner_text()
    assert console.api("GET", "/migrations").json()["items"] == []  # a dry run starts none
    check_accessibility(page)
    screenshot(page, "operations")

    page.get_by_role("button", name="Start migration").click()
    page.wait_for_url(re.compile(r"/ui/operations/migrations/[0-9a-f-]{36}$"))
    assert page.locator('[data-field="state"]').inner_text() == "pending"
    check_accessibility(page)
    screenshot(page, "migration")
    # The page's script follows the progress (no worker runs here: its answers stand in).
    running = {"state": "running", "total": 1, "done": 0, "failed": 0, "remaining": 1}
    page.route("**/progress", lambda route: route.fulfill(json=running | {"finished": False}))
    page.locator('[data-field="state"]', has_text="running").wait_for(timeout=10_000)
    page.unroute("**/progress")
    done = running | {"state": "succeeded", "done": 1, "remaining": 0, "finished": True}
    page.route("**/progress", lambda route: route.fulfill(json=done))
    with page.expect_event("load", timeout=10_000):  # finished: the page reloads for the report
        pass
    page.unroute("**/progress")


def test_the_new_views_pass_the_accessibility_check_in_the_dark(
    browser: Any, console: Console
) -> None:
    context = browser.new_context(viewport=VIEWPORT, color_scheme="dark")
    context.set_default_timeout(15_000)
    try:
        dark = context.new_page()
        sign_in(dark, console)
        for path in ("audit", "reports", "resolve?scope=", "access", "operations"):
            dark.goto(f"{console.url}/ui/{path}")
            check_accessibility(dark)
        dark.goto(f"{console.url}/ui/scopes/global/global/transfer")
        check_accessibility(dark)
    finally:
        context.close()
