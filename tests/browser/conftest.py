"""The web console in a real Chromium (Debian's `chromium`, installed by
scripts/ensure-chromium.sh), driven by Playwright, against `secretctl serve` on a throwaway
SQLite database, with an OpenID Connect provider (`oidc-provider-mock`) on a thread.

One server and one browser for the whole module (each test gets a fresh browser context, so no
session leaks between tests); every test names what it creates uniquely.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

BIN = Path(sys.executable).parent
ROOT_TOKEN = "browser-root-token-0123456789abcdef"
JWT_KEY = "browser-shared-jwt-signing-key-0123456789abcdef"
JWT_ISSUER = "https://idp.browser.test"
JWT_AUDIENCE = "secret-management"
OIDC_CLIENT = "secret-console"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def user_token(subject: str, groups: tuple[str, ...] = ()) -> str:
    """A JWT of the server's identity provider (`[identity.jwt]`, HS256): `user:<subject>`."""
    now = int(time.time())
    claims = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": subject, "groups": list(groups)}
    return jwt.encode(claims | {"iat": now, "exp": now + 900}, JWT_KEY, algorithm="HS256")


@dataclass
class Console:
    url: str
    oidc_issuer: str
    log_path: Path

    def api(self, method: str, path: str, token: str = ROOT_TOKEN, **kwargs: Any) -> Any:
        """A call to the same server's API (as root unless told)."""
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        answer = requests.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kwargs
        )
        return answer

    def grant(self, principal: str, role: str, scope: tuple[str, str]) -> None:
        body = {"principal": principal, "role": role, "scope": {"type": scope[0], "id": scope[1]}}
        answer = self.api("POST", "/role-bindings", json=body)
        assert answer.status_code == 201, answer.text

    def scope(self, kind: str, ident: str, parent: tuple[str, str]) -> None:
        body = {"type": kind, "id": ident, "parent": {"type": parent[0], "id": parent[1]}}
        answer = self.api("POST", "/scopes", json=body)
        assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[str]:
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def console_env() -> dict[str, str]:
    """More environment for the module's server (a module overrides this fixture)."""
    return {}


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: str, console_env: dict[str, str]
) -> Iterator[Console]:
    workdir = tmp_path_factory.mktemp("console")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SECRETS_")}
    env |= {
        "SECRETS_DATA_DIR": str(workdir / "data"),
        "SECRETS_PORT": str(port),
        "SECRETS_DEV_ROOT_TOKEN": ROOT_TOKEN,
        "SECRETS_WORKER__EMBEDDED": "false",
        "SECRETS_LOG_LEVEL": "DEBUG",
        "SECRETS_IDENTITY__JWT__ISSUER": JWT_ISSUER,
        "SECRETS_IDENTITY__JWT__AUDIENCE": JWT_AUDIENCE,
        "SECRETS_IDENTITY__JWT__SHARED_KEY_ENV": "BROWSER_TEST_JWT_KEY",
        "BROWSER_TEST_JWT_KEY": JWT_KEY,
        "SECRETS_UI__OIDC__ISSUER": oidc_provider,
        "SECRETS_UI__OIDC__CLIENT_ID": OIDC_CLIENT,
        "SECRETS_UI__OIDC__CLIENT_SECRET_ENV": "BROWSER_OIDC_CLIENT_SECRET",
        "BROWSER_OIDC_CLIENT_SECRET": "browser-oidc-client-secret-0123456789",
    }
    env |= console_env
    log_path = workdir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "secretctl"), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"secretctl serve exited:\n{log_path.read_text()}")
            try:
                if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"secretctl serve did not answer:\n{log_path.read_text()}")
            time.sleep(0.2)
        time.sleep(2)  # granian ignores SIGTERM while it still spawns workers (test_serve.py)
        yield Console(url, oidc_provider, log_path)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("no chromium on PATH: run scripts/ensure-chromium.sh")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Any, console: Console, token: str = ROOT_TOKEN) -> None:
    page.goto(f"{console.url}/ui/")
    page.get_by_label("Token", exact=True).fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.url}/ui/scopes")


def check_accessibility(page: Any) -> None:
    """axe-core (bundled by axe-playwright-python): no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        f"{[node['target'] for node in violation['nodes']][:3]}"
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
    assert not bad, "\n".join(bad)


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
