# ruff: noqa: S603 - runs this project's own tools with arguments it builds itself
"""The servers a benchmark run starts on loopback ports, each stopped when its block is left:
PostgreSQL, the service (`secretctl serve`; with `--compare`, another revision's too), OpenBao in
dev mode and OpenBao on raft storage (each with a file audit device), and the framework ceiling
(a constant JSON endpoint under the same server setup)."""

from __future__ import annotations

import base64
import os
import secrets as random_tokens
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import make_url, text

from adapters.db.engine import create_engine_from_url
from tests.support.postgres import NO_DURABILITY, free_port, throwaway_postgres

BIN = Path(sys.executable).parent
START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
JWT_KEY_VARIABLE = "BENCH_JWT_KEY"
JWT_ISSUER = "https://idp.bench.invalid"
JWT_AUDIENCE = "secret-management"
# The dev server's root token: in memory, on loopback, for the run only.
OPENBAO_ROOT_TOKEN = "bench-openbao-root-token"  # noqa: S105


class HarnessError(Exception):
    """Something the run needs did not work; the message says what and shows the output."""


@dataclass
class Process:
    """A server started in its own session, so that stopping it stops its children too."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=STOP_TIMEOUT)


@contextmanager
def running(
    name: str,
    command: list[str],
    *,
    port: int,
    health_path: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[Process]:
    """Start `command`, wait (bounded) until `health_path` answers 200, stop it on leaving."""
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    process = Process(name, popen, log_path, f"http://127.0.0.1:{port}")
    try:
        _wait_until_healthy(process, process.url + health_path)
        yield process
    finally:
        process.stop()


def _wait_until_healthy(process: Process, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise HarnessError(f"{process.name} exited at start:\n{process.output()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise HarnessError(f"{process.name} did not answer {url} in {START_TIMEOUT:.0f} s")


# -- PostgreSQL -------------------------------------------------------------------------------


@contextmanager
def postgres_databases(
    external_url: str | None, durable: bool, count: int = 1
) -> Iterator[list[str]]:
    """`count` databases for the service (one per revision served): the given URL (one only),
    or new ones on a throwaway cluster."""
    if external_url:
        if count != 1:
            raise HarnessError("--compare needs a throwaway cluster: leave --database-url out")
        yield [external_url]
        return
    # A deployment keeps PostgreSQL's durable defaults; `durable=False` is the tests' setup.
    with throwaway_postgres(() if durable else NO_DURABILITY) as server_url:
        names = ["secrets_bench", *(f"secrets_bench_{n}" for n in range(2, count + 1))]
        admin = create_engine_from_url(server_url).execution_options(isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                for name in names:
                    connection.execute(text(f"CREATE DATABASE {name}"))
        finally:
            admin.dispose()
        yield [make_url(server_url).set(database=name).render_as_string(False) for name in names]


# -- the service ------------------------------------------------------------------------------


def service_environment(
    database_url: str, workdir: Path, port: int, workers: int, name: str = "ours"
) -> dict[str, str]:
    """`secretctl serve` as deployed: production mode, PostgreSQL, JWTs of an identity provider
    (HS256 shared key), the key-encryption key from the environment, INFO logs."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("SECRETS_")}
    return inherited | {
        "SECRETS_MODE": "production",
        "SECRETS_DATABASE_URL": database_url,
        "SECRETS_DATA_DIR": str(workdir / f"service-data-{name}"),
        "SECRETS_HOST": "127.0.0.1",
        "SECRETS_PORT": str(port),
        "SECRETS_WORKERS": str(workers),
        "SECRETS_LOG_LEVEL": "INFO",
        "SECRETS_MASTER_KEY": base64.b64encode(random_tokens.token_bytes(32)).decode(),
        "SECRETS_IDENTITY__JWT__ISSUER": JWT_ISSUER,
        "SECRETS_IDENTITY__JWT__AUDIENCE": JWT_AUDIENCE,
        "SECRETS_IDENTITY__JWT__SHARED_KEY_ENV": JWT_KEY_VARIABLE,
        JWT_KEY_VARIABLE: random_tokens.token_urlsafe(48),
    }


@contextmanager
def service(
    env: dict[str, str], workdir: Path, *, name: str = "ours", checkout: Path | None = None
) -> Iterator[Process]:
    """`secretctl serve`: migrations, then the server (the process is its main process).

    With `checkout` (another revision's work tree, `--compare`), the same `.venv` runs that
    tree's code: `PYTHONPATH` puts it before the editable install of this one."""
    port = int(env["SECRETS_PORT"])
    if checkout is not None:
        env = env | {"PYTHONPATH": str(checkout)}
    with running(
        f"secretctl serve ({name})",
        [str(BIN / "secretctl"), "serve"],
        port=port,
        health_path="/healthz",
        log_path=workdir / f"service-{name}.log",
        env=env,
        cwd=checkout or workdir,
    ) as process:
        yield process


