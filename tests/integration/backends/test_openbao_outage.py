"""An OpenBao server dies under the running service and comes back, driven over the HTTP API.

The server keeps its data in raft storage, so after the restart the values written before the
outage are read again, and the backend's versions can be checked against `secret_versions`.
"""

from __future__ import annotations

from collections.abc import Callable

import hvac
import pytest

from tests.integration.backends.conftest import RaftOpenBao, Service

INSTANCE = "vault-outage"
VALUES = ("outage-v1-3f8a", "outage-v2-9c1d", "outage-v3-55e0", "outage-lost-0b7e")


def kv_versions(openbao: RaftOpenBao, secret_id: str) -> dict[str, bool]:
    """Every KV version the backend holds for the secret: whether it is destroyed."""
    kv = hvac.Client(url=openbao.url, token=openbao.root_token).secrets.kv.v2
    metadata = kv.read_secret_metadata(path=f"secret-management/{secret_id}", mount_point="secret")
    return {number: state["destroyed"] for number, state in metadata["data"]["versions"].items()}


def assert_unavailable(response, what: str) -> None:
    assert response.status_code == 503, (what, response.get_json())
    error = response.get_json()["error"]
    assert error["code"] == "backend_unavailable"
    assert f"'{INSTANCE}'" in error["message"] and error["details"]["backend"] == INSTANCE
    assert not any(value in response.get_data(as_text=True) for value in VALUES)


def test_an_outage_is_503_naming_the_instance_and_leaves_no_orphans(
    openbao_raft: RaftOpenBao,
    service: Callable[..., Service],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SM_TEST_RAFT_TOKEN", openbao_raft.root_token)
    svc = service(
        {INSTANCE: {"plugin": "vault", "url": openbao_raft.url, "token_env": "SM_TEST_RAFT_TOKEN"}}
    )
    api = svc.api
    secret = api.create(name="DB_PASSWORD", value=VALUES[0], backend=INSTANCE)
    versions_url = f"/secrets/{secret['id']}/versions"
    assert api.post(versions_url, json={"value": VALUES[1]}).status_code == 201
    before = svc.version_rows()

    openbao_raft.server.kill()

    assert_unavailable(api.post(versions_url, json={"value": VALUES[3]}), "new version")
    assert_unavailable(api.get(f"/secrets/{secret['id']}/value"), "read")
    assert_unavailable(
        api.post("/secrets", json={"name": "OTHER", "value": VALUES[3], "backend": INSTANCE}),
        "create",
    )
    assert svc.version_rows() == before and svc.secret_count() == 1
    assert api.client.get("/healthz").status_code == 200
    ready = api.client.get("/readyz")
    assert ready.status_code == 200  # an optional backend down does not fail readiness
    assert ready.get_json()["status"] == "degraded"
    checks = ready.get_json()["checks"]
    assert checks["database"]["ok"] and checks["backend:local"]["ok"]
    assert not checks[f"backend:{INSTANCE}"]["ok"] and not checks[f"backend:{INSTANCE}"]["required"]
    listed = {item["name"]: item for item in api.get("/backends").get_json()["items"]}
    assert not listed[INSTANCE]["health"]["ok"] and listed["local"]["health"]["ok"]
    assert api.create(name="STILL_SERVED", value="local values still work")["backend"] == "local"

    openbao_raft.restart()

    written = api.post(versions_url, json={"value": VALUES[2]})
    assert written.status_code == 201 and written.get_json()["current_version"] == 3
    for number, value in enumerate(VALUES[:3], start=1):
        read = api.get(f"/secrets/{secret['id']}/value?version={number}").get_json()
        assert read["value"] == value
    assert kv_versions(openbao_raft, secret["id"]) == {"1": False, "2": False, "3": False}
    assert api.client.get("/readyz").status_code == 200
