"""The audit trail, the reports, what a server offers and the client itself, from the command
line on SQLite and PostgreSQL: `audit events|export|verify`, `report …`, `backends`, `formats`,
`types`, `login`/`logout`, `--version`, `completion`, and retries of idempotent calls."""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from entrypoints.client import Client
from tests.e2e.cli_harness import as_json, env_lines, ok, rows, secretctl
from tests.e2e.conftest import TOKEN, ApiClient
from tests.e2e.test_transfer_cli import server  # the app over real HTTP on loopback

__all__ = ["server"]
P42 = {"type": "project", "id": "p-42"}


def test_audit_events_with_the_filters_of_the_api(server: str, api: ApiClient) -> None:
    made = api.create(name="AUDITED", value="v", scope=P42)
    api.get(f"/secrets/{made['id']}/value")

    reads = as_json(
        secretctl(
            server,
            "audit",
            "events",
            "--secret",
            made["id"],
            "--action",
            "secret.read_value",
            "--since",
            "1h",
            "--json",
        )
    )
    table = rows(secretctl(server, "audit", "events", "--scope", "project:p-42", "--limit", "2"))
    more = secretctl(server, "audit", "events", "--limit", "1")
    events = yaml.safe_load(ok(secretctl(server, "audit", "events", "-o", "yaml")).stdout)

    assert [(e["action"], e["outcome"], e["actor"]) for e in reads] == [
        ("secret.read_value", "success", "root")
    ]
    assert len(table) == 2 and all(row[5] for row in table)
    assert "more events: --before-seq" in more.stderr
    assert [e["seq"] for e in events] == sorted((e["seq"] for e in events), reverse=True)


def test_audit_export_and_verify(server: str, api: ApiClient, tmp_path: Path) -> None:
    api.create(name="EXPORTED", value="v", scope=P42)
    target = tmp_path / "audit.csv"

    lines = ok(secretctl(server, "audit", "export", "--action", "secret.create")).stdout
    written = ok(secretctl(server, "audit", "export", "--format", "csv", "--file", str(target)))
    verified = ok(secretctl(server, "audit", "verify"))
    as_json_verified = as_json(secretctl(server, "audit", "verify", "--from-seq", "1", "--json"))

    assert [json.loads(line)["action"] for line in lines.splitlines()] == ["secret.create"]
    assert "audit events written to" in written.stderr
    assert "secret.create" in {
        row["action"] for row in csv.DictReader(io.StringIO(target.read_text()))
    }
    assert verified.stdout.startswith("audit chain intact: ")
    assert as_json_verified["ok"] is True and as_json_verified["broken"] is None


def test_each_report(server: str, api: ApiClient) -> None:
    soon = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    api.create(name="SOON", value="v", scope=P42, expires_at=soon)
    account = api.post("/service-accounts", json={"name": "ci", "scope": P42}).get_json()
    api.post(f"/service-accounts/{account['id']}/tokens", json={})

    expiring = as_json(secretctl(server, "report", "expiring", "--days", "7", "--json"))
    later = rows(secretctl(server, "report", "expiring", "--days", "1"))
    never_read = env_lines(
        secretctl(
            server, "report", "never-read", "--days", "0", "--scope", "project:p-42", "-o", "env"
        )
    )
    overdue = as_json(secretctl(server, "report", "rotation-overdue", "--json"))
    stale = as_json(secretctl(server, "report", "stale-tokens", "--days", "0", "--json"))
    stale_table = rows(secretctl(server, "report", "stale-tokens", "--days", "0"))

    assert [item["name"] for item in expiring] == ["SOON"] and later == []
    assert never_read == {"SOON": "secret://project/p-42/SOON"}
    assert overdue == []
    assert [item["account"]["principal"] for item in stale] == ["service:ci@project:p-42"]
    assert stale_table[0][0] == "service:ci@project:p-42" and stale_table[0][-1] == "never"


