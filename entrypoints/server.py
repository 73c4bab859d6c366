"""Start-up for `secretctl serve`: prepare data, keys and schema once, then start the workers.

Everything that must happen exactly once (creating the key file, migrating, choosing the dev
root token) happens here in the main process, before any worker exists. The HTTP server is
granian (WSGI, worker processes with a pool of blocking threads each), chosen by measurement
over gunicorn's gthread workers: see docs/performance.md.

Workers build their own settings from the same environment and configuration file
(`SECRETS_CONFIG`); what the main process decided for them travels in the environment
(`SECRETS_DEV_ROOT_TOKEN` in development mode only).

Unless told not to (`--no-worker`, `[worker] embedded = false`), the server also runs the
lifecycle jobs: one `secretctl worker` child process per server (`EmbeddedWorker`), whatever the
number of HTTP workers.
"""

from __future__ import annotations

import atexit
import errno
import ipaddress
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.db.key_registry import record_active_key
from adapters.db.migrate import upgrade
from core.domain.errors import ConfigurationError
from entrypoints.config import Settings, load_settings
from entrypoints.container import Container, check_configured
from entrypoints.http.metrics import MULTIPROCESS_DIR, MetricsAccess, metrics_access
from entrypoints.logs import configure_logging, granian_log_config

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

# A worker takes at most this many requests per thread at once before the socket backlog holds
# the rest (granian's backpressure).
BACKPRESSURE_PER_THREAD = 2
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
# The embedded worker: started again this long after it exits on its own; given this long to
# finish its pass when the server stops, then killed.
WORKER_RESTART_SECONDS = 5.0
WORKER_STOP_SECONDS = 30.0
# How often a worker started by a server (the embedded worker, an HTTP worker) checks that the
# server is still there.
PARENT_CHECK_SECONDS = 1.0
# The server's main process, named to its HTTP workers (`stop_with_server`).
SERVER_PID = "SECRETCTL_SERVER_PID"
# granian forks its HTTP workers from the main process (at start, and to replace one) while the
# thread supervising the embedded worker may be starting it. A fork in between would inherit the
# pipe through which `subprocess` learns that the worker has started, and that thread would wait
# on it as long as the HTTP worker lives (so would the server's stop). Forks wait for a start.
_STARTING = threading.Lock()
_fork_guarded = False


WORKERS_KILL_SECONDS = 10


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
    configure_logging(settings.log_level, settings.log_format)
    check_tls(settings)
    check_metrics_listener(settings)
    try:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(
            f"configuration key 'data_dir': cannot make {settings.data_dir}: {error.strerror}",
            details={"key": "data_dir"},
        ) from None
    container = Container(settings=settings)
    try:
        check_configured(container)  # fail at start, not at the first request, on a bad setting
        key_provider = container.key_provider()
        engine = container.engine()
        if migrate:
            upgrade(engine)
        record_active_key(engine, key_provider)
    finally:
        container.shutdown_resources()


def worker_app() -> Flask:
    """The app of one worker process (granian's factory target)."""
    from entrypoints.http.admission import Admission
    from entrypoints.http.app import create_app
    from entrypoints.memory import limit_malloc_arenas, start_trimming

    server_pid = int(os.environ.get(SERVER_PID) or 0)
    if server_pid and server_pid != os.getpid():  # a process of granian's, forked by the server
        stop_with_server(server_pid)
    limit_malloc_arenas()  # before the request threads allocate (entrypoints/memory.py)
    start_trimming()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    # granian gives this process `threads` + `[events] max_streams` threads (run_server): the
    # requests that are not streams run `threads` at a time, as many as before streams had
    # threads of their own.
    app.wsgi_app = Admission(app.wsgi_app, settings.threads)  # type: ignore[method-assign]
    return app


def stop_with_server(server_pid: int) -> None:
    """Stop this HTTP worker once the server's main process, `server_pid`, is gone.

    granian's main process stops its workers when it stops; killed (`kill -9`, systemd's
    KillMode=process, a supervisor's SIGKILL) it cannot, and they would serve on: holding the
    port (SO_REUSEPORT: a new server there would share its connections with them) and the
    database. So each one stops as the server would have stopped it: SIGTERM (granian's
    graceful stop), then an exit `WORKERS_KILL_SECONDS` later (an open change stream never
    ends by itself). A watch of the parent rather than `PR_SET_PDEATHSIG`: that signal comes
    when the *thread* that forked the worker ends, and would leave the hard exit to do anyway."""

    def stop() -> None:
        pid = os.getpid()
        log.warning("the server (process %s) is gone: HTTP worker %s stops", server_pid, pid)
        os.kill(pid, signal.SIGTERM)
        time.sleep(WORKERS_KILL_SECONDS)
        log.warning("HTTP worker %s did not stop in %g s: it exits", pid, WORKERS_KILL_SECONDS)
        os._exit(1)

    when_parent_gone(server_pid, stop)


