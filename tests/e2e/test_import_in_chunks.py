"""An import written in chunks (`core.import_writes`, issue 20) on the real stores (SQLite and
PostgreSQL): every chunk's rows in the one transaction, the audit events appended in parts under
one lock of the chain, which still verifies, and every value readable."""

from __future__ import annotations

import io

import pytest

from core import import_writes
from tests.e2e.conftest import ApiClient


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(import_writes, "IMPORT_CHUNK", 2)
    monkeypatch.setattr(import_writes, "PUT_BATCH", 1)


def upload(api: ApiClient, content: str) -> dict[str, object]:
    answer = api.post(
        "/imports",
        data={
            "scope_type": "project",
            "scope_id": "p-42",
            "strategy": "overwrite",
            "file": (io.BytesIO(content.encode()), "app.env"),
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200, answer.get_json()
    return dict(answer.get_json())


def test_a_chunked_import_commits_whole_and_its_chain_verifies(api: ApiClient) -> None:
    first = "".join(f"K{n}=first-{n}\n" for n in range(7))
    second = "".join(f"K{n}=second-{n}\n" for n in range(0, 9, 2))

    assert upload(api, first)["counts"]["create"] == 7  # type: ignore[index]
    assert upload(api, second)["counts"] == {
        "create": 1,
        "update": 4,
        "unchanged": 0,
        "skipped": 0,
        "conflict": 0,
    }

    for n in range(9):
        if n == 7:
            continue
        expected = f"second-{n}" if n % 2 == 0 else f"first-{n}"
        answer = api.get(f"/scopes/project/p-42/secrets/K{n}/value")
        assert answer.get_json()["value"] == expected
    assert api.post("/audit/verify", json={}).get_json()["ok"] is True
    events = api.get("/audit/events", query_string={"action": "secret.write_value"}).get_json()
    assert len(events["items"]) == 4