def secretctl(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    """Run a `secretctl` command against the service's database; its output, or an error."""
    result = subprocess.run(
        [str(BIN / "secretctl"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise HarnessError(f"secretctl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


# -- the framework ceiling --------------------------------------------------------------------


@contextmanager
def ceiling(workers: int, workdir: Path) -> Iterator[Process]:
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.ceiling", "--port", str(port)]
    with running(
        "framework ceiling",
        [*command, "--workers", str(workers)],
        port=port,
        health_path="/ceiling",
        log_path=workdir / "ceiling.log",
        cwd=Path(__file__).resolve().parent.parent,
    ) as process:
        yield process


# -- OpenBao ----------------------------------------------------------------------------------


OPENBAO_AUDIT = """\
# OpenBao 2 accepts audit devices only from its configuration (`bao audit enable` is refused).
audit "file" "bench" {{
  description = "benchmark: every request and response as a JSON line"
  options {{
    file_path = "{path}"
  }}
}}
"""

OPENBAO_RAFT = """\
storage "raft" {{
  path    = "{data}"
  node_id = "bench"
}}
listener "tcp" {{
  address     = "127.0.0.1:{port}"
  tls_disable = true
}}
api_addr      = "http://127.0.0.1:{port}"
cluster_addr  = "http://127.0.0.1:{cluster_port}"
disable_mlock = true
"""


@dataclass
class OpenBao:
    """A running OpenBao: its process, the token that seeds it, where its audit device writes."""

    label: str  # "bao-dev" or "bao-raft"
    process: Process
    root_token: str
    audit_log: Path

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def openbao(workdir: Path) -> Iterator[OpenBao]:
    """`bao server -dev` (in-memory storage, KV v2 at `secret/`) with a file audit device."""
    port = free_port()
    config = workdir / "openbao-dev.hcl"
    audit_log = workdir / "openbao-dev-audit.log"
    config.write_text(OPENBAO_AUDIT.format(path=audit_log))
    command = [
        str(BIN / "bao"),
        "server",
        "-dev",
        f"-dev-root-token-id={OPENBAO_ROOT_TOKEN}",
        f"-dev-listen-address=127.0.0.1:{port}",
        "-dev-no-store-token",
        f"-config={config}",
    ]
    with running(
        "OpenBao dev",
        command,
        port=port,
        health_path="/v1/sys/health",
        log_path=workdir / "openbao-dev.log",
        cwd=workdir,
    ) as process:
        yield OpenBao("bao-dev", process, OPENBAO_ROOT_TOKEN, audit_log)


@contextmanager
def openbao_raft(workdir: Path) -> Iterator[OpenBao]:
    """OpenBao as production runs it: integrated storage (raft) on disk, initialised with one
    key share, unsealed by the harness, a file audit device, KV v2 mounted at `secret/`."""
    port, cluster_port = free_port(), free_port()
    data = workdir / "openbao-raft-data"
    data.mkdir()
    audit_log = workdir / "openbao-raft-audit.log"
    config = workdir / "openbao-raft.hcl"
    config.write_text(
        OPENBAO_RAFT.format(data=data, port=port, cluster_port=cluster_port)
        + OPENBAO_AUDIT.format(path=audit_log)
    )
    with running(
        "OpenBao raft",
        [str(BIN / "bao"), "server", f"-config={config}"],
        port=port,
        # Uninitialised and sealed it answers 501: any answer means it listens.
        health_path="/v1/sys/health?uninitcode=200&sealedcode=200&standbycode=200",
        log_path=workdir / "openbao-raft.log",
        cwd=workdir,
    ) as process:
        base = process.url + "/v1"
        init = requests.put(
            f"{base}/sys/init", json={"secret_shares": 1, "secret_threshold": 1}, timeout=60
        )
        if init.status_code != 200:
            raise HarnessError(f"OpenBao raft: init answered {init.status_code}: {init.text}")
        keys = init.json()
        unseal = requests.put(
            f"{base}/sys/unseal", json={"key": keys["keys_base64"][0]}, timeout=60
        )
        if unseal.status_code != 200 or unseal.json().get("sealed", True):
            raise HarnessError(f"OpenBao raft: unseal answered {unseal.status_code}")
        _wait_until_healthy(process, f"{base}/sys/health")  # 200: unsealed and active
        token = str(keys["root_token"])
        mount = requests.post(
            f"{base}/sys/mounts/secret",
            json={"type": "kv", "options": {"version": "2"}},
            headers={"X-Vault-Token": token},
            timeout=60,
        )
        if mount.status_code not in (200, 204):
            raise HarnessError(f"OpenBao raft: mounting KV v2 answered {mount.status_code}")
        _wait_for_kv(base, token)
        yield OpenBao("bao-raft", process, token, audit_log)


def _wait_for_kv(base: str, token: str) -> None:
    """A new KV v2 mount refuses writes while it sets itself up."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        answer = requests.post(
            f"{base}/secret/data/bench-ready",
            json={"data": {"ready": "yes"}},
            headers={"X-Vault-Token": token},
            timeout=10,
        )
        if answer.status_code == 200:
            return
        time.sleep(0.2)
    raise HarnessError("OpenBao raft: the KV v2 mount did not accept a write in time")


def openbao_version() -> str:
    result = subprocess.run(
        [str(BIN / "bao"), "version"], capture_output=True, text=True, timeout=30, check=False
    )
    return result.stdout.strip()


# -- processes --------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """The direct children of a process (the server's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces: the fields after it are fixed.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ensure_wrk(install: bool) -> str:
    """The wrk binary, installed from Debian's packages when missing (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise HarnessError("wrk is missing: install Debian's package (apt-get install wrk)")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        subprocess.run(command, env=env, capture_output=True, timeout=600, check=True)
    found = shutil.which("wrk")
    if found is None:
        raise HarnessError("wrk is still missing after installing Debian's package")
    return found
