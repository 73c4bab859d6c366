"""The framework ceiling: a Flask endpoint returning a constant JSON body, served by the
service's own server setup (`entrypoints.server.run_server`: granian, WSGI workers, blocking
threads, backpressure), so that `ours / ceiling` shows what the service's own work costs.

Run as `python -m benchmarks.ceiling --port N --workers W`.
"""

from __future__ import annotations

import argparse
from typing import Any

from flask import Flask

from entrypoints.config import Settings
from entrypoints.server import run_server

# The shape and size of a value read's answer.
BODY = {
    "id": "0b9e4c55-7f0e-4d5c-9a8e-2f1c3b4d5e6f",
    "name": "SHARED_00",
    "version": 3,
    "value": "bench-project-p-0-0-0-SHARED_00-v3-0123456789abcdef",
    "encoding": "utf-8",
    "created_at": "2026-01-01T00:00:00+00:00",
    "expires_at": None,
}


def create_ceiling_app() -> Flask:
    app = Flask("framework_ceiling")
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.get("/ceiling")
    def constant() -> dict[str, Any]:
        return BODY

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    args = parser.parse_args()
    settings = Settings(port=args.port, workers=args.workers, log_level="INFO")
    run_server(settings, target="benchmarks.ceiling:create_ceiling_app")


if __name__ == "__main__":
    main()
