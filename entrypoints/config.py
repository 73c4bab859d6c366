"""Configuration in layers: defaults, a TOML file, then `SECRETS_*` environment variables.

Top-level keys are overridden by `SECRETS_<KEY>` (e.g. `SECRETS_PORT`), nested ones by
`SECRETS_<TABLE>__<NAME>__<KEY>` (e.g. `SECRETS_BACKENDS__VAULT__URL`). Every key's type is
declared (or, for a plugin's own settings, by the plugin), so a value from the environment
becomes that type: a list-valued key (`ListSetting`) takes `a,b,c` or `["a", "b", "c"]` (the
types, bounds and sections are in `entrypoints.config_schema`).
Values that are themselves secrets are never read from the file: the master key comes from
`SECRETS_MASTER_KEY` (or a key file) and the development root token from
`SECRETS_DEV_ROOT_TOKEN`. Everything is validated at start, and a bad key is named in the error;
what plugins configure is checked when the container is built (`check_configured`), still
before anything is served.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from marshmallow import (
    ValidationError,
)

from adapters.webhooks import configured_targets
from core.domain.errors import ConfigurationError
from core.policy import DEFAULT_NAME_PATTERN
from entrypoints.config_schema import BACKEND_NAME, ENV_PREFIX, BackendSchema, SettingsSchema

# Variables read elsewhere (secrets, the CLI client, the tests), never configuration keys.
NOT_CONFIGURATION = frozenset(
    {
        "SECRETS_CONFIG",
        "SECRETS_MASTER_KEY",
        "SECRETS_MASTER_KEY_PREVIOUS",
        "SECRETS_DEV_ROOT_TOKEN",
        "SECRETS_TOKEN",
        "SECRETS_ADDR",
        "SECRETS_TEST_DATABASE_URL",
    }
)
ROTATION_DEFAULTS: dict[str, Any] = {
    "grace_seconds": 86400,
    "timeout_seconds": 300,
    "retry_seconds": 3600,
    "webhooks": {},
}
READ_CACHE_DEFAULTS: dict[str, Any] = {"max_entries": 24_000, "ttl_seconds": 60.0}  # ~17 MiB
# Failed authentications a source address may make a minute before it is answered 429.
AUTH_DEFAULTS: dict[str, Any] = {"failures_per_minute": 30}
# `embedded`: `secretctl serve` runs a worker of its own (turn it off where workers run apart).
WORKER_DEFAULTS: dict[str, Any] = {
    "poll_seconds": 30.0,
    "batch_size": 50,
    "lease_seconds": 600,
    "embedded": True,
}
EVENTS_DEFAULTS: dict[str, Any] = {
    "max_attempts": 12,
    "keep_delivered_days": 7,
    "webhooks": {},
    # The change stream (entrypoints/http/stream.py): open streams a process holds (one server
    # thread each; 503 beyond), how often its one poller reads new events, the keepalive.
    "max_streams": 100,
    "poll_seconds": 0.5,
    "keepalive_seconds": 15.0,
}
# `/metrics` (entrypoints/http/metrics.py): on the API's port, behind the bearer token read from
# `token_env` (open without one in development mode only), or on a listener of its own (`port`).
METRICS_DEFAULTS: dict[str, Any] = {"enabled": True, "host": "127.0.0.1"}
# Origins whose pages may call the API from a browser (none: no CORS headers at all).
CORS_DEFAULTS: dict[str, Any] = {"allowed_origins": [], "max_age_seconds": 600}
# The web console under `/ui` (entrypoints/ui): on by default; a session ends after this many
# idle minutes. `[ui.oidc]` (issuer, client_id, client_secret_env or client_secret_file) adds
# the identity provider's sign-in.
UI_DEFAULTS: dict[str, Any] = {"enabled": True, "idle_timeout_minutes": 30}
# Where marshmallow files an error that is no key's own: a table's values, a whole table.
NOT_KEYS = frozenset({"value", "_schema"})


@dataclass(frozen=True)
class Settings:
    mode: str = "development"
    data_dir: Path = Path(".secrets-data")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    threads: int = 8  # per worker: requests waiting on the database let the others run
    log_level: str = "INFO"
    max_value_bytes: int = 64 * 1024
    max_request_bytes: int = 1024 * 1024
    max_import_bytes: int = 16 * 1024 * 1024
    retention_days: int = 30
    name_pattern: str = DEFAULT_NAME_PATTERN
    default_backend: str = "local"
    backends: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"local": {"plugin": "local"}}
    )
    keys: dict[str, Any] = field(default_factory=lambda: {"provider": "auto"})
    identity: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    max_versions: int = 100  # per secret unless it says otherwise; older values are pruned
    expiry_warning_days: tuple[int, ...] = (30, 7, 1)
    rotation: dict[str, Any] = field(default_factory=lambda: dict(ROTATION_DEFAULTS))
    worker: dict[str, Any] = field(default_factory=lambda: dict(WORKER_DEFAULTS))
    events: dict[str, Any] = field(default_factory=lambda: dict(EVENTS_DEFAULTS))
    read_cache: dict[str, Any] = field(default_factory=lambda: dict(READ_CACHE_DEFAULTS))
    auth: dict[str, Any] = field(default_factory=lambda: dict(AUTH_DEFAULTS))
    log_format: str = "plain"
    # Peers whose X-Forwarded-For/-Proto/-Host are believed (entrypoints/http/proxies.py).
    trusted_proxies: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=lambda: dict(METRICS_DEFAULTS))
    cors: dict[str, Any] = field(default_factory=lambda: dict(CORS_DEFAULTS))
    tls: dict[str, Any] = field(default_factory=dict)  # cert_file, key_file: served over HTTPS
    ui: dict[str, Any] = field(default_factory=lambda: dict(UI_DEFAULTS))
    disabled_plugins: tuple[str, ...] = ()
    dev_root_token: str | None = field(default=None, repr=False)

    @property
    def production(self) -> bool:
        return self.mode == "production"


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Build the settings from defaults, the TOML file (if any) and the environment."""
    environ = os.environ if environ is None else environ
    path = config_file or environ.get("SECRETS_CONFIG")
    layered: dict[str, Any] = _read_toml(Path(path)) if path else {}
    _merge(layered, _from_environment(environ))
    try:
        data = SettingsSchema().load(layered)
        for name, backend in data.get("backends", {}).items():
            if not BACKEND_NAME.fullmatch(name):
                raise ValidationError({f"backends.{name}": [f"must match {BACKEND_NAME.pattern}"]})
            errors = BackendSchema().validate(backend)
            if errors:
                raise ValidationError({f"backends.{name}": errors})
    except ValidationError as error:
        raise ConfigurationError(_describe(error.messages)) from None

    disabled = data.pop("plugins", {}).get("disabled", ())
    data_dir = Path(data.pop("data_dir", Settings.data_dir))
    backends = {**Settings().backends, **data.pop("backends", {})}
    warning_days = data.pop("expiry_warning_days", Settings.expiry_warning_days)
    lifecycle = {
        "rotation": {**ROTATION_DEFAULTS, **data.pop("rotation", {})},
        "worker": {**WORKER_DEFAULTS, **data.pop("worker", {})},
        "events": {**EVENTS_DEFAULTS, **data.pop("events", {})},
        "read_cache": {**READ_CACHE_DEFAULTS, **data.pop("read_cache", {})},
        "auth": {**AUTH_DEFAULTS, **data.pop("auth", {})},
    }
    operations = {
        "trusted_proxies": tuple(data.pop("trusted_proxies", ())),
        "metrics": {**METRICS_DEFAULTS, **data.pop("metrics", {})},
        "cors": {**CORS_DEFAULTS, **data.pop("cors", {})},
        "ui": {**UI_DEFAULTS, **data.pop("ui", {})},
    }
    settings = Settings(
        **data,
        data_dir=data_dir,
        backends=backends,
        expiry_warning_days=tuple(sorted(set(warning_days), reverse=True)),
        **lifecycle,
        **operations,
        disabled_plugins=tuple(disabled),
        dev_root_token=environ.get("SECRETS_DEV_ROOT_TOKEN") or None,
    )
    if not settings.database_url:
        settings = replace(
            settings, database_url=f"sqlite:///{(data_dir / 'secrets.db').resolve()}"
        )
    if settings.production and settings.dev_root_token:
        raise ConfigurationError(
            "SECRETS_DEV_ROOT_TOKEN is refused in production mode: configure [identity.jwt] and "
            "service accounts, and grant the first admin with `secretctl admin grant`"
        )
    if settings.worker["lease_seconds"] <= settings.rotation["timeout_seconds"]:
        raise ConfigurationError(
            "configuration key 'worker.lease_seconds' must be longer than "
            "'rotation.timeout_seconds', or a slow rotation could be claimed twice"
        )
    # Every webhook's URL and HMAC key are checked now, not when the first request needs them.
    configured_targets(settings.events["webhooks"], environ, "events.webhooks")
    configured_targets(settings.rotation["webhooks"], environ, "rotation.webhooks")
    _check_operations(settings, environ)
    if settings.default_backend not in settings.backends:
        raise ConfigurationError(
            f"configuration key 'default_backend': '{settings.default_backend}' is not one of "
            f"the configured backends ({', '.join(sorted(settings.backends))})"
        )
    return settings


