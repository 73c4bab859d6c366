"""`/api/v1/status`: the lifecycle workers (each one's host, process, heartbeat and job) and the
backlog, for admins and auditors of the global scope."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView

from core.domain.errors import Forbidden
from entrypoints.http.blueprint import Blueprint, raises
from entrypoints.http.context import current_container
from entrypoints.http.health import worker_summary
from entrypoints.http.schemas.operations import StatusSchema

blp = Blueprint(
    "status", __name__, url_prefix="/api/v1", description="The workers and their backlog."
)


@blp.route("/status")
class Status(MethodView):
    @blp.response(200, StatusSchema)
    @raises(Forbidden)
    def get(self) -> Any:
        """The workers (a worker silent for a minute is not alive; one that stopped cleanly has
        no row) and the work waiting for them. Admins and auditors of the global scope."""
        status = current_container().worker_status_service().status(g.principal)
        workers = [
            {
                **vars(state.record),
                "last_heartbeat_age_seconds": round(state.silent_for.total_seconds(), 1),
                "alive": state.alive,
            }
            for state in status.workers
        ]
        return {"workers": workers, **worker_summary(status)}
