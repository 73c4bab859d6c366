"""The list ceiling's app (benchmarks/list_ceiling.py) answers full pages of the seeded scope in
order, each with the cursor of the next, and writes one audit row per page."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.db.engine import create_engine_from_url
from benchmarks import list_ceiling


def test_each_page_is_full_in_order_and_audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    url = f"sqlite:///{tmp_path / 'ceiling.db'}"
    list_ceiling.seed(url)
    monkeypatch.setenv(list_ceiling.DATABASE_VARIABLE, url)
    client = list_ceiling.create_list_ceiling_app().test_client()
    seen: list[str] = []
    for number, after in enumerate(list_ceiling.afters(), start=1):
        answer = client.get(f"/ceiling/list?after={after}").get_json()
        page = [item["name"] for item in answer["items"]]
        assert len(page) == list_ceiling.PAGE
        assert answer["next"] == (page[-1] if number < len(list_ceiling.afters()) else None)
        seen.extend(page)
    assert seen == list_ceiling.names()
    engine = create_engine_from_url(url, track_changes=False)
    with engine.connect() as connection:
        audited = connection.execute(select(func.count()).select_from(list_ceiling.audited))
        assert audited.scalar_one() == len(list_ceiling.afters())
    engine.dispose()
