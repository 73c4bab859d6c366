"""`/healthz` (the process answers) and `/readyz` (the database and the default backend answer;
the other backends are reported without failing readiness, and so are the workers: the age of
their latest heartbeat and the backlog, counts only, as the probe needs no token)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask.views import MethodView

from adapters.db.engine import ping
from core.domain.errors import ServiceError
from core.worker_status import WorkerStatus
from entrypoints.http.blueprint import Blueprint
from entrypoints.http.schemas.common import HealthSchema
from entrypoints.http.schemas.operations import ReadySchema
from ports.storage import StorageBackend

if TYPE_CHECKING:
    from entrypoints.container import Container

# `/readyz` needs no token: however often it is asked, each process probes at most this often,
# and gives each check at most this long (run side by side).
READY_CACHE_SECONDS = 2.0
READY_TIMEOUT_SECONDS = 2.0

blp = Blueprint("health", __name__, description="Liveness and readiness probes.", public=True)
WORKER = "worker"


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> Any:
        """The process is up."""
        return {"status": "ok", "checks": {}}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, schema=ReadySchema, description="not ready")
    def get(self) -> Any:
        """Ready when the database and the default backend answer; every other backend is
        reported (`required: false`, status `degraded`) without failing readiness, so that one
        optional backend down does not take every instance out of a load balancer. `worker`
        reports the lifecycle workers (the age of the latest heartbeat, how many are alive, the
        backlog) without failing readiness either: a missing worker delays work, not requests.
        Probed at most every 2 s per process, each check given 2 s."""
        report = current_app.extensions["readiness"].report()
        return report, 503 if report["status"] == "unavailable" else 200


def backend_check(backend: StorageBackend) -> dict[str, Any]:
    try:
        health = backend.health()
    except ServiceError as error:
        return {"ok": False, "latency_ms": 0.0, "detail": error.code}
    return {"ok": health.ok, "latency_ms": round(health.latency_ms, 2), "detail": health.detail}


def worker_check(container: Container) -> dict[str, Any]:
    """What the probe shows of the workers: no hosts, no processes, no jobs."""
    status = container.worker_status_service().summary()
    return {"ok": True, **worker_summary(status)}


def worker_summary(status: WorkerStatus) -> dict[str, Any]:
    age = status.last_heartbeat_age
    return {
        "last_heartbeat_age_seconds": None if age is None else round(age.total_seconds(), 1),
        "alive": status.alive,
        "backlog": status.backlog,
    }


def database_check(engine: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        ping(engine)
    except Exception as error:  # readiness reports, it does not raise
        return {"ok": False, "latency_ms": 0.0, "detail": type(error).__name__}
    return {
        "ok": True,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "detail": "",
    }


class Readiness:
    """The checks behind `/readyz`, shared by a process's requests: one run at a time, its
    report kept `cache_seconds`; each check runs in a thread of its own and is reported as
    failed when it has not answered within `timeout_seconds`. A check still running from an
    earlier report is waited for again rather than started twice, so one that hangs holds one
    thread, whatever the number of requests."""

    def __init__(
        self,
        container: Container,
        cache_seconds: float = READY_CACHE_SECONDS,
        timeout_seconds: float = READY_TIMEOUT_SECONDS,
    ) -> None:
        self._container = container
        self._cache_seconds = cache_seconds
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._report: dict[str, Any] = {}
        self._reported_at = -math.inf
        self._running: dict[str, _Check] = {}

    def report(self) -> dict[str, Any]:
        with self._lock:  # concurrent callers wait for the one run and share its report
            if time.monotonic() - self._reported_at >= self._cache_seconds:
                self._report = self._run()
                self._reported_at = time.monotonic()
            return self._report

    def _run(self) -> dict[str, Any]:
        backends = self._container.backends()
        probes: dict[str, Callable[[], dict[str, Any]]] = {
            "database": partial(database_check, self._container.engine())
        }
        probes |= {
            f"backend:{backend.name}": partial(backend_check, backend) for backend in backends
        }
        probes[WORKER] = partial(worker_check, self._container)
        required = {"database", f"backend:{backends.default}"}
        for name, probe in probes.items():
            if name not in self._running or self._running[name].finished:
                self._running[name] = _Check(probe)
        deadline = time.monotonic() + self._timeout
        checks = {}
        for name in probes:
            answer = self._running[name].wait(deadline - time.monotonic())
            if answer is None:
                answer = {"ok": False, "latency_ms": self._timeout * 1000, "detail": "timeout"}
            checks[name] = {**answer, "required": name in required}
        worker = checks.pop(WORKER)
        del worker["required"]
        worker.pop("latency_ms", None)
        if not all(checks[name]["ok"] for name in required):
            status = "unavailable"
        else:
            status = "ok" if all(check["ok"] for check in checks.values()) else "degraded"
        return {"status": status, "checks": checks, WORKER: worker}


class _Check:
    """One check, run in a daemon thread: one that hangs holds up neither `/readyz` nor the
    process's exit."""

    def __init__(self, probe: Callable[[], dict[str, Any]]) -> None:
        self._done = threading.Event()
        self._answer: dict[str, Any] | None = None
        threading.Thread(target=self._run, args=(probe,), name="readyz", daemon=True).start()

    def _run(self, probe: Callable[[], dict[str, Any]]) -> None:
        try:
            self._answer = probe()
        except Exception as error:  # readiness reports, it does not raise
            self._answer = {"ok": False, "latency_ms": 0.0, "detail": type(error).__name__}
        finally:
            self._done.set()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, seconds: float) -> dict[str, Any] | None:
        return self._answer if self._done.wait(max(0.0, seconds)) else None
