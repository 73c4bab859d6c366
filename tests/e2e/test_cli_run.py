"""`secretctl run` against a live `secretctl serve` (issue #17): typed secrets as their documented
variables, `--only`/`--prefix`, strict runs and `--skip-unavailable`, `--watch` restarts,
`--mount` files, signals and exit codes; and JSON object values over the API."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.test_serve import BIN, Server, free_port, running_server, serve_env

AWS_KEY = {
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "region": "eu-west-1",
}
# Writes the variables it is given by name (and the --mount file) as one JSON line per start,
# then exits with the code it is given, or sleeps until a signal ends it.
CHILD = """
import json, os, stat, sys, time
report, mode, names = sys.argv[1], sys.argv[2], sys.argv[3:]
seen = {name: os.environ.get(name) for name in names}
mount = os.environ.get("SECRETCTL_MOUNT_PATH")
if mount:
    mode_bits = stat.S_IMODE(os.stat(mount).st_mode)
    seen["_mount"] = {"path": mount, "mode": mode_bits, "text": open(mount).read()}
with open(report, "a") as handle:
    handle.write(json.dumps(seen) + "\\n")
if mode == "sleep":
    time.sleep(600)
sys.exit(int(mode))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("run")
    env = serve_env(workdir / "data", free_port(), SECRETS_LOG_LEVEL="INFO")
    with running_server(env, workdir) as started:
        yield started


class Project:
    """A project of its own (below an organization of its own) on the live server."""

    def __init__(self, server: Server, name: str) -> None:
        self.server = server
        self.id = f"p-{name}"
        self.organization = f"o-{name}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {server.token}"
        self.api = f"{server.addr}/api/v1"
        for kind, scope_id, parent in (
            ("organization", self.organization, {"type": "global"}),
            ("project", self.id, {"type": "organization", "id": self.organization}),
        ):
            made = self.http.post(
                f"{self.api}/scopes",
                json={"type": kind, "id": scope_id, "parent": parent},
                timeout=10,
            )
            assert made.status_code == 201, made.text

    def put(self, name: str, value: Any, *, at: str = "project", **fields: Any) -> dict[str, Any]:
        scope_id = self.id if at == "project" else self.organization
        body = {"name": name, "scope": {"type": at, "id": scope_id}, "value": value, **fields}
        created = self.http.post(f"{self.api}/secrets", json=body, timeout=10)
        assert created.status_code == 201, created.text
        return dict(created.json())

    def new_version(self, secret: dict[str, Any], value: Any) -> None:
        answer = self.http.post(
            f"{self.api}/secrets/{secret['id']}/versions", json={"value": value}, timeout=10
        )
        assert answer.status_code == 201, answer.text

    def run_args(self, *options: str) -> list[str]:
        return [str(BIN / "secretctl"), "run", "--project", self.id, *options]


def child(report: Path, mode: str, *names: str) -> list[str]:
    return [sys.executable, "-c", CHILD, str(report), mode, *names]


def runs(report: Path) -> list[dict[str, Any]]:
    """What the child saw at each start."""
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text().splitlines()]


def secretctl(server: Server, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=server.env(), capture_output=True, text=True, timeout=60, check=False, **kwargs
    )


