"""The console's audit, reports, resolve, import/export and operations pages in Chromium: the
audit chain verified with its result shown; a `.env` imported with a dry run first (nothing
changed after the preview, the secrets there after "Apply"); resolve explaining where each name
comes from and what it shadows; operations. Each page is checked with axe-core and photographed
for the README (docs/screenshots)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import Console, check_accessibility, screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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
    assert page.get_by_role("row").count() > 1
    page.get_by_role("button", name="Verify the chain").click()
    result = page.locator("[data-verification]")
    assert result.get_attribute("data-verification") == "ok"
    assert "The chain is intact" in result.inner_text()
    check_accessibility(page)
    screenshot(page, "audit")
    page.get_by_label("Action").fill("audit.verify")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_role("cell", name="audit.verify").count() >= 1

    page.get_by_role("link", name="Reports").click()
    page.get_by_role("link", name="Stale tokens").click()
    page.get_by_role("heading", name="Stale tokens").wait_for()
    page.get_by_role("link", name="Expiring").click()
    check_accessibility(page)
    screenshot(page, "reports")


def test_operations_show_backends_and_workers(page: Any, console: Console) -> None:
    sign_in(page, console)
    page.get_by_role("link", name="Operations").click()
    assert page.get_by_role("cell", name="local", exact=True).is_visible()
    assert page.get_by_text("healthy").first.is_visible()
    assert page.get_by_role("heading", name="Workers").is_visible()
    check_accessibility(page)
    screenshot(page, "operations")
