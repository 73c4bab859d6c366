"""`secretctl import` and `secretctl export` end to end: the client commands against the whole app
served over real HTTP on loopback (SQLite): streamed uploads, progress, summary tables, files
written 0600, sealed files read back."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from werkzeug.serving import make_server

from entrypoints.cli import main
from tests.e2e.conftest import TOKEN, ApiClient
from tests.unit.test_formats import NASTY_DOTENV

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CANARY = "sk-cli-canary-93b1f0"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def server(app: Flask, api: ApiClient) -> Iterator[str]:
    """The app behind a threaded HTTP server on a free loopback port."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=10)


def secretctl(server: str, *args: str, **env: str) -> Result:
    environment = {"SECRETS_ADDR": server, "SECRETS_TOKEN": TOKEN, "COLUMNS": "200", **env}
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


def value_of(api: ApiClient, scope_id: str, name: str) -> Any:
    return api.get(f"/scopes/project/{scope_id}/secrets/{name}/value").get_json()["value"]


def test_a_dry_run_shows_the_diff_then_the_import_shows_its_summary(
    server: str, api: ApiClient, tmp_path: Path
) -> None:
    source = tmp_path / "app.env"
    source.write_text(f"API_KEY={CANARY}\nDEBUG=false\n")

    dry = secretctl(server, "import", str(source), "--scope", "project:p-42", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.stdout and "API_KEY" in dry.stdout and "create" in dry.stdout
    assert api.get("/scopes/project/p-42/secrets/API_KEY").status_code == 404

    real = secretctl(server, "import", str(source), "--scope", "project:p-42")

    assert real.exit_code == 0, real.output
    assert "dotenv import, strategy skip" in real.stdout
    assert value_of(api, "p-42", "API_KEY") == CANARY
    assert CANARY not in real.output + dry.output


def test_an_import_with_errors_exits_6_listing_them_by_line(server: str, tmp_path: Path) -> None:
    source = tmp_path / "broken.env"
    source.write_text("GOOD=1\n9BAD=2\nNOVALUE\n")

    result = secretctl(server, "import", str(source), "--scope", "project:p-42")

    assert result.exit_code == 6  # invalid input
    assert "invalid_import" in result.stderr
    lines = [line for line in result.stderr.splitlines() if "9BAD" in line or "NOVALUE" in line]
    assert len(lines) == 2 and "2" in lines[0] and "3" in lines[1]


def test_an_export_is_written_0600_with_the_same_bytes_as_the_file_imported(
    server: str, tmp_path: Path
) -> None:
    source = tmp_path / "nasty.env"
    source.write_bytes(NASTY_DOTENV)
    target = tmp_path / "out.env"
    imported = secretctl(
        server, "import", str(source), "--scope", "project:p-42", "--env", "staging"
    )
    assert imported.exit_code == 0, imported.output

    result = secretctl(
        server,
        "export",
        "--scope",
        "project:p-42",
        "--env",
        "staging",
        "--format",
        "dotenv",
        "--values",
        "--file",
        str(target),
    )

    assert result.exit_code == 0, result.output
    assert target.read_bytes() == NASTY_DOTENV
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "written to" in result.stderr and str(target) in result.stderr.replace("\n", "")
    assert list(tmp_path.glob(".out.env.*")) == []  # no partial file left behind


def test_a_sealed_export_lands_encrypted_and_imports_back(
    server: str, api: ApiClient, tmp_path: Path
) -> None:
    api.create(name="TOKEN_A", value=CANARY, scope={"type": "project", "id": "p-42"})
    sealed = tmp_path / "backup.sealed"

    exported = secretctl(
        server,
        "export",
        "--scope",
        "project:p-42",
        "--values",
        "--versions",
        "--seal",
        "--file",
        str(sealed),
        SECRETCTL_PASSPHRASE=PASSPHRASE,
    )
    imported = secretctl(
        server,
        "import",
        str(sealed),
        "--scope",
        "project:p-43",
        "--parent",
        "team:t-1",
        SECRETCTL_PASSPHRASE=PASSPHRASE,
    )

    assert exported.exit_code == 0, exported.output
    assert (
        sealed.read_bytes().startswith(b"SMSEALED") and CANARY.encode() not in sealed.read_bytes()
    )
    assert imported.exit_code == 0, imported.output
    assert "json import" in imported.stdout
    assert value_of(api, "p-43", "TOKEN_A") == CANARY


def test_a_passphrase_is_never_an_argument_and_is_required_off_a_terminal(
    server: str, tmp_path: Path
) -> None:
    refused = secretctl(server, "export", "--seal", "--passphrase", PASSPHRASE)
    missing = secretctl(server, "export", "--seal", "--file", str(tmp_path / "x"))

    assert refused.exit_code == 2 and "No such option" in refused.stderr
    assert missing.exit_code == 2 and "SECRETCTL_PASSPHRASE" in missing.stderr  # usage


def test_a_metadata_export_to_standard_output(server: str, api: ApiClient) -> None:
    api.create(name="VISIBLE", value=CANARY, scope={"type": "project", "id": "p-42"})

    result = secretctl(server, "export", "--scope", "project:p-42", "--file", "-")

    assert result.exit_code == 0, result.output
    assert '"name": "VISIBLE"' in result.stdout and CANARY not in result.stdout


def test_a_dry_run_of_a_file_with_errors_exits_6_and_reports_as_json(
    server: str, api: ApiClient, tmp_path: Path
) -> None:
    source = tmp_path / "broken.env"
    source.write_text("GOOD=1\n9BAD=2\n")

    dry = secretctl(server, "import", str(source), "--scope", "project:p-42", "--dry-run", "--json")

    assert dry.exit_code == 6, dry.output  # invalid input, as the import itself would be
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True and [e["line"] for e in report["errors"]] == [2]
    assert "uploading" not in dry.stderr  # no progress bar off a terminal
    assert api.get("/scopes/project/p-42/secrets/GOOD").status_code == 404


def test_a_dry_run_under_strategy_fail_with_conflicts_exits_5(
    server: str, api: ApiClient, tmp_path: Path
) -> None:
    api.create(name="TAKEN", value="old", scope={"type": "project", "id": "p-42"})
    source = tmp_path / "app.env"
    source.write_text(f"TAKEN={CANARY}\n")

    dry = secretctl(
        server, "import", str(source), "--scope", "project:p-42", "--strategy", "fail", "--dry-run"
    )

    assert dry.exit_code == 5, dry.output


def test_an_export_summary_as_json(server: str, api: ApiClient, tmp_path: Path) -> None:
    api.create(name="VISIBLE", value=CANARY, scope={"type": "project", "id": "p-42"})
    target = tmp_path / "meta.json"

    result = secretctl(
        server, "export", "--scope", "project:p-42", "--file", str(target), "-o", "json"
    )

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["format"], summary["secrets"], summary["values"]) == ("json", 1, 0)
    assert summary["written_to"] == str(target) and summary["sealed"] is False
