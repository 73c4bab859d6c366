"""Start-up for `secretctl serve`: prepare data, keys and schema once, then start the workers.

Everything that must happen exactly once (creating the key file, migrating, choosing the dev
root token) happens here in the main process, before any worker exists. The HTTP server is
granian (WSGI, worker processes with a pool of blocking threads each), chosen by measurement
over gunicorn's gthread workers: see README "Performance".

Workers build their own settings from the same environment and configuration file
(`SECRETS_CONFIG`); what the main process decided for them travels in the environment
(`SECRETS_DEV_ROOT_TOKEN` in development mode only).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from adapters.db.key_registry import record_active_key
from adapters.db.migrate import upgrade
from entrypoints.config import Settings, load_settings
from entrypoints.container import Container
from entrypoints.logs import configure_logging

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

# A worker takes at most this many requests per thread at once before the socket backlog holds
# the rest (granian's backpressure).
BACKPRESSURE_PER_THREAD = 2


def prepare(settings: Settings, *, migrate: bool) -> None:
    configure_logging(settings.log_level)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    container = Container(settings=settings)
    try:
        key_provider = container.key_provider()
        engine = container.engine()
        if migrate:
            upgrade(engine)
        record_active_key(engine, key_provider)
        container.backends()  # fail at start, not at the first request, on a bad backend
    finally:
        container.shutdown_resources()


def worker_app() -> Flask:
    """The app of one worker process (granian's factory target)."""
    from entrypoints.http.app import create_app

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def run_server(
    settings: Settings,
    target: str = "entrypoints.server:worker_app",
    environ: dict[str, str] | None = None,
) -> None:
    """Serve `target` (a factory of the WSGI app) with the settings' workers and threads."""
    from granian import Granian
    from granian.constants import Interfaces

    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    assert environ is not None
    if settings.dev_root_token and not settings.production:
        environ["SECRETS_DEV_ROOT_TOKEN"] = settings.dev_root_token
    options: dict[str, Any] = {
        "address": settings.host,
        "port": settings.port,
        "interface": Interfaces.WSGI,
        "workers": settings.workers,
        "blocking_threads": settings.threads,
        "backpressure": settings.threads * BACKPRESSURE_PER_THREAD,
        "websockets": False,
        "factory": True,
        "log_enabled": True,
        "log_access": False,
        "respawn_failed_workers": True,
    }
    Granian(target, **options).serve()
