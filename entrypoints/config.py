"""Configuration in layers: defaults, a TOML file, then `SECRETS_*` environment variables.

Top-level keys are overridden by `SECRETS_<KEY>` (e.g. `SECRETS_PORT`), nested ones by
`SECRETS_<TABLE>__<NAME>__<KEY>` (e.g. `SECRETS_BACKENDS__VAULT__URL`). Every key's type is
declared here (or, for a plugin's own settings, by the plugin), so a value from the environment
becomes that type: a list-valued key (`ListSetting`) takes `a,b,c` or `["a", "b", "c"]`.
Values that are themselves secrets are never read from the file: the master key comes from
`SECRETS_MASTER_KEY` (or a key file) and the development root token from
`SECRETS_DEV_ROOT_TOKEN`. Everything is validated at start, and a bad key is named in the error;
what plugins configure is checked when the container is built (`check_configured`), still
before anything is served.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from marshmallow import (
    EXCLUDE,
    INCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from adapters.identity import ISSUER_KINDS, ISSUER_NAME, JWT_ALGORITHMS
from adapters.webhooks import configured_targets
from core.domain.errors import ConfigurationError
from core.policy import DEFAULT_NAME_PATTERN
from plugins.backend_settings import setting_list

ENV_PREFIX = "SECRETS_"
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
MODES = ("development", "production")
ROTATION_DEFAULTS: dict[str, Any] = {
    "grace_seconds": 86400,
    "timeout_seconds": 300,
    "retry_seconds": 3600,
    "webhooks": {},
}
READ_CACHE_DEFAULTS: dict[str, Any] = {"max_entries": 10_000, "ttl_seconds": 60.0}
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
LOG_FORMATS = ("plain", "json")
TLS_VERSIONS = ("1.2", "1.3")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
# A browser origin: scheme, host and port, nothing after them.
ORIGIN = re.compile(r"^(?:\*|https?://[^/\s?#]+)$")
# Where marshmallow files an error that is no key's own: a table's values, a whole table.
NOT_KEYS = frozenset({"value", "_schema"})
BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# The name of a plugin, or of what one registers (a sink, a key provider).
PLUGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


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


class ListSetting(fields.List[Any]):
    """A list-valued key: a TOML array, or from the environment the text of one
    (`plugins.backend_settings.setting_list`: `a,b` or `["a", "b"]`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            items = setting_list(value)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        return super()._deserialize(items, attr, data, **kwargs)


class _Section(Schema):
    class Meta:
        unknown = RAISE


class _PluginTables(Schema):
    """A section whose declared keys sit beside tables of plugins' own settings (`[audit.file]`),
    or beside a plugin's keys (`[keys] path`), which that plugin checks when it is built."""

    class Meta:
        unknown = INCLUDE


class _WebhookSchema(_Section):
    """`[events.webhooks.<name>]`: the URL, and the HMAC key by reference (one of the two)."""

    url = fields.String(required=True, validate=validate.Length(1, 2048))
    secret_env = fields.String(validate=validate.Length(min=1))
    secret_file = fields.String(validate=validate.Length(min=1))
    timeout_seconds = fields.Float(validate=validate.Range(1, 60))

    @validates_schema
    def _one_key(self, data: dict[str, Any], **_: Any) -> None:
        if ("secret_env" in data) == ("secret_file" in data):
            raise ValidationError("give the HMAC key by secret_env or secret_file (one of them)")


class _RotationWebhookSchema(_WebhookSchema):
    """`[rotation.webhooks.<name>]`: a rotation target, and the scopes whose secrets may name it
    (`organization/acme`, `project/p-42`… or `global`; each with what lies below it)."""

    scopes = ListSetting(
        fields.String(validate=validate.Length(1, 300)),
        required=True,
        validate=validate.Length(1, 1000),
    )


class _RotationSchema(_Section):
    grace_seconds = fields.Integer(validate=validate.Range(0, 90 * 86400))
    timeout_seconds = fields.Integer(validate=validate.Range(10, 86400))
    retry_seconds = fields.Integer(validate=validate.Range(60, 7 * 86400))
    webhooks = fields.Dict(
        keys=fields.String(validate=validate.Regexp(BACKEND_NAME)),
        values=fields.Nested(_RotationWebhookSchema),
    )


class _WorkerSchema(_Section):
    poll_seconds = fields.Float(validate=validate.Range(0.1, 3600))
    batch_size = fields.Integer(validate=validate.Range(1, 1000))
    lease_seconds = fields.Integer(validate=validate.Range(30, 86400))
    embedded = fields.Boolean()


class _ReadCacheSchema(_Section):
    max_entries = fields.Integer(validate=validate.Range(0, 1_000_000))  # 0 turns it off
    ttl_seconds = fields.Float(validate=validate.Range(0.1, 3600))


class _AuthSchema(_Section):
    failures_per_minute = fields.Integer(validate=validate.Range(0, 100_000))  # 0 turns it off


def _network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValidationError(
            f"'{text}' is not an IP address or network (such as 10.0.0.0/8)"
        ) from None
    return True


def _env_name(text: str) -> bool:
    if not ENV_NAME.fullmatch(text):
        raise ValidationError("must be the name of an environment variable")
    if text.upper().startswith(ENV_PREFIX):
        raise ValidationError(
            f"the variables named {ENV_PREFIX}* are configuration keys: choose another name "
            "(such as METRICS_TOKEN)"
        )
    return True


class _MetricsSchema(_Section):
    """`[metrics]`: whether `/metrics` is served, and how it is protected."""

    enabled = fields.Boolean()
    token_env = fields.String(validate=_env_name)
    port = fields.Integer(validate=validate.Range(1, 65535))
    host = fields.String(validate=validate.Length(1, 255))


class _CorsSchema(_Section):
    allowed_origins = ListSetting(
        fields.String(validate=validate.Regexp(ORIGIN, error="not an origin: {input}")),
        validate=validate.Length(max=100),
    )
    max_age_seconds = fields.Integer(validate=validate.Range(0, 86400))


class _TlsSchema(_Section):
    """`[tls]`: the certificate chain and key the server answers HTTPS with; the key's
    password, if any, by environment variable."""

    cert_file = fields.String(required=True, validate=validate.Length(1, 4096))
    key_file = fields.String(required=True, validate=validate.Length(1, 4096))
    key_password_env = fields.String(validate=_env_name)
    min_version = fields.String(validate=validate.OneOf(TLS_VERSIONS))


class _UiOidcSchema(_Section):
    """`[ui.oidc]`: the identity provider the console signs people in with (authorization code
    with PKCE); the client secret, if the client has one, by reference (never in the file)."""

    issuer = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    client_id = fields.String(required=True, validate=validate.Length(1, 255))
    client_secret_env = fields.String(validate=_env_name)
    client_secret_file = fields.String(validate=validate.Length(1, 4096))
    scopes = ListSetting(fields.String(validate=validate.Length(1, 255)))

    @validates_schema
    def _one_secret(self, data: dict[str, Any], **_: Any) -> None:
        if "client_secret_env" in data and "client_secret_file" in data:
            raise ValidationError("give the client secret by client_secret_env or file, not both")


class _UiSchema(_Section):
    """`[ui]`: the web console."""

    enabled = fields.Boolean()
    idle_timeout_minutes = fields.Integer(validate=validate.Range(1, 24 * 60))
    oidc = fields.Nested(_UiOidcSchema)


class _EventsSchema(_Section):
    max_attempts = fields.Integer(validate=validate.Range(1, 100))
    keep_delivered_days = fields.Integer(validate=validate.Range(1, 365))
    max_streams = fields.Integer(validate=validate.Range(0, 100_000))
    poll_seconds = fields.Float(validate=validate.Range(0.05, 60))
    keepalive_seconds = fields.Float(validate=validate.Range(0.1, 3600))
    webhooks = fields.Dict(
        keys=fields.String(validate=validate.Regexp(BACKEND_NAME)),
        values=fields.Nested(_WebhookSchema),
    )


class _JwtSchema(_Section):
    """`[identity.jwt]`: the identity provider whose tokens are accepted; whether the key and
    the algorithms fit together is checked by `adapters.identity.JwtAuthenticator`."""

    issuer = fields.String(required=True, validate=validate.Length(1, 2048))
    audience = fields.String(required=True, validate=validate.Length(1, 2048))
    algorithms = ListSetting(
        fields.String(validate=validate.OneOf(JWT_ALGORITHMS)),
        validate=validate.Length(min=1),
    )
    shared_key_env = fields.String(validate=validate.Length(1, 255))
    jwks_file = fields.String(validate=validate.Length(1, 4096))
    jwks_url = fields.Url(schemes={"http", "https"}, require_tld=False)
    user_claim = fields.String(validate=validate.Length(1, 255))
    groups_claim = fields.String(validate=validate.Length(1, 255))
    leeway_seconds = fields.Integer(validate=validate.Range(0, 600))


class _IssuerSchema(_Section):
    """`[identity.issuers.<name>]`: a workload issuer (a Kubernetes cluster's service-account
    tokens, a CI's OIDC tokens); its tokens stand for `service:<name>:…` principals only."""

    issuer = fields.String(required=True, validate=validate.Length(1, 2048))
    audience = fields.String(required=True, validate=validate.Length(1, 2048))
    kind = fields.String(validate=validate.OneOf(ISSUER_KINDS))
    subject_claim = fields.String(validate=validate.Length(1, 255))
    algorithms = ListSetting(
        fields.String(validate=validate.OneOf(JWT_ALGORITHMS)),
        validate=validate.Length(min=1),
    )
    shared_key_env = fields.String(validate=validate.Length(1, 255))
    jwks_file = fields.String(validate=validate.Length(1, 4096))
    jwks_url = fields.Url(schemes={"http", "https"}, require_tld=False)
    leeway_seconds = fields.Integer(validate=validate.Range(0, 600))


class _IdentitySchema(_Section):
    jwt = fields.Nested(_JwtSchema)
    issuers = fields.Dict(
        keys=fields.String(validate=validate.Regexp(ISSUER_NAME)),
        values=fields.Nested(_IssuerSchema),
    )


class _AuditSchema(_PluginTables):
    """`[audit]`: the sinks events are mirrored to, the checkpoint cadence, and per sink a table
    of its settings (`[audit.file] path`)."""

    sinks = ListSetting(fields.String(validate=validate.Regexp(PLUGIN_NAME)))
    checkpoint_every = fields.Integer(validate=validate.Range(1, 1_000_000))

    @validates_schema
    def _tables_only(self, data: dict[str, Any], **_: Any) -> None:
        for key, value in data.items():
            if key not in self.fields and not isinstance(value, dict):
                raise ValidationError(
                    "unknown setting; [audit] takes sinks, checkpoint_every and a table of "
                    "settings per sink",
                    key,
                )


class _KeysSchema(_PluginTables):
    """`[keys]`: the key provider, and its own settings beside it (`path`)."""

    provider = fields.String(validate=validate.Regexp(PLUGIN_NAME))


class _PluginsSchema(_Section):
    disabled = ListSetting(fields.String(validate=validate.Regexp(PLUGIN_NAME)))


class _BackendSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # plugin-specific keys are validated by the plugin itself

    plugin = fields.String(required=True)


class _SettingsSchema(Schema):
    """Validates the merged file + environment layers; unknown keys are refused."""

    mode = fields.String(validate=validate.OneOf(MODES))
    data_dir = fields.String(validate=validate.Length(min=1))
    database_url = fields.String()
    host = fields.String(validate=validate.Length(min=1))
    port = fields.Integer(validate=validate.Range(1, 65535))
    workers = fields.Integer(validate=validate.Range(1, 64))
    threads = fields.Integer(validate=validate.Range(1, 64))
    log_level = fields.String(
        validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    )
    max_value_bytes = fields.Integer(validate=validate.Range(1, 16 * 1024 * 1024))
    max_request_bytes = fields.Integer(validate=validate.Range(1024, 64 * 1024 * 1024))
    max_import_bytes = fields.Integer(validate=validate.Range(1024, 1024 * 1024 * 1024))
    retention_days = fields.Integer(validate=validate.Range(7, 90))
    name_pattern = fields.String(validate=validate.Length(min=1))
    default_backend = fields.String()
    backends = fields.Dict(keys=fields.String(), values=fields.Dict())
    keys = fields.Nested(_KeysSchema)
    identity = fields.Nested(_IdentitySchema)
    audit = fields.Nested(_AuditSchema)
    plugins = fields.Nested(_PluginsSchema)
    max_versions = fields.Integer(validate=validate.Range(1, 1000))
    expiry_warning_days = ListSetting(
        fields.Integer(validate=validate.Range(1, 365)), validate=validate.Length(max=10)
    )
    rotation = fields.Nested(_RotationSchema)
    worker = fields.Nested(_WorkerSchema)
    events = fields.Nested(_EventsSchema)
    read_cache = fields.Nested(_ReadCacheSchema)
    auth = fields.Nested(_AuthSchema)
    log_format = fields.String(validate=validate.OneOf(LOG_FORMATS))
    trusted_proxies = ListSetting(
        fields.String(validate=_network), validate=validate.Length(max=100)
    )
    metrics = fields.Nested(_MetricsSchema)
    cors = fields.Nested(_CorsSchema)
    tls = fields.Nested(_TlsSchema)
    ui = fields.Nested(_UiSchema)

    @pre_load
    def _normalize(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if isinstance(data.get("log_level"), str):
            data["log_level"] = data["log_level"].upper()
        return data


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Build the settings from defaults, the TOML file (if any) and the environment."""
    environ = os.environ if environ is None else environ
    path = config_file or environ.get("SECRETS_CONFIG")
    layered: dict[str, Any] = _read_toml(Path(path)) if path else {}
    _merge(layered, _from_environment(environ))
    try:
        data = _SettingsSchema().load(layered)
        for name, backend in data.get("backends", {}).items():
            if not BACKEND_NAME.fullmatch(name):
                raise ValidationError({f"backends.{name}": [f"must match {BACKEND_NAME.pattern}"]})
            errors = _BackendSchema().validate(backend)
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