def test_what_the_server_offers(server: str) -> None:
    backends = rows(secretctl(server, "backends"))
    listed = as_json(secretctl(server, "backends", "list", "--json"))
    formats = as_json(secretctl(server, "formats", "--json"))
    types = yaml.safe_load(ok(secretctl(server, "types", "-o", "yaml")).stdout)
    types_env = env_lines(secretctl(server, "types", "-o", "env"))

    assert backends[0][:2] == ["local (default)", "local"] and backends[0][2].startswith("ok ")
    assert [item["name"] for item in listed] == ["local"]
    assert {"dotenv", "json"} <= {item["name"] for item in formats}
    assert {"generic", "aws_credentials"} <= {item["name"] for item in types}
    assert "GENERIC" in types_env


def test_login_stores_a_token_read_from_standard_input_and_logout_forgets_it(
    server: str, tmp_path: Path
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "SECRETS_TOKEN": ""}
    stored = tmp_path / "config" / "secretctl" / "credentials.json"

    refused = secretctl(server, "login", "--addr", server, stdin="wrong\n", **env)
    logged = secretctl(server, "login", "--addr", server, stdin=TOKEN + "\n", **env)
    me = as_json(secretctl(server, "whoami", "--json", **env))
    out = ok(secretctl(server, "logout", **env))
    after = secretctl(server, "whoami", **env)

    assert refused.exit_code == 4 and not stored.exists()
    assert logged.exit_code == 0 and f"logged in to {server} as root" in logged.stdout
    assert me["principal"] == "root"
    assert out.stdout == f"removed {stored}\n" and not stored.exists()
    assert after.exit_code == 4 and "no token" in after.stderr


def test_login_takes_the_token_from_stdin_or_the_environment_and_warns_of_an_argument(
    server: str, tmp_path: Path
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "SECRETS_TOKEN": ""}
    stored = tmp_path / "config" / "secretctl" / "credentials.json"

    piped = secretctl(server, "login", "--token-stdin", "--addr", server, stdin=TOKEN + "\n", **env)
    from_env = secretctl(server, "login", "--addr", server, **{**env, "SECRETS_TOKEN": TOKEN})
    argument = secretctl(server, "login", "--token", TOKEN, "--addr", server, **env)
    both = secretctl(server, "login", "--token", TOKEN, "--token-stdin", stdin=TOKEN, **env)
    empty = secretctl(server, "login", "--token-stdin", "--addr", server, stdin="\n", **env)

    for quiet in (piped, from_env):
        assert quiet.exit_code == 0 and "as root" in quiet.stdout and not quiet.stderr
    assert argument.exit_code == 0 and "as root" in argument.stdout  # still works, for old scripts
    assert argument.stderr.startswith("WARNING! A token given with --token can be read by anyone")
    assert "--token-stdin, SECRETS_TOKEN or the prompt" in argument.stderr
    assert TOKEN not in argument.stderr + argument.stdout
    assert both.exit_code == 2 and empty.exit_code == 2
    assert json.loads(stored.read_text())["token"] == TOKEN


def test_a_token_given_as_an_argument_to_any_command_is_used_with_a_warning(server: str) -> None:
    argument = secretctl(server, "whoami", "--json", "--token", TOKEN, SECRETS_TOKEN="")
    from_env = secretctl(server, "whoami", "--json")

    assert as_json(argument)["principal"] == "root" == as_json(from_env)["principal"]
    assert argument.stderr.startswith("WARNING! A token given with --token can be read by anyone")
    assert "set SECRETS_TOKEN or run `secretctl login` instead" in argument.stderr
    assert TOKEN not in argument.stderr and not from_env.stderr


def test_version_and_shell_completion(server: str) -> None:
    version = ok(secretctl(server, "--version"))
    bash = ok(secretctl(server, "completion", "bash")).stdout
    zsh = ok(secretctl(server, "completion", "zsh")).stdout
    fish = ok(secretctl(server, "completion", "fish")).stdout

    assert version.stdout.startswith("secretctl, version ")
    assert "_SECRETCTL_COMPLETE=bash_complete" in bash
    assert "compdef _secretctl_completion secretctl" in zsh
    assert "complete --no-files --command secretctl" in fish
    assert secretctl(server, "completion", "tcsh").exit_code == 2


# -- retries ------------------------------------------------------------------------------------


