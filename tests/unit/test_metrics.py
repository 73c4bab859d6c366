"""The service's metrics (adapters/metrics.py, entrypoints/http/metrics.py) on the fakes: what
each instrumented piece counts, the labels it counts under, and the multi-process wiring."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.group_commit import GroupCommit
from adapters.metrics import CountedReadCache, InstrumentedBackend, ServiceMetrics
from core.audit_chain import AuditChain
from core.domain.errors import BackendUnavailable, NotFound
from core.domain.values import SecretValue, VersionKey
from entrypoints.http.metrics import MULTIPROCESS_DIR, route_template
from plugins.testing import BackendContract
from tests.fakes import CHECKPOINT_KEY, FakeUnitOfWorkFactory, InMemoryBackend
from tests.unit.test_group_commit import event

ROOT = Path(__file__).resolve().parents[2]


def samples(metrics: ServiceMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named `name` of a scrape, by their sorted labels."""
    body, _ = metrics.exposition(None)
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


class TestInstrumentedBackendContract(BackendContract):
    """The decorator is a faithful backend: the contract passes through it."""

    @pytest.fixture
    def backend(self) -> InstrumentedBackend:
        return InstrumentedBackend(InMemoryBackend("memory"), ServiceMetrics())


def test_backend_calls_are_counted_by_instance_operation_and_outcome() -> None:
    metrics = ServiceMetrics()
    inner = InMemoryBackend("vault-prod")
    backend = InstrumentedBackend(inner, metrics)
    key = VersionKey(uuid.uuid4(), 1)
    locator = backend.put(key, SecretValue(b"do-not-label-me"))
    backend.get(key, locator)
    with pytest.raises(NotFound):
        backend.get(VersionKey(uuid.uuid4(), 1), "nowhere")
    inner.down = True
    with pytest.raises(BackendUnavailable):
        backend.get(key, locator)

    calls = samples(metrics, "secret_management_backend_operations_total")
    assert calls == {
        (("backend", "vault-prod"), ("operation", "put"), ("outcome", "ok")): 1,
        (("backend", "vault-prod"), ("operation", "get"), ("outcome", "ok")): 1,
        (("backend", "vault-prod"), ("operation", "get"), ("outcome", "not_found")): 1,
        (("backend", "vault-prod"), ("operation", "get"), ("outcome", "backend_unavailable")): 1,
    }
    timed = samples(metrics, "secret_management_backend_operation_duration_seconds_count")
    assert timed[(("backend", "vault-prod"), ("operation", "get"))] == 3
    assert backend.down is True  # the instance's own attributes show through


def test_an_exception_that_is_not_the_services_is_counted_as_unexpected() -> None:
    class Broken(InMemoryBackend):
        def purge(self, secret_id: uuid.UUID) -> None:
            raise RuntimeError("sdk bug")

    metrics = ServiceMetrics()
    with pytest.raises(RuntimeError):
        InstrumentedBackend(Broken("b"), metrics).purge(uuid.uuid4())
    calls = samples(metrics, "secret_management_backend_operations_total")
    assert calls == {(("backend", "b"), ("operation", "purge"), ("outcome", "unexpected")): 1}


def test_read_cache_hits_and_misses_are_counted() -> None:
    metrics = ServiceMetrics()
    cache = CountedReadCache(10, 60, metrics)
    cache.observe(1)
    assert cache.get("k") is None
    cache.put("k", "v", 1)
    assert cache.get("k") == ("v", 1)
    assert cache.get("k") == ("v", 1)
    lookups = samples(metrics, "secret_management_read_cache_lookups_total")
    assert lookups == {(("result", "hit"),): 2, (("result", "miss"),): 1}


def test_each_audit_write_reports_its_events_and_duration() -> None:
    metrics = ServiceMetrics()
    group = GroupCommit(
        FakeUnitOfWorkFactory(),
        AuditChain(CHECKPOINT_KEY, 100),
        on_written=metrics.observe_audit_write,
    )
    group.append([event(1), event(2)])
    group.append([event(3)])
    sizes = samples(metrics, "secret_management_audit_append_batch_events_sum")
    assert sizes == {(): 3}
    writes = samples(metrics, "secret_management_audit_append_duration_seconds_count")
    assert writes == {(): 2}


@pytest.mark.parametrize(
    ("rule", "template"),
    [
        ("/api/v1/secrets/<uuid:secret_id>/value", "/api/v1/secrets/{secret_id}/value"),
        (
            "/api/v1/scopes/<scope_type>/<string(maxlength=128):scope_id>/secrets/"
            "<string(maxlength=255):name>/value",
            "/api/v1/scopes/{scope_type}/{scope_id}/secrets/{name}/value",
        ),
        ("/api/v1/secrets/<uuid:secret_id>/versions/<int(min=1):version>", None),
        ("/healthz", "/healthz"),
        (None, "unmatched"),
    ],
)
def test_requests_are_counted_under_their_route_template(rule: str | None, template: str) -> None:
    expected = template or "/api/v1/secrets/{secret_id}/versions/{version}"
    assert route_template(rule) == expected


def test_a_method_a_client_invents_is_counted_as_other() -> None:
    metrics = ServiceMetrics()
    metrics.observe_request("BREW", "unmatched", 405, 0.001)
    metrics.observe_request("GET", "/healthz", 200, 0.001)
    requests = samples(metrics, "secret_management_http_requests_total")
    assert set(requests) == {
        (("method", "other"), ("route", "unmatched"), ("status", "405")),
        (("method", "GET"), ("route", "/healthz"), ("status", "200")),
    }


COUNT_IN_A_PROCESS = """
from adapters.metrics import ServiceMetrics
import os
metrics = ServiceMetrics(os.environ["PROMETHEUS_MULTIPROC_DIR"])
for _ in range({n}):
    metrics.observe_request("GET", "/api/v1/secrets", 200, 0.002)
"""


def test_a_scrape_adds_up_the_counts_of_every_process(tmp_path: Path) -> None:
    env = {**os.environ, MULTIPROCESS_DIR: str(tmp_path)}
    for n in (3, 4):
        subprocess.run(
            [sys.executable, "-c", COUNT_IN_A_PROCESS.format(n=n)],
            env=env,
            cwd=ROOT,
            check=True,
            timeout=60,
        )
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process
    requests = samples(ServiceMetrics(str(tmp_path)), "secret_management_http_requests_total")
    assert requests == {(("method", "GET"), ("route", "/api/v1/secrets"), ("status", "200")): 7}


def test_starting_the_server_does_not_import_prometheus_client() -> None:
    """prometheus-client chooses multi-process counting when it is first imported: `secretctl
    serve` must have set its directory by then (`metrics_directory`), so nothing it imports
    before may import it."""
    probe = textwrap.dedent(
        """
        import sys
        import entrypoints.cli, entrypoints.server, entrypoints.container
        from entrypoints.cli import main
        from entrypoints.server import prepare, run_server
        print("prometheus_client" in sys.modules)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != MULTIPROCESS_DIR}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
