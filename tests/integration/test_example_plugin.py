"""The example third-party plugin (`examples/files-backend`, installed by scripts/bootstrap.sh):
found through its own entry point, enabled by configuration alone, serving the API end to end,
and passing the backend contract suite."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoints.config import load_settings
from entrypoints.http.app import create_app
from plugins.manager import backend_plugins, build_plugin_manager, create_backend
from plugins.testing import BackendContract
from ports.storage import BackendContext, StorageBackend
from tests.e2e.conftest import TOKEN, ApiClient

CONFIGURATION = """
default_backend = "team-files"

[keys]
provider = "file"
path = "{data}/master.key"

[backends.team-files]
plugin = "files"
directory = "{data}/values"
"""


def test_it_is_discovered_through_its_own_distributions_entry_point() -> None:
    manager = build_plugin_manager()

    module = manager.get_plugin("files")
    assert module is not None and module.__name__ == "sm_files_backend.plugin"
    owners = {plugin: dist.metadata["name"] for plugin, dist in manager.list_plugin_distributions()}
    assert owners[module] == "secret-management-files"
    assert backend_plugins(manager)["files"].factory.__module__ == "sm_files_backend.plugin"


def test_configuration_alone_enables_it_and_it_serves_the_api(
    database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "secrets.toml"
    config.write_text(CONFIGURATION.format(data=tmp_path))
    settings = load_settings(
        {"SECRETS_DATABASE_URL": database_url, "SECRETS_DEV_ROOT_TOKEN": TOKEN}, config
    )
    app = create_app(settings)
    api = ApiClient(app.test_client())
    try:
        secret = api.create(name="DEPLOY_KEY", value="files-v1-0a9c")
        assert secret["backend"] == "team-files"
        url = f"/secrets/{secret['id']}"
        assert api.post(f"{url}/versions", json={"value": "files-v2-7d3b"}).status_code == 201

        assert api.get(f"{url}/value?version=1").get_json()["value"] == "files-v1-0a9c"
        assert api.get(f"{url}/value").get_json()["value"] == "files-v2-7d3b"
        folder = tmp_path / "values" / secret["id"]
        stored = sorted(folder.iterdir())
        assert [path.read_text() for path in stored] == ["files-v1-0a9c", "files-v2-7d3b"]
        assert {stat.S_IMODE(path.stat().st_mode) for path in stored} == {0o600}
        listed = {item["name"]: item for item in api.get("/backends").get_json()["items"]}
        assert listed["team-files"]["plugin"] == "files" and listed["team-files"]["health"]["ok"]

        api.delete(url)
        assert api.post(f"{url}/purge").status_code == 204
        assert not folder.exists()
    finally:
        app.extensions["container"].shutdown_resources()


class TestFilesBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[StorageBackend]:
        plugins = backend_plugins(build_plugin_manager())
        settings = {"plugin": "files", "directory": str(tmp_path / "values")}
        backend = create_backend("files-test", settings, plugins, BackendContext(None, None))
        yield backend
        backend.close()