@pytest.fixture
def flaky() -> Iterator[tuple[str, list[str]]]:
    """A server that answers 503 to the first two calls, then as the API would."""
    calls: list[str] = []

    @Request.application
    def answer(request: Request) -> Response:
        calls.append(request.method)
        if len(calls) <= 2:
            return Response("busy", status=503, headers={"Retry-After": "0"})
        body = {"principal": "root", "kind": "root", "groups": []}
        return Response(json.dumps(body), status=200, content_type="application/json")

    http = make_server("127.0.0.1", 0, answer, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}", calls
    http.shutdown()
    thread.join(timeout=10)


def test_an_idempotent_call_is_retried_when_the_server_is_briefly_unavailable(
    flaky: tuple[str, list[str]],
) -> None:
    addr, calls = flaky

    me = as_json(secretctl(addr, "whoami", "--json", SECRETCTL_RETRIES="3"))

    assert me["principal"] == "root" and calls == ["GET", "GET", "GET"]


def test_a_write_is_never_sent_twice(flaky: tuple[str, list[str]]) -> None:
    addr, calls = flaky

    result = secretctl(addr, "scope", "create", "organization:x", SECRETCTL_RETRIES="3")

    assert result.exit_code == 7 and calls == ["POST"]


# -- timeouts -----------------------------------------------------------------------------------


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that takes connections (the kernel accepts them) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.fixture
def nobody() -> str:
    """An address where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_server_that_does_not_answer_in_time_is_not_called_unreachable(silent: str) -> None:
    verify = secretctl(silent, "audit", "verify", "--timeout", "0.5")
    export = secretctl(silent, "audit", "export", "--timeout", "0.5", SECRETCTL_RETRIES="1")
    whoami = secretctl(silent, "whoami", SECRETCTL_TIMEOUT="0.5")
    bad = secretctl(silent, "whoami", SECRETCTL_TIMEOUT="soon")

    assert verify.exit_code == 7 and "cannot reach" not in verify.stderr
    assert (
        f"the server at {silent} did not answer within 0.5 s (it may still be working on it): "
        "give it longer with --timeout SECONDS (or SECRETCTL_TIMEOUT)"
    ) in verify.stderr
    # a GET is retried on a read timeout, and then fails as a connection error wrapping it
    assert export.exit_code == 7 and "did not answer within 0.5 s" in export.stderr
    assert whoami.exit_code == 7 and "did not answer within 0.5 s" in whoami.stderr
    assert "give it longer with SECRETCTL_TIMEOUT" in whoami.stderr  # whoami has no --timeout
    assert bad.exit_code == 2 and "SECRETCTL_TIMEOUT must be a number" in bad.stderr


def test_a_server_that_cannot_be_reached_is_said_to_be(nobody: str) -> None:
    result = secretctl(nobody, "audit", "verify", "--timeout", "0.5")

    assert result.exit_code == 7 and f"cannot reach the server at {nobody}" in result.stderr


def test_long_running_calls_wait_longer_than_others_by_default(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    waited: dict[str, float] = {}
    original = Client.call

    def recording(self: Client, method: str, path: str, **kwargs: Any) -> Any:
        answer = original(self, method, path, **kwargs)
        waited[path] = self.waited
        return answer

    monkeypatch.setattr(Client, "call", recording)
    ok(secretctl(server, "audit", "verify"))
    ok(secretctl(server, "audit", "export"))
    ok(secretctl(server, "whoami"))

    assert waited == {"/audit/verify": 600, "/audit/export": 600, "/auth/whoami": 30}


@pytest.fixture
def stalling() -> Iterator[str]:
    """A server that starts a streamed answer, sends one line, and then says nothing more."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def answer() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                b'Transfer-Encoding: chunked\r\n\r\n6\r\n{"a"}\n\r\n'
            )
            held.append(connection)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for connection in held:
        connection.close()


def test_an_export_whose_stream_stalls_ends_with_the_timeout_said(
    stalling: str, tmp_path: Path
) -> None:
    target = tmp_path / "audit.jsonl"

    result = secretctl(stalling, "audit", "export", "--timeout", "0.5", "--file", str(target))

    assert result.exit_code == 7
    assert f"the server at {stalling} did not answer within 0.5 s" in result.stderr
