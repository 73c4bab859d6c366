"""The README as a new user follows it, from a fresh clone: start the service as "Two commands"
says, then paste every `sh` block of "Using it", in order. Each must succeed, and the last
`secretctl get` prints the value set before it. The commands are read from the README, not
copied here, so the README cannot drift from what works.

The first test differs from a new user, for time: the clone's `.venv` is a link to this test's
own environment, and the server is started with the command `./scripts/run.sh` ends with
(`exec .venv/bin/secretctl serve`) instead of the script itself, whose first run creates a
`.venv` and installs the project into it. `PYTHONPATH` points at the clone, so the clone's code
is what runs. The second (marked slow) runs `./scripts/run.sh` itself, which installs into the
clone's own `.venv` from the package index (its cache, after the suite's own install): exactly
what a new user does. Either server listens on a free port instead of 8080, and prints its own
`export` line for that port.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.e2e.test_serve import free_port, settle_before_stopping

HERE = Path(__file__).resolve().parent
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXPORT = re.compile(r"export (SECRETS_ADDR=\S+ SECRETS_TOKEN=\S+)")


def section(readme: str, title: str) -> str:
    """The text of the `## title` section, up to the next `## `."""
    start = readme.index(f"## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else len(readme)]


def sh_blocks(text: str) -> list[str]:
    return [body for language, body in FENCE.findall(text) if language == "sh"]


def run_command(readme: str, clone: Path) -> list[str]:
    """The command `./scripts/run.sh` (the first command of "Two commands") ends by running."""
    first = sh_blocks(section(readme, "Two commands"))[0].splitlines()[0]
    script = first.split("#")[0].strip()
    assert script == "./scripts/run.sh", first
    last = (clone / script).read_text().strip().splitlines()[-1]
    assert last.startswith("exec "), last
    return [word for word in last.removeprefix("exec ").split() if word != '"$@"']


def fresh_clone(tmp_path: Path) -> Path:
    """A clone of the repository these tests run in, at its last commit."""
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", top, str(target)], check=True, timeout=60)
    return target


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A fresh clone whose `.venv` is this test's own environment."""
    target = fresh_clone(tmp_path)
    (target / ".venv").symlink_to(Path(sys.prefix))
    return target


@contextmanager
def started(
    command: list[str], clone: Path, env: dict[str, str], seconds: float = 40
) -> Iterator[dict[str, str]]:
    """The server, once it printed its `export` line and answers; the variables of that line."""
    log_path = clone.parent / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + seconds
        started_at = time.monotonic()
        while not (found := EXPORT.search(log_path.read_text())):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no export line from the server:\n{log_path.read_text()}")
            time.sleep(0.1)
        exported = dict(pair.split("=", 1) for pair in found.group(1).split())
        while True:
            try:
                if requests.get(f"{exported['SECRETS_ADDR']}/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not answer:\n{log_path.read_text()}")
            time.sleep(0.1)
        started_at = time.monotonic()  # answering: settle from here
        yield exported
    finally:
        settle_before_stopping(started_at)
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_the_readme_works_from_a_fresh_clone(clone: Path) -> None:
    readme = (clone / "README.md").read_text()
    follow_using_it(readme, clone, run_command(readme, clone), {"PYTHONPATH": str(clone)})


@pytest.mark.slow
def test_the_readme_works_from_a_fresh_clone_with_its_run_command(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path)
    readme = (clone / "README.md").read_text()
    script = sh_blocks(section(readme, "Two commands"))[0].splitlines()[0].split("#")[0].strip()
    # The installs of the clone's own .venv: a new user's first run.
    cache = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    follow_using_it(readme, clone, [script], {"PIP_CACHE_DIR": cache}, seconds=600)
    assert (clone / ".venv" / "bin" / "secretctl").exists() and not (clone / ".venv").is_symlink()


def follow_using_it(
    readme: str, clone: Path, command: list[str], extra: dict[str, str], seconds: float = 40
) -> None:
    """Start the service with `command` in `clone`, then run every `sh` block of "Using it"."""
    blocks = sh_blocks(section(readme, "Using it"))
    assert blocks, "no sh block in 'Using it'"
    env = {key: value for key, value in os.environ.items() if not key.startswith("SECRETS_")}
    env |= {"SECRETS_PORT": str(free_port()), **extra}
    env.pop("XDG_CONFIG_HOME", None)
    env.pop("VIRTUAL_ENV", None)
    env["HOME"] = str(clone.parent / "home")  # no `secretctl login` of whoever runs the tests

    outputs = []
    with started(command, clone, env, seconds) as exported:
        for block in blocks:
            done = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", block],
                cwd=clone,
                env=env | exported,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, f"{block}\nexit {done.returncode}\n{done.stderr}"
            outputs.append(done.stdout)

    values = re.findall(r"echo -n '([^']+)' \| secretctl set", "".join(blocks))
    with_get = [output for block, output in zip(blocks, outputs) if "secretctl get" in block]
    assert values and with_get, "the README sets no value, or never reads one"
    assert with_get[-1].splitlines()[-1] == values[-1]
    assert (clone / ".secrets-data" / "master.key").exists()  # a fresh instance of its own
