"""The list workload pages the service with its keyset cursor (issue #20), as it pages OpenBao's
LIST: page n starts after the last name of page n-1; another revision (`--compare`) keeps offset
pages, which it understands whatever its age."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from benchmarks.dataset import build_dataset
from benchmarks.workloads import build_workloads
from entrypoints.http.cursor import decode_cursor
from tests.unit.test_benchmark_harness import SHAPE, endpoints


def test_ours_pages_the_list_by_cursor_and_before_by_offset() -> None:
    dataset = build_dataset(1000, SHAPE).at(372)  # 300 in bulk: 3 pages
    ids = {secret.kv_path: f"id-{n}" for n, secret in enumerate(dataset.secrets)}
    workloads = {w.name: w for w in build_workloads(endpoints(ids), dataset)}
    targets = {t.name: t for t in workloads["list_page_100"].targets}
    names = sorted(secret.name for secret in dataset.bulk_secrets)
    ours = [parse_qs(urlsplit(c.path).query, keep_blank_values=True) for c in targets["ours"].calls]
    assert len(ours) == 3 and ours[0]["after"] == [""]
    assert [decode_cursor(q["after"][0]).name for q in ours[1:]] == [names[99], names[199]]
    assert all("page" not in q and q["page_size"] == ["100"] for q in ours)
    before = [parse_qs(urlsplit(c.path).query) for c in targets["before"].calls]
    assert [q["page"] for q in before] == [["1"], ["2"], ["3"]]
