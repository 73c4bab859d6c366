"""Attacks on how the server is started (issue 14), with real `secretctl serve` processes: a
second server on a port already served, development mode (a printed root token) reachable
from other machines, and the image's own environment."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from tests.e2e.test_serve import BIN, free_port, running_server, serve_env

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def serve(env: dict[str, str], workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """A `secretctl serve` expected to stop by itself (a refusal); one that serves instead is
    stopped, with its workers, and the test fails."""
    process = subprocess.Popen(
        [str(BIN / "secretctl"), "serve", *args],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        pytest.fail(f"secretctl serve started instead of refusing:\n{stdout}{stderr}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_a_second_server_on_a_served_port_refuses_to_start(tmp_path: Path) -> None:
    port = free_port()
    first_env = serve_env(tmp_path / "first", port)
    with running_server(first_env, tmp_path) as first:
        second = serve(serve_env(tmp_path / "second", port), tmp_path)
        assert second.returncode == 1
        assert f"port {port} on 127.0.0.1 is already in use" in second.stderr
        assert "SECRETS_TOKEN" not in second.stdout + second.stderr  # refused before the token
        assert not (tmp_path / "second" / "secrets.db").exists()  # and before any database
        # Every request still reaches the first server: it alone knows its token.
        headers = {"Authorization": f"Bearer {first.token}"}
        statuses = {
            requests.get(f"{first.addr}/api/v1/auth/whoami", headers=headers, timeout=5).status_code
            for _ in range(40)
        }
        assert statuses == {200}


def test_development_mode_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    env = serve_env(tmp_path / "data", free_port(), SECRETS_HOST="0.0.0.0")
    refused = serve(env, tmp_path)
    assert refused.returncode == 1
    assert "development mode listens on loopback only" in refused.stderr
    assert "SECRETS_MODE=production" in refused.stderr
    assert "SECRETS_TOKEN" not in refused.stdout + refused.stderr
    on_the_command_line = serve(serve_env(tmp_path / "data", free_port()), tmp_path, "--host", "::")
    assert on_the_command_line.returncode == 1
    assert "not on '::'" in on_the_command_line.stderr


def dockerfile_environment() -> dict[str, str]:
    """The `ENV` of the image's last stage, as `secretctl serve` sees it in the container."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    last_env = [line for line in text.splitlines() if line.startswith("ENV ")][-1]
    return dict(re.findall(r"(\w+)=(\S+)", last_env))


def test_the_image_serves_in_production_mode_without_a_root_token(tmp_path: Path) -> None:
    """Docker is not available here: the image's environment is given to a real server."""
    image = dockerfile_environment()
    assert image["SECRETS_MODE"] == "production" and image["SECRETS_HOST"] == "0.0.0.0"
    port = free_port()
    env = serve_env(tmp_path / "data", port) | image
    env |= {"SECRETS_DATA_DIR": str(tmp_path / "data"), "SECRETS_PORT": str(port)}

    without_key = serve(env, tmp_path)
    assert without_key.returncode == 1 and "production mode needs a key" in without_key.stderr

    env["SECRETS_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    refused_token = serve(env | {"SECRETS_DEV_ROOT_TOKEN": "dev.chosen-token"}, tmp_path)
    assert refused_token.returncode == 6  # invalid input: a setting refused (docs/cli.md)
    assert "refused in production mode" in refused_token.stderr

    with running_server(env, tmp_path) as server:
        output = server.output()
        assert "Secret Management production server on http://0.0.0.0:" in output
        assert "SECRETS_TOKEN" not in output and "root token" not in output
        assert requests.get(f"{server.addr}/readyz", timeout=5).status_code == 200
        guessed = {"Authorization": "Bearer dev.anything"}
        answer = requests.get(f"{server.addr}/api/v1/auth/whoami", headers=guessed, timeout=5)
        assert answer.status_code == 401
