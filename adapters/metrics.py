"""The service's Prometheus metrics (prometheus-client): what each process counts, the storage
backends and the read cache instrumented, and the gauges read from the database at a scrape.

Under `secretctl serve` every process (each HTTP worker, the embedded worker) writes its counts
to files in `PROMETHEUS_MULTIPROC_DIR`, which the server's main process creates before any of
them starts, and a scrape adds them up (`MultiProcessCollector`), whichever worker answers it.
prometheus-client chooses between that and in-memory counting when it is first imported: this
module is therefore imported only once that variable is set (`entrypoints.container` imports it
where a metric is first needed; `tests/unit/test_metrics.py` checks that starting the server
does not import it earlier). Label values are route templates, backend instance names, methods,
statuses and error codes: never a secret's name, id or value, nor a token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter, Histogram, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from adapters.db.gauges import read_gauges
from core.domain.errors import ServiceError
from core.domain.values import SecretValue, VersionKey
from core.read_cache import ReadCache
from ports.security import Clock
from ports.storage import BackendHealth, ExternalSecret, StorageBackend

log = logging.getLogger(__name__)

NAMESPACE = "secret_management"
# Methods counted by name; any other a client invents is counted as `other`.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a hot value read (about a millisecond) to a slow backend or a large import.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

T = TypeVar("T")


class ServiceMetrics:
    """The metrics one process counts, and the registry a scrape reads. With `multiprocess_dir`
    the counts go to files there and a scrape reads every process's files; without, they stay
    in this object's own registry (a process of its own: the CLI, a test's app)."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        own = None if multiprocess_dir else CollectorRegistry()
        self._own = own
        self._collectors: list[Collector] = []
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            registry=own,
        )
        self.request_seconds = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            namespace=NAMESPACE,
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.audit_append_seconds = Histogram(
            "audit_append_duration_seconds",
            "Time to append one batch of audit events to the chain and commit it.",
            namespace=NAMESPACE,
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.audit_batch_events = Histogram(
            "audit_append_batch_events",
            "Audit events written together by one group commit.",
            namespace=NAMESPACE,
            buckets=BATCH_BUCKETS,
            registry=own,
        )
        self.read_cache_lookups = Counter(
            "read_cache_lookups",
            "Lookups in the per-process read cache, by result (hit or miss).",
            ["result"],
            namespace=NAMESPACE,
            registry=own,
        )
        self.backend_operations = Counter(
            "backend_operations",
            "Calls to a storage backend instance, by operation and outcome (ok or an error code).",
            ["backend", "operation", "outcome"],
            namespace=NAMESPACE,
            registry=own,
        )
        self.backend_seconds = Histogram(
            "backend_operation_duration_seconds",
            "Time a storage backend instance took to answer, by operation.",
            ["backend", "operation"],
            namespace=NAMESPACE,
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.auth_failures = Counter(
            "auth_failures",
            "Requests refused for their credentials, by reason (invalid_token, rate_limited).",
            ["reason"],
            namespace=NAMESPACE,
            registry=own,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def observe_audit_write(self, events: int, seconds: float) -> None:
        """A `GroupCommit` write (its `on_written`)."""
        self.audit_batch_events.observe(events)
        self.audit_append_seconds.observe(seconds)

    def add_collector(self, collector: Collector) -> None:
        """A collector asked at each scrape (the database's gauges)."""
        self._collectors.append(collector)
        if self._own is not None:
            self._own.register(collector)

    def registry(self) -> CollectorRegistry:
        """What a scrape reads: every process's files, or this object's own metrics."""
        if self._own is not None:
            return self._own
        assert self.multiprocess_dir is not None
        return multiprocess_registry(self.multiprocess_dir, self._collectors)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape's body and content type, in the format `accept` asks for (Prometheus'
        text format, or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry()), content_type

    def __repr__(self) -> str:
        return f"ServiceMetrics(multiprocess={self.multiprocess_dir is not None})"


def multiprocess_registry(directory: str, collectors: Iterable[Collector]) -> CollectorRegistry:
    """A registry of every process's counts in `directory`, and of `collectors`."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    for collector in collectors:
        registry.register(collector)
    return registry


class CountedReadCache(ReadCache):
    """The read cache, counting its hits and misses."""

    def __init__(self, max_entries: int, ttl_seconds: float, metrics: ServiceMetrics) -> None:
        super().__init__(max_entries, ttl_seconds)
        self._hit = metrics.read_cache_lookups.labels("hit")
        self._miss = metrics.read_cache_lookups.labels("miss")

    def get(self, key: Hashable) -> tuple[Any, int] | None:
        found = super().get(key)
        (self._miss if found is None else self._hit).inc()
        return found


class InstrumentedBackend(StorageBackend):
    """A storage backend instance, each call counted and timed under the instance's name:
    the outcome is `ok` or the error's code (`backend_unavailable`, `not_found`…), and
    `unexpected` for an exception that is not the service's."""

    def __init__(self, inner: StorageBackend, metrics: ServiceMetrics) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities = inner.capabilities
        self._metrics = metrics

    def _timed(self, operation: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return call()
        except ServiceError as error:
            outcome = error.code
            raise
        except Exception:
            outcome = "unexpected"
            raise
        finally:
            metrics = self._metrics
            metrics.backend_operations.labels(self.name, operation, outcome).inc()
            metrics.backend_seconds.labels(self.name, operation).observe(
                time.perf_counter() - started
            )

    def put(self, key: VersionKey, value: SecretValue) -> str:
        return self._timed("put", lambda: self.inner.put(key, value))

    def put_many(self, items: Sequence[tuple[VersionKey, SecretValue]]) -> list[str]:
        return self._timed("put_many", lambda: self.inner.put_many(items))

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        return self._timed("get", lambda: self.inner.get(key, locator))

    def seal(self, key: VersionKey, value: SecretValue) -> tuple[str, bytes]:
        return self._timed("seal", lambda: self.inner.seal(key, value))

    def open_stored(self, key: VersionKey, locator: str, stored: bytes) -> SecretValue:
        return self._timed("open_stored", lambda: self.inner.open_stored(key, locator, stored))

    def destroy(self, key: VersionKey, locator: str) -> None:
        self._timed("destroy", lambda: self.inner.destroy(key, locator))

    def purge(self, secret_id: UUID) -> None:
        self._timed("purge", lambda: self.inner.purge(secret_id))

    def list_external(self, prefix: str) -> Iterable[ExternalSecret]:
        return self._timed("list_external", lambda: list(self.inner.list_external(prefix)))

    def health(self) -> BackendHealth:
        return self._timed("health", self.inner.health)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        """What else the instance offers (a plugin's own attributes), unmeasured."""
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"InstrumentedBackend({self.inner!r})"


def instrumented(
    backends: dict[str, StorageBackend], metrics: ServiceMetrics
) -> dict[str, StorageBackend]:
    return {name: InstrumentedBackend(backend, metrics) for name, backend in backends.items()}


class OperationsCollector(Collector):
    """The gauges read from the database at each scrape (`adapters.db.gauges`): right whichever
    process does the work, a worker running apart included. A database that cannot be read
    gives `operations_scrape_ok 0` and the other metrics, not a failed scrape. With `release`,
    the engine's connections are closed after each scrape: for the server's main process, which
    forks workers and must hold none."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        expiry_warning_days: tuple[int, ...],
        *,
        release: bool = False,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._days = expiry_warning_days
        self._release = release

    def describe(self) -> list[Metric]:
        return []  # nothing is read when the collector is registered

    def collect(self) -> Iterator[Metric]:
        try:
            gauges = read_gauges(self._engine, self._clock.now(), self._days)
        except Exception:
            log.warning("metrics: the operations gauges could not be read", exc_info=True)
            yield _gauge("operations_scrape_ok", "Whether the database's gauges were read.", 0)
            return
        finally:
            if self._release:
                self._engine.dispose()
        yield _gauge("operations_scrape_ok", "Whether the database's gauges were read.", 1)
        yield _labelled(
            "outbox_events",
            "Events not delivered yet: pending (not tried yet), retrying (failed, to be tried "
            "again), given_up (failed for good).",
            "state",
            gauges.outbox,
        )
        yield _labelled(
            "migration_jobs", "Migrations not finished, by state.", "state", gauges.jobs
        )
        yield _gauge(
            "rotations_due", "Scheduled rotations whose time has come.", gauges.rotations_due
        )
        yield _gauge(
            "rotations_failed",
            "Live secrets whose last rotation failed (retried later).",
            gauges.rotations_failed,
        )
        yield _labelled(
            "worker_lag_seconds",
            "How long the oldest due item of each queue has waited for a worker (0: none due).",
            "queue",
            gauges.lag_seconds,
        )
        yield _labelled(
            "secrets_expiring",
            "Live secrets expiring within `days` days (days=0: already expired).",
            "days",
            {str(days): count for days, count in gauges.expiring.items()},
        )
        yield _gauge("workers", "Workers with a heartbeat on record.", gauges.workers)
        if gauges.heartbeat_age_seconds is not None:
            yield _gauge(
                "worker_heartbeat_age_seconds",
                "Time since the last heartbeat of any worker.",
                gauges.heartbeat_age_seconds,
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{NAMESPACE}_{name}", documentation, value=value)


def _labelled(
    name: str, documentation: str, label: str, values: Mapping[str, float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{NAMESPACE}_{name}", documentation, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family
