"""A database that cannot be reached gets a clear 503, not a 500 with a traceback."""

from __future__ import annotations

from pathlib import Path

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.support.postgres import free_port

TOKEN = "db-down-root-token-0123456789"


def test_an_unreachable_database_is_a_503_naming_it(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/secrets?connect_timeout=2",
        dev_root_token=TOKEN,
        keys={"provider": "file", "path": str(tmp_path / "master.key")},
    )
    app = create_app(settings)
    try:
        response = app.test_client().get(
            "/api/v1/secrets", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    finally:
        app.extensions["container"].shutdown_resources()
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "database_unavailable"
    assert "nobody" not in response.get_data(as_text=True)
