"""schemathesis over the whole OpenAPI document (`/api/v1/openapi.json`), on PostgreSQL: what
keeps 500s and answers that break the document out for good (issue #14).

One run of schemathesis' engine, the one behind `schemathesis run`, with every phase:
- coverage: for every parameter and body field, values at and past its bounds, of the wrong
  type, missing, and methods the document does not declare (positive and negative);
- fuzzing: generated requests of both kinds, valid and invalid;
- stateful: sequences that follow the links schemathesis infers between operations (a secret
  created, then read, changed, rotated, deleted...).

Every response is checked: no server error (any 5xx fails: the database and the backend are
up), the status, content type, headers and body as the document declares them, a request that
breaks the document refused, 405 with `Allow` for an undeclared method, no operation answering
without its token. The engine rather than `schema.parametrize()`: one run holds the stateful
phase too and gives the run's counts, which the test prints (`pytest -s`).

Not checked: `positive_data_acceptance`, which expects a 2xx for any request the document
allows; the API refuses with 400, naming the field, what no OpenAPI schema states (the
configured secret name pattern, `not_before` before `expires_at`, a scope's parent type, one of
project, team or organization...).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from flask import Flask
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from werkzeug.serving import WSGIRequestHandler, make_server

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import AUDIENCE, ISSUER, JWT_KEY, TOKEN

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Under a minute on two CPUs: 5,000 to 6,500 requests (about 2,700 coverage cases, 2,000
# fuzzed, and stateful steps as far as the links lead).
CONFIG = {
    "seed": 14,
    "headers": {"Authorization": f"Bearer {TOKEN}"},
    "generation": {"max-examples": 40, "database": "none"},
    "phases": {"stateful": {"generation": {"max-examples": 400}}},
    "checks": {"positive_data_acceptance": {"enabled": False}},
    "operations": [
        {
            # A secret is created without a rotation policy: 404 until one is put, as
            # documented, not a created resource gone missing.
            "include-path": "/api/v1/secrets/{secret_id}/rotation-policy",
            "checks": {"ensure_resource_availability": {"enabled": False}},
        },
        {
            # The change stream and long polling hold the request open (up to `max_seconds`,
            # a day, and `wait`, a minute) on this one-threaded server: not fuzzed here;
            # tests/e2e/test_change_stream.py tests them on a real server.
            "include-path-regex": "^/api/v1/events",
            "enabled": False,
        },
    ],
}


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        """Thousands of requests: the app's own log says what matters."""


@pytest.fixture(scope="module")
def served_app(
    _postgres_test_database: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app on a migrated PostgreSQL database, served on a loopback port: schemathesis 4's
    in-process WSGI transport passes `max_redirects` to werkzeug's client in its
    authentication probe (a TypeError); over HTTP it takes its usual path."""
    _postgres_test_database.reset()
    data_dir = tmp_path_factory.mktemp("schemathesis")
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("TEST_JWT_KEY", JWT_KEY)
        settings = Settings(
            identity={
                "jwt": {"issuer": ISSUER, "audience": AUDIENCE, "shared_key_env": "TEST_JWT_KEY"}
            },
            data_dir=data_dir,
            database_url=_postgres_test_database.url,
            dev_root_token=TOKEN,
            keys={"provider": "file", "path": str(data_dir / "master.key")},
            log_level="WARNING",
            max_request_bytes=256 * 1024,
            auth={"failures_per_minute": 0},  # thousands of requests without a token, by design
        )
        app: Flask = create_app(settings)
        server = make_server("127.0.0.1", 0, app, request_handler=QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            thread.join()
            app.extensions["container"].shutdown_resources()


@dataclass
class RunReport:
    operations: set[str] = field(default_factory=set)
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop_reason: str = ""

    def scenario(self, event: events.ScenarioFinished) -> None:
        recorder = event.recorder
        if event.phase.value != "stateful":
            self.operations.add(recorder.label)
        self.cases[event.phase.value] += len(recorder.cases)
        for interaction in recorder.interactions.values():
            if interaction.response is not None:
                self.statuses[f"{interaction.response.status_code // 100}xx"] += 1
        for checks in recorder.checks.values():
            for check in checks:
                if check.failure_info is not None:
                    failure = check.failure_info
                    self.failures.append(
                        f"[{event.phase.value}] {recorder.label}: {check.name}: "
                        f"{failure.failure.title}\n{failure.code_sample}"
                    )

    def __str__(self) -> str:
        return (
            f"{len(self.operations)} operations, cases {dict(self.cases)} "
            f"({sum(self.cases.values())}), responses {dict(sorted(self.statuses.items()))}, "
            f"{len(self.failures)} failures, stopped: {self.stop_reason}"
        )


def run(base_url: str) -> RunReport:
    schema = schemathesis.openapi.from_url(
        f"{base_url}/api/v1/openapi.json", config=SchemathesisConfig.from_dict(CONFIG)
    )
    report = RunReport()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            report.scenario(event)
        elif isinstance(event, events.NonFatalError):
            report.failures.append(
                f"[{event.phase}] {event.label}: {event.info.title}: {event.info}"
            )
        elif isinstance(event, events.FatalError):
            report.failures.append(f"schemathesis stopped: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            report.stop_reason = event.stop_reason.value
            report.failures += [str(failure) for failure in event.failures]
    return report


def test_the_whole_api_holds_under_schemathesis(served_app: str) -> None:
    report = run(served_app)
    print(f"\nschemathesis: {report}")
    assert report.stop_reason == "completed"
    assert len(report.operations) >= 55  # every operation of the document was reached
    assert report.cases["stateful"] > 0 and report.cases["coverage"] > 0
    assert report.statuses["5xx"] == 0
    unique = sorted(set(report.failures))
    assert unique == [], f"{report}\n\n" + "\n\n".join(unique[:30])