def started(server: Server, args: list[str]) -> subprocess.Popen[str]:
    """`secretctl run` in a process group of its own, so that `kill_group` ends its command
    too whatever the test saw."""
    return subprocess.Popen(
        args, env=server.env(), stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def wait_for(condition: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


# -- typed secrets and JSON object values -------------------------------------------------------


def test_a_typed_secret_runs_as_the_variables_its_type_documents(
    server: Server, tmp_path: Path
) -> None:
    project = Project(server, "typed")
    project.put("AWS", AWS_KEY, type="aws_credentials")  # a JSON object, as the docs show it
    project.put("DB-URL", "postgresql://app@db.internal/app")
    project.put("AWS_ACCESS_KEY_ID", "AKIAORGANIZATION0000", at="organization")
    report = tmp_path / "report.jsonl"
    names = ("AWS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "DB_URL")

    result = secretctl(server, project.run_args("--", *child(report, "0", *names)))

    assert result.returncode == 0, result.stderr
    assert runs(report) == [
        {
            "AWS": None,  # not AWS={json} any more
            "AWS_ACCESS_KEY_ID": AWS_KEY["access_key_id"],  # the project's, not the organization's
            "AWS_SECRET_ACCESS_KEY": AWS_KEY["secret_access_key"],
            "AWS_DEFAULT_REGION": "eu-west-1",
            "DB_URL": "postgresql://app@db.internal/app",
        }
    ]
    assert result.stderr == (
        "secretctl run: AWS_ACCESS_KEY_ID of AWS_ACCESS_KEY_ID is not set: "
        "AWS (more specific) sets it\n"
    )


def test_the_api_takes_a_json_object_as_a_typed_secrets_value(server: Server) -> None:
    project = Project(server, "objects")
    secret = project.put("AWS", AWS_KEY, type="aws_credentials")
    value = project.http.get(f"{project.api}/secrets/{secret['id']}/value", timeout=10).json()
    assert json.loads(value["value"]) == AWS_KEY
    assert value["value"] == json.dumps(AWS_KEY, sort_keys=True, separators=(",", ":"))

    rotated = AWS_KEY | {"secret_access_key": "x" * 40}
    project.new_version(secret, rotated)
    value = project.http.get(f"{project.api}/secrets/{secret['id']}/value", timeout=10).json()
    assert (json.loads(value["value"]), value["version"]) == (rotated, 2)

    body = {"name": "BROKEN", "scope": {"type": "project", "id": project.id}}
    refused = project.http.post(
        f"{project.api}/secrets",
        json=body | {"type": "aws_credentials", "value": AWS_KEY | {"region": "moon-1"}},
        timeout=10,
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["field"] == "region"
    assert AWS_KEY["secret_access_key"] not in refused.text
    for bad in ([1, 2], 3, {"nested": {"too": {"deep": [[[[[[[1]]]]]]]}}}):
        answer = project.http.post(f"{project.api}/secrets", json=body | {"value": bad}, timeout=10)
        assert answer.status_code == 400, (bad, answer.text)
        assert list(answer.json()["error"]["details"]["fields"]) == ["value"]


def test_a_resolution_without_values_is_revalidated_with_its_etag(server: Server) -> None:
    project = Project(server, "etag")
    secret = project.put("API_TOKEN", "etag-value-1")
    resolve = f"{project.api}/resolve"
    params = {"project": project.id}

    first = project.http.get(resolve, params=params, timeout=10)
    tag = first.headers["ETag"]
    assert tag.startswith('W/"')
    again = project.http.get(resolve, params=params, headers={"If-None-Match": tag}, timeout=10)
    assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", tag)
    project.new_version(secret, "etag-value-2")
    changed = project.http.get(resolve, params=params, headers={"If-None-Match": tag}, timeout=10)
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    valued = project.http.get(
        resolve,
        params=params | {"include_values": "true"},
        headers={"If-None-Match": tag},
        timeout=10,
    )
    assert valued.status_code == 200 and "ETag" not in valued.headers  # no digest of values


# -- what runs with what ----------------------------------------------------------------------


def test_only_and_prefix_select_the_secrets_a_command_gets(server: Server, tmp_path: Path) -> None:
    project = Project(server, "select")
    for name in ("APP_KEY", "STRIPE_KEY", "STRIPE_HOOK", "OTHER"):
        project.put(name, f"value-of-{name}")
    names = ("APP_KEY", "STRIPE_KEY", "STRIPE_HOOK", "OTHER")

    def seen(*options: str) -> dict[str, Any]:
        report = tmp_path / f"{'-'.join(options)}.jsonl"
        result = secretctl(server, project.run_args(*options, "--", *child(report, "0", *names)))
        assert result.returncode == 0, result.stderr
        return {name: value for name, value in runs(report)[0].items() if value is not None}

    assert seen("--only", "APP_KEY") == {"APP_KEY": "value-of-APP_KEY"}
    assert seen("--only", "APP_KEY,STRIPE_HOOK") == seen(
        "--only", "APP_KEY", "--only", "STRIPE_HOOK"
    )
    assert set(seen("--only", "APP_KEY,STRIPE_HOOK")) == {"APP_KEY", "STRIPE_HOOK"}
    assert set(seen("--prefix", "STRIPE_")) == {"STRIPE_KEY", "STRIPE_HOOK"}
    assert set(seen("--prefix", "STRIPE_", "--only", "STRIPE_KEY")) == {"STRIPE_KEY"}

    report = tmp_path / "missing.jsonl"
    missing = secretctl(
        server, project.run_args("--only", "APP_KEY,NOPE", "--", *child(report, "0"))
    )
    assert missing.returncode == 1 and "NOPE (not found)" in missing.stderr
    outside = secretctl(
        server,
        project.run_args("--prefix", "STRIPE_", "--only", "APP_KEY", "--", *child(report, "0")),
    )
    assert outside.returncode == 1 and "APP_KEY (not under --prefix)" in outside.stderr
    assert not report.exists()


def test_an_unusable_secret_stops_a_strict_run_and_is_skipped_when_asked(
    server: Server, tmp_path: Path
) -> None:
    project = Project(server, "strict")
    project.put("GOOD", "good-value-1")
    project.put("LATER", "later-value-1", not_before="2999-01-01T00:00:00+00:00")
    expired = project.put("EXPIRED", "expired-value-1")
    answer = project.http.patch(
        f"{project.api}/secrets/{expired['id']}",
        json={"expires_at": "2001-01-01T00:00:00+00:00"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    binary = base64.b64encode(b"\xff\xfe-binary").decode()
    project.put("BLOB", binary, encoding="base64")
    project.put("A-B", "contested-1")
    project.put("A_B", "contested-2")
    report = tmp_path / "report.jsonl"
    command = child(report, "0", "GOOD", "LATER", "EXPIRED", "BLOB", "A_B")

    strict = secretctl(server, project.run_args("--", *command))

    assert strict.returncode == 1
    assert not report.exists()  # the command never started
    for named in (
        "LATER (secret_not_yet_valid)",
        "EXPIRED (secret_expired)",
        "BLOB (not_text)",
        "two secrets become the environment variable A_B: A-B, A_B",
    ):
        assert named in strict.stderr
    assert "GOOD" not in strict.stderr
    for value in ("good-value-1", "later-value-1", "expired-value-1", "contested-", "binary"):
        assert value not in strict.stderr

    skipping = secretctl(server, project.run_args("--skip-unavailable", "--", *command))

    assert skipping.returncode == 0, skipping.stderr
    assert runs(report) == [
        {"GOOD": "good-value-1", "LATER": None, "EXPIRED": None, "BLOB": None, "A_B": None}
    ]
    assert "skipped LATER (secret_not_yet_valid)" in skipping.stderr
    assert "skipped EXPIRED (secret_expired)" in skipping.stderr
    for value in ("good-value-1", "later-value-1", "expired-value-1", "contested-", "binary"):
        assert value not in skipping.stderr


def test_run_exits_with_the_commands_code(server: Server, tmp_path: Path) -> None:
    project = Project(server, "exits")
    project.put("SOME", "some-value")
    report = tmp_path / "report.jsonl"

    assert secretctl(server, project.run_args("--", *child(report, "7"))).returncode == 7
    mounted = project.run_args("--mount", str(tmp_path / "m.env"), "--", *child(report, "9"))
    assert secretctl(server, mounted).returncode == 9  # supervised rather than replaced
    killed = project.run_args("--mount", str(tmp_path / "k.env"), "--", "sh", "-c", "kill $$")
    assert secretctl(server, killed).returncode == 128 + signal.SIGTERM
    missing = secretctl(server, project.run_args("--", "no-such-command-here"))
    assert missing.returncode == 1 and "cannot run no-such-command-here" in missing.stderr


# -- --mount ------------------------------------------------------------------------------------


def test_mount_writes_a_private_dotenv_file_removed_at_exit(server: Server, tmp_path: Path) -> None:
    project = Project(server, "mount")
    tricky = "it's $HOME and `id`"  # no quoting holds it in sh and python-dotenv alike
    spaced = "a value with 'quotes' and spaces"
    project.put("SPACED", spaced)
    project.put("AWS", AWS_KEY, type="aws_credentials")
    report = tmp_path / "report.jsonl"
    mount = tmp_path / "app.env"
    command = child(report, "0", "SPACED", "AWS_SECRET_ACCESS_KEY")

    result = secretctl(server, project.run_args("--mount", str(mount), "--", *command))

    assert result.returncode == 0, result.stderr
    [seen] = runs(report)
    assert (seen["SPACED"], seen["AWS_SECRET_ACCESS_KEY"]) == (None, None)  # in the file only
    assert seen["_mount"]["path"] == str(mount) and seen["_mount"]["mode"] == 0o600
    assert not mount.exists()
    sourced = subprocess.run(
        [
            "sh",
            "-c",
            '. "$1"; printf "%s\\n%s" "$SPACED" "$AWS_SECRET_ACCESS_KEY"',
            "sh",
            "/dev/stdin",
        ],
        input=seen["_mount"]["text"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sourced.stdout == f"{spaced}\n{AWS_KEY['secret_access_key']}"

    project.put("TRICKY", tricky)
    refused = secretctl(server, project.run_args("--mount", str(mount), "--", *command))
    assert refused.returncode == 1 and "no .env quoting holds TRICKY" in refused.stderr
    assert tricky not in refused.stderr and not mount.exists() and len(runs(report)) == 1
    skipped = secretctl(
        server, project.run_args("--mount", str(mount), "--skip-unavailable", "--", *command)
    )
    assert skipped.returncode == 0 and "left TRICKY out of the file" in skipped.stderr
    assert "TRICKY" not in runs(report)[1]["_mount"]["text"]

    mount.write_text("KEEP=me\n")
    taken = secretctl(
        server, project.run_args("--mount", str(mount), "--skip-unavailable", "--", *command)
    )
    assert taken.returncode == 5 and "exists" in taken.stderr
    assert mount.read_text() == "KEEP=me\n" and len(runs(report)) == 2


def test_a_signal_reaches_the_command_and_the_mount_file_is_removed(
    server: Server, tmp_path: Path
) -> None:
    project = Project(server, "signals")
    project.put("SOME", "some-value")
    report = tmp_path / "report.jsonl"
    mount = tmp_path / "app.env"
    for signum in (signal.SIGTERM, signal.SIGINT):
        args = project.run_args("--mount", str(mount), "--", *child(report, "sleep", "SOME"))
        process = started(server, args)
        try:
            wait_for(lambda: len(runs(report)) == (1 if signum == signal.SIGTERM else 2), "start")
            assert mount.exists()
            process.send_signal(signum)
            code = process.wait(timeout=30)
        finally:
            kill_group(process)
        assert code == 128 + signum  # the child ended by the signal passed on to it
        assert not mount.exists()


# -- --watch ----------------------------------------------------------------------------------


def test_watch_restarts_the_command_when_one_of_its_secrets_changes(
    server: Server, tmp_path: Path
) -> None:
    project = Project(server, "watch")
    token = project.put("API_TOKEN", "first-token-value")
    other = Project(server, "watch-other")
    unrelated = other.put("UNRELATED", "unrelated-1")
    report = tmp_path / "report.jsonl"
    args = project.run_args(
        "--watch",
        "--watch-interval",
        "1",
        "--grace",
        "5",
        "--",
        *child(report, "sleep", "API_TOKEN", "LATER"),
    )
    process = started(server, args)
    try:
        wait_for(lambda: len(runs(report)) == 1, "the first start")
        other.new_version(unrelated, "unrelated-2")  # another project's: no restart
        time.sleep(2.5)
        assert len(runs(report)) == 1
        project.new_version(token, "second-token-value")
        wait_for(lambda: len(runs(report)) == 2, "a restart after the new version")
        # A new secret not valid yet stops a strict restart; once it is valid (nothing else
        # changes) the next poll reads the values again and restarts the command.
        soon = datetime.now(UTC) + timedelta(seconds=4)
        project.put("LATER", "later-value", not_before=soon.isoformat())
        wait_for(lambda: len(runs(report)) == 3, "a restart once the new secret is valid")
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        _, stderr = process.communicate()
    finally:
        kill_group(process)

    assert [(seen["API_TOKEN"], seen["LATER"]) for seen in runs(report)] == [
        ("first-token-value", None),
        ("second-token-value", None),
        ("second-token-value", "later-value"),
    ]
    assert code == 128 + signal.SIGTERM
    assert "secrets changed: restarting the command" in stderr
    assert "watching stalled (not run: no variables for LATER (secret_not_yet_valid)" in stderr
    assert "watching again" in stderr
    assert "token-value" not in stderr and "later-value" not in stderr
    assert "GET /api/v1/resolve 304" in server.output()  # polls revalidate with the ETag
