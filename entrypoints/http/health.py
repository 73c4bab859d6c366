"""`/healthz` (the process answers) and `/readyz` (the database and every backend answer)."""

from __future__ import annotations

import time
from typing import Any

from flask.views import MethodView
from sqlalchemy import text

from core.errors import ServiceError
from entrypoints.http import schemas
from entrypoints.http.blueprint import Blueprint
from entrypoints.http.context import current_container
from ports.storage import StorageBackend

blp = Blueprint("health", __name__, description="Liveness and readiness probes.")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, schemas.HealthSchema)
    def get(self) -> Any:
        """The process is up."""
        return {"status": "ok", "checks": {}}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, schemas.HealthSchema)
    @blp.alt_response(503, schema=schemas.HealthSchema, description="not ready")
    def get(self) -> Any:
        """The database and every configured backend answer (with their latency)."""
        container = current_container()
        checks = {"database": database_check(container.engine())}
        for backend in container.backends():
            checks[f"backend:{backend.name}"] = backend_check(backend)
        ready = all(check["ok"] for check in checks.values())
        return {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503


def backend_check(backend: StorageBackend) -> dict[str, Any]:
    try:
        health = backend.health()
    except ServiceError as error:
        return {"ok": False, "latency_ms": 0.0, "detail": error.code}
    return {"ok": health.ok, "latency_ms": round(health.latency_ms, 2), "detail": health.detail}


def database_check(engine: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # readiness reports, it does not raise
        return {"ok": False, "latency_ms": 0.0, "detail": type(error).__name__}
    return {
        "ok": True,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "detail": "",
    }
