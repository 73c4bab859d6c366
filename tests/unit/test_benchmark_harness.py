"""The benchmark's pure parts: data set sizes, OpenBao's paged LIST, the derived rows."""

from __future__ import annotations

import pytest

from benchmarks.dataset import TreeShape, build_dataset
from benchmarks.load import Measured, RunResult
from benchmarks.report import DERIVED_LIST, rows_of
from benchmarks.seed import OpenBaoCallers, ServiceCallers
from benchmarks.workloads import (
    COMPARED,
    Endpoints,
    OpenBaoEndpoint,
    ServiceEndpoint,
    build_workloads,
)

SHAPE = TreeShape(organizations=1, teams_per_organization=1, projects_per_team=2)


def measured(name: str, rate: float) -> Measured:
    run = RunResult(int(rate * 10), 10.0, rate, 1.0, 2.0, 3.0, 4.0, 0, 0.0)
    return Measured(name, [run])


def test_a_size_keeps_the_tree_and_takes_the_first_bulk_secrets() -> None:
    dataset = build_dataset(1000, SHAPE)
    small = dataset.at(400)
    assert len(small.secrets) == 400
    assert small.tree_secrets == dataset.tree_secrets
    assert small.bulk_secrets == dataset.bulk_secrets[: 400 - len(dataset.tree_secrets)]
    with pytest.raises(ValueError, match="fewer than 1001"):
        dataset.at(1001)
    with pytest.raises(ValueError, match="fewer than 100"):
        dataset.at(len(dataset.tree_secrets) + 99)


def endpoints(dataset_ids: dict[str, str]) -> Endpoints:
    callers = ServiceCallers("admin", "reader", "writer", "user")
    return Endpoints(
        [
            ServiceEndpoint("ours", "http://127.0.0.1:1", callers, dataset_ids),
            ServiceEndpoint("before", "http://127.0.0.1:2", callers, dataset_ids),
        ],
        [OpenBaoEndpoint("bao-raft", "http://127.0.0.1:3", OpenBaoCallers("r", "w"))],
        "http://127.0.0.1:4",
    )


def test_openbao_pages_its_list_after_the_last_name_of_the_page_before() -> None:
    dataset = build_dataset(1000, SHAPE).at(372)  # 72 on the tree, 300 in bulk: 3 pages
    ids = {secret.kv_path: f"id-{n}" for n, secret in enumerate(dataset.secrets)}
    workloads = {w.name: w for w in build_workloads(endpoints(ids), dataset)}
    bao = next(t for t in workloads["list_page_100"].targets if t.name == "bao-raft")
    names = sorted(secret.name for secret in dataset.bulk_secrets)
    assert [call.path.split("after=")[-1] for call in bao.calls[1:]] == [names[99], names[199]]
    assert "after=" not in bao.calls[0].path and len(bao.calls) == 3
    assert [t.name for t in workloads["metadata_read"].targets] == ["bao-raft"]
    for name, workload in workloads.items():
        has_before = any(t.name == "before" for t in workload.targets)
        assert has_before == (name in COMPARED)


def test_writes_never_touch_the_secret_the_reads_check() -> None:
    dataset = build_dataset(1000, SHAPE).at(372)
    ids = {secret.kv_path: f"id-{n}" for n, secret in enumerate(dataset.secrets)}
    workloads = {w.name: w for w in build_workloads(endpoints(ids), dataset)}
    read = workloads["read_by_id"].targets[0]
    writes = workloads["write_version"].targets[0]
    checked = read.calls[0].path.split("/")[4]
    assert checked not in {call.path.split("/")[4] for call in writes.calls}


def test_derived_rows_list_then_metadata_and_forty_reads() -> None:
    rows = rows_of(
        {
            "read_by_path": {"ours": measured("ours", 900), "bao-raft": measured("bao-raft", 800)},
            "resolve_40": {"ours": measured("ours", 200)},
            "list_page_100": {"ours": measured("ours", 100), "bao-raft": measured("bao-raft", 500)},
            "metadata_read": {"bao-raft": measured("bao-raft", 1000)},
        }
    )
    assert rows["resolve_40"]["bao-raft"] == pytest.approx(20.0)
    assert rows[DERIVED_LIST]["ours"] == 100
    assert rows[DERIVED_LIST]["bao-raft"] == pytest.approx(1 / (1 / 500 + 100 / 1000))
    assert "metadata_read" not in rows
