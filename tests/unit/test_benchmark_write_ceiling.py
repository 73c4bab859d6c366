"""The write ceiling's app (benchmarks/write_ceiling.py) does exactly one durable write per
POST: one row, of the size of a version and its ciphertext, committed before it answers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.db.engine import create_engine_from_url
from benchmarks import write_ceiling


def test_each_post_commits_one_row_before_answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    url = f"sqlite:///{tmp_path / 'ceiling.db'}"
    engine = create_engine_from_url(url, track_changes=False)
    write_ceiling.schema.create_all(engine)
    monkeypatch.setenv(write_ceiling.DATABASE_VARIABLE, url)
    client = write_ceiling.create_write_ceiling_app().test_client()
    key = uuid.uuid4()
    for number in (1, 2):
        response = client.post(f"/ceiling/{key}/versions", json={"value": "x" * 40})
        assert response.status_code == 201
        assert response.get_json() == {"id": str(key), "row": number}
        with engine.connect() as connection:  # committed: another connection sees it
            count = connection.execute(select(func.count()).select_from(write_ceiling.rows))
            assert count.scalar_one() == number
    with engine.connect() as connection:
        blob = connection.execute(select(write_ceiling.rows.c.blob)).scalars().first()
    assert len(blob) == 40 + write_ceiling.SEALING_BYTES
    engine.dispose()


def test_each_versioned_post_takes_the_next_version_and_audits_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    url = f"sqlite:///{tmp_path / 'ceiling.db'}"
    key = uuid.uuid4()
    write_ceiling.seed_heads(url, [key])
    monkeypatch.setenv(write_ceiling.DATABASE_VARIABLE, url)
    client = write_ceiling.create_write_ceiling_app().test_client()
    for version in (2, 3):
        response = client.post(f"/ceiling/{key}/versioned", json={"value": "x" * 40})
        assert response.status_code == 201
        assert response.get_json() == {"id": str(key), "version": version}
    engine = create_engine_from_url(url, track_changes=False)
    with engine.connect() as connection:
        head = connection.execute(select(write_ceiling.heads.c.version)).scalar_one()
        audited = connection.execute(select(write_ceiling.audit_rows.c.version)).scalars().all()
        written = connection.execute(select(write_ceiling.rows.c.version)).scalars().all()
    engine.dispose()
    assert head == 3 and audited == [2, 3] and written == [2, 3]