def _check_operations(settings: Settings, environ: Mapping[str, str]) -> None:
    """What the `[metrics]` and `[tls]` keys name must exist: the token and password variables
    (their files are read when the server starts)."""
    metrics = settings.metrics
    if metrics.get("port") == settings.port:
        raise ConfigurationError(
            f"configuration key 'metrics.port': {settings.port} is the API's own port; give "
            "the metrics listener another one, or none to serve /metrics on the API's port"
        )
    wanted = [("metrics.token_env", metrics.get("token_env"))]
    wanted.append(("tls.key_password_env", settings.tls.get("key_password_env")))
    for key, name in wanted:
        if name and not environ.get(name):
            raise ConfigurationError(
                f"configuration key '{key}': the environment variable {name} is not set",
                details={"key": key},
            )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"configuration file {path} is not valid TOML: {error}") from None


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in NOT_CONFIGURATION:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for depth, part in enumerate(path):
            inner = node.setdefault(part, {} if depth < len(path) - 1 else value)
            if isinstance(inner, dict) == (depth == len(path) - 1):
                raise ConfigurationError(
                    f"configuration key '{'.'.join(path[: depth + 1])}': {name} and another "
                    "variable give it both as a value and as a table"
                )
            node = inner
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _describe(messages: Any, prefix: str = "") -> str:
    if isinstance(messages, dict):
        return "; ".join(_describe(inner, _key(prefix, key)) for key, inner in messages.items())
    text = " ".join(str(item) for item in messages) if isinstance(messages, list) else messages
    return f"configuration key '{prefix}': {text}"


def _key(prefix: str, key: Any) -> str:
    """The key an error is filed under: a table's own, a list item's (`sinks[0]`), or a key."""
    if key in NOT_KEYS:
        return prefix
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}".lstrip(".")
