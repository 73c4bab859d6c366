"""The schema of the configuration: each section's keys, their types and bounds. Unknown keys are
refused; a plugin's own tables are checked by the plugin (`check_configured`)."""

from __future__ import annotations

import ipaddress
import re
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
from plugins.backend_settings import setting_list

ENV_PREFIX = "SECRETS_"
MODES = ("development", "production")
LOG_FORMATS = ("plain", "json")
TLS_VERSIONS = ("1.2", "1.3")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
# A browser origin: scheme, host and port, nothing after them.
ORIGIN = re.compile(r"^(?:\*|https?://[^/\s?#]+)$")
BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# The name of a plugin, or of what one registers (a sink, a key provider).
PLUGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


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
    max_streams = fields.Integer(validate=validate.Range(0, 10_000))
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


class BackendSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # plugin-specific keys are validated by the plugin itself

    plugin = fields.String(required=True)


class SettingsSchema(Schema):
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
