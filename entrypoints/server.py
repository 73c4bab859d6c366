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

import errno
import ipaddress
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from adapters.db.key_registry import record_active_key
from adapters.db.migrate import upgrade
from core.errors import ConfigurationError
from entrypoints.config import Settings, load_settings
from entrypoints.container import Container
from entrypoints.logs import configure_logging

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

# A worker takes at most this many requests per thread at once before the socket backlog holds
# the rest (granian's backpressure).
BACKPRESSURE_PER_THREAD = 2
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def check_listen_address(settings: Settings) -> None:
    """Refuse to serve where this server must not: development mode (its root token, its
    generated key) anywhere but on loopback, or a port another server already listens on.

    granian's workers bind with SO_REUSEPORT, so without this a second server on the same port
    would start and the kernel would share the connections between the two (two databases)."""
    if not settings.production and not is_loopback(settings.host):
        raise ConfigurationError(
            f"development mode listens on loopback only (127.0.0.1, ::1, localhost), not on "
            f"'{settings.host}': to serve other machines run production mode "
            "(SECRETS_MODE=production, a master key in SECRETS_MASTER_KEY or a key file, and "
            "[identity.jwt] or service accounts)",
            details={"key": "host"},
        )
    try:
        taken = port_in_use(settings.host, settings.port)
    except OSError as error:  # not an address of this machine, a privileged port…
        raise ConfigurationError(
            f"cannot listen on {settings.host} port {settings.port}: {error.strerror or error}",
            details={"key": "host"},
        ) from None
    if taken:
        raise ConfigurationError(
            f"port {settings.port} on {settings.host} is already in use (another `secretctl "
            "serve`?): stop that server or choose another port (--port, SECRETS_PORT)",
            details={"key": "port"},
        )


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # another host name: it may resolve to anything
        return False


def port_in_use(host: str, port: int) -> bool:
    """Whether binding `host:port` without SO_REUSEPORT fails because something holds it
    (a listener, whatever its own options). SO_REUSEADDR keeps a recently closed server's
    connections in TIME_WAIT from counting."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


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

    check_listen_address(settings)  # again, just before binding: the narrowest window
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
