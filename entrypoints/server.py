"""Start-up for `secretctl serve`: prepare data, keys and schema once, then fork gunicorn workers.

Everything that must happen exactly once (creating the key file, migrating, choosing the dev
root token) happens here in the master process, before any worker exists.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from adapters.db.key_registry import record_active_key
from adapters.db.migrate import upgrade
from entrypoints.config import Settings
from entrypoints.container import Container
from entrypoints.logs import configure_logging

log = logging.getLogger(__name__)


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


class GunicornServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": f"{self.settings.host}:{self.settings.port}",
            "workers": self.settings.workers,
            "worker_class": "gthread",
            "threads": self.settings.threads,
            "accesslog": None,
            "loglevel": self.settings.log_level.lower(),
            "graceful_timeout": 10,
            "control_socket_disable": True,  # a control socket under $HOME; not needed here
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from entrypoints.http.app import create_app

        return create_app(self.settings)


def run_gunicorn(settings: Settings) -> None:
    GunicornServer(settings).run()
