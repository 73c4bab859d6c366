"""Attacks with `X-Forwarded-*` (issue #16: trusted only from configured proxies): a client
that is not a configured proxy sends the headers itself, to escape the failed-authentication
limit with a new address at each try, or to write someone else's address into the audit trail.
Neither works: the source stays the peer's address (`entrypoints/http/proxies.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import Flask

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import ApiClient

ATTACKER = "198.51.100.66"
VICTIM = "203.0.113.7"


@pytest.fixture(params=[(), ("10.0.0.0/8",)], ids=["no proxies", "another proxy"])
def service(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Flask]:
    app = create_app(
        replace(settings, trusted_proxies=request.param, auth={"failures_per_minute": 2})
    )
    yield app
    app.extensions["container"].shutdown_resources()


def guess(app: Flask, path: str, forwarded: dict[str, str], peer: str = ATTACKER) -> int:
    answer = app.test_client().get(
        f"/api/v1{path}",
        headers={**forwarded, "Authorization": "Bearer guessed-token"},
        environ_base={"REMOTE_ADDR": peer},
    )
    return answer.status_code


def sources(app: Flask) -> set[str | None]:
    page = ApiClient(app.test_client()).get("/audit/events?action=auth.authenticate").get_json()
    return {event["source_ip"] for event in page["items"]}


def test_a_new_forwarded_address_at_each_try_does_not_escape_the_limit(service: Flask) -> None:
    answers = [
        guess(service, "/secrets", {"X-Forwarded-For": f"192.0.2.{n}", "Forwarded": f"for={n}"})
        for n in range(1, 5)
    ]
    assert answers == [401, 401, 429, 429]


def test_the_audit_trail_records_the_peer_not_the_claimed_address(service: Flask) -> None:
    secret = ApiClient(service.test_client()).create(
        name="TARGET", value="target-value-1", scope={"type": "global"}
    )
    claimed = {"X-Forwarded-For": VICTIM, "X-Real-Ip": VICTIM}
    assert guess(service, "/secrets", claimed) == 401
    assert guess(service, f"/secrets/{secret['id']}/value", claimed) == 401  # the hot path
    assert sources(service) == {ATTACKER}


def test_a_client_behind_a_trusted_proxy_cannot_choose_its_address(settings: Settings) -> None:
    """The proxy appends the address it saw: only that last entry is believed, whatever the
    client put before it."""
    app = create_app(replace(settings, trusted_proxies=("10.0.0.0/8",)))
    try:
        forged = {"X-Forwarded-For": f"{VICTIM}, {ATTACKER}"}
        assert guess(app, "/secrets", forged, peer="10.1.1.1") == 401
        assert sources(app) == {ATTACKER}
    finally:
        app.extensions["container"].shutdown_resources()