def run_server(
    settings: Settings,
    target: str = "entrypoints.server:worker_app",
    environ: dict[str, str] | None = None,
    *,
    with_worker: bool = False,
) -> None:
    """Serve `target` (a factory of the WSGI app) with the settings' workers and threads; with
    `with_worker`, run an `EmbeddedWorker` for as long as the server runs."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

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
        # `threads` for requests (entrypoints/http/admission.py keeps them to that), and one
        # thread more for each change stream a process may hold (they wait, not work).
        "blocking_threads": settings.threads + stream_threads(settings),
        "backpressure": settings.threads * BACKPRESSURE_PER_THREAD + stream_threads(settings),
        "websockets": False,
        "factory": True,
        "log_enabled": True,
        "log_level": LogLevels(settings.log_level.lower()),
        "log_dictconfig": granian_log_config(),  # its lines in the service's format
        "log_access": False,  # the service writes its own (entrypoints/http/context.py)
        "respawn_failed_workers": True,
        # An open change stream never ends by itself: past this, a stopping worker is killed
        # (a rolling deploy must not wait for every client to hang up).
        "workers_kill_timeout": WORKERS_KILL_SECONDS,
        **tls_options(settings),
    }
    server = Granian(target, **options)
    if metrics_access(settings) is MetricsAccess.PORT:
        server.on_startup(lambda: start_metrics_listener(settings, environ))
    jobs = None
    if with_worker:
        worker_environ = {k: v for k, v in environ.items() if k != "SECRETS_DEV_ROOT_TOKEN"}
        jobs = EmbeddedWorker(embedded_worker_command(), worker_environ)
        server.on_startup(jobs.start)  # once granian has the socket and its signal handlers
        server.on_shutdown(jobs.stop)
    environ[SERVER_PID] = str(os.getpid())  # for its HTTP workers (`stop_with_server`)
    try:
        server.serve()
    finally:
        if jobs is not None:
            jobs.stop()


def stream_threads(settings: Settings) -> int:
    """The threads a process keeps for change streams and long polls: `[events] max_streams`."""
    return int(settings.events["max_streams"])


def metrics_directory(environ: MutableMapping[str, str]) -> str:
    """A new private directory (0700) where every process of this server writes its metrics,
    named to them all in `PROMETHEUS_MULTIPROC_DIR`, and removed when the server exits. Each
    start gets an empty one: counts of an earlier run never mix in. Called before prometheus-
    client is imported (adapters/metrics.py says why)."""
    directory = tempfile.mkdtemp(prefix="secretctl-metrics-")
    environ[MULTIPROCESS_DIR] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def check_metrics_listener(settings: Settings) -> None:
    """The metrics listener's port is free; production without a way to `/metrics` says so."""
    access = metrics_access(settings)
    if access is MetricsAccess.PORT:
        host, port = settings.metrics["host"], settings.metrics["port"]
        try:
            taken = port_in_use(host, port)
        except OSError as error:
            raise ConfigurationError(
                f"cannot listen on {host} port {port} for metrics: {error.strerror or error}",
                details={"key": "metrics.host"},
            ) from None
        if taken:
            raise ConfigurationError(
                f"configuration key 'metrics.port': port {port} on {host} is already in use",
                details={"key": "metrics.port"},
            )
    elif access is MetricsAccess.OFF and settings.metrics["enabled"]:
        log.warning(
            "/metrics is not served: in production it needs [metrics] token_env (a bearer "
            "token of its own) or [metrics] port (a listener of its own); [metrics] enabled = "
            "false silences this"
        )


def start_metrics_listener(settings: Settings, environ: Mapping[str, str]) -> None:
    """`/metrics` on `[metrics] host` and `port`, served by the main process: every process's
    counts, and the database's gauges (through an engine that keeps no connection between
    scrapes, as the workers are forked from this process)."""
    from prometheus_client import start_http_server

    from adapters.clock import SystemClock
    from adapters.db.engine import create_engine_from_url
    from adapters.metrics import OperationsCollector, multiprocess_registry

    engine = create_engine_from_url(settings.database_url, track_changes=False)
    gauges = OperationsCollector(engine, SystemClock(), settings.expiry_warning_days, release=True)
    registry = multiprocess_registry(environ[MULTIPROCESS_DIR], [gauges])
    host, port = settings.metrics["host"], settings.metrics["port"]
    start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%s/metrics", host, port)


def check_tls(settings: Settings) -> None:
    """The configured certificate and key load, and belong together."""
    if not settings.tls:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(
            settings.tls["cert_file"], settings.tls["key_file"], tls_key_password(settings)
        )
    except (OSError, ssl.SSLError) as error:
        raise ConfigurationError(
            f"configuration key 'tls': cannot use {settings.tls['cert_file']} and "
            f"{settings.tls['key_file']}: {error.strerror or error}",
            details={"key": "tls.cert_file"},
        ) from None


def tls_key_password(settings: Settings) -> str | None:
    name = settings.tls.get("key_password_env")
    return os.environ.get(name) if name else None


def tls_options(settings: Settings) -> dict[str, Any]:
    """granian's TLS options: HTTPS with the configured certificate, TLS 1.2 at least (or 1.3)."""
    if not settings.tls:
        return {}
    from granian.constants import SSLProtocols

    return {
        "ssl_cert": Path(settings.tls["cert_file"]),
        "ssl_key": Path(settings.tls["key_file"]),
        "ssl_key_password": tls_key_password(settings),
        "ssl_protocol_min": SSLProtocols(f"tls{settings.tls.get('min_version', '1.2')}"),
    }


def embedded_worker_command() -> list[str]:
    """`secretctl worker`, in this interpreter, exiting by itself if this process dies."""
    return [
        sys.executable,
        "-m",
        "entrypoints.cli",
        "worker",
        "--exit-with-parent",
        str(os.getpid()),
    ]


class EmbeddedWorker:
    """`secretctl worker` as a child process of `secretctl serve`: one per server, whatever the
    number of HTTP worker processes.

    A process rather than a thread: granian forks its HTTP workers from the main process, which
    should then hold no database connection nor a job half done, and a worker that crashes or
    grows takes nothing of the server with it. It has a session of its own, so a Ctrl-C at the
    terminal reaches the server, which stops it: SIGTERM (it finishes its pass), then SIGKILL
    after `stop_seconds`. Started again `restart_seconds` after it exits on its own; it exits by
    itself should the server die without stopping it (`--exit-with-parent`)."""

    def __init__(
        self,
        command: list[str],
        environ: dict[str, str],
        restart_seconds: float = WORKER_RESTART_SECONDS,
        stop_seconds: float = WORKER_STOP_SECONDS,
    ) -> None:
        self._command = command
        self._environ = environ
        self._restart_seconds = restart_seconds
        self._stop_seconds = stop_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)

    def start(self) -> None:
        global _fork_guarded
        if not _fork_guarded:
            os.register_at_fork(
                before=_STARTING.acquire,
                after_in_parent=_STARTING.release,
                after_in_child=_STARTING.release,
            )
            _fork_guarded = True
        self._supervisor.start()

    def stop(self) -> None:
        """Stop the worker and wait for it; idempotent."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self._stop_seconds)
            except subprocess.TimeoutExpired:
                log.warning("the embedded worker did not stop in %g s: killed", self._stop_seconds)
                process.kill()
                process.wait()
        if self._supervisor.is_alive():
            self._supervisor.join()

    def _supervise(self) -> None:
        while True:
            with self._lock, _STARTING:  # (subprocess's own fork runs no fork hooks)
                if self._stopping.is_set():
                    return
                process = self._process = subprocess.Popen(  # noqa: S603 - our own command
                    self._command, env=self._environ, start_new_session=True
                )
            status = process.wait()
            if self._stopping.is_set():
                return
            log.warning(
                "the embedded worker exited with status %s; starting it again in %g s",
                status,
                self._restart_seconds,
            )
            if self._stopping.wait(self._restart_seconds):
                return


def exit_with_parent(parent_pid: int, stop: threading.Event) -> None:
    """Set `stop` once process `parent_pid` is no longer this process's parent (it died)."""

    def gone() -> None:
        log.warning("the server (process %s) is gone: the worker stops", parent_pid)
        stop.set()

    when_parent_gone(parent_pid, gone, stop)


def when_parent_gone(
    parent_pid: int, gone: Callable[[], None], until: threading.Event | None = None
) -> None:
    """Call `gone`, in a thread of its own, once process `parent_pid` is no longer this
    process's parent: it died, and its children went to init (or a subreaper). Checked every
    `PARENT_CHECK_SECONDS`, until `until` is set. Comparing with the pid the caller knows (not
    the one `os.getppid()` gives at start) catches a parent that died before the check began."""
    until = threading.Event() if until is None else until

    def watch() -> None:
        while not until.wait(PARENT_CHECK_SECONDS):
            if os.getppid() != parent_pid:
                gone()
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
