"""The service's tables. Every one is prefixed `secret_`: the database is shared.

These definitions describe the schema for queries; the schema itself is created and changed
only by the Alembic migrations in `adapters/db/migrations`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)

PREFIX = "secret_"
ALEMBIC_VERSION_TABLE = "secret_alembic_version"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


scopes = Table(
    "secret_scopes",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("type", String(32), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("parent_pk", Integer, ForeignKey("secret_scopes.pk"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # The keys of the scope's ancestors and its own, "/1/7/12/": "at or below" is a prefix test.
    Column("path", String(255), nullable=False, index=True),
    UniqueConstraint("type", "external_id"),
)

# `environment` is '' for a secret that applies to every environment, so that the unique
# constraint holds on every database (NULLs never collide in a unique index).
secrets = Table(
    "secret_secrets",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("scope_pk", Integer, ForeignKey("secret_scopes.pk"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("environment", String(64), nullable=False, default=""),
    Column("type", String(64), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False, default=dict),
    Column("consumer", String(32), nullable=False),
    Column("backend", String(64), nullable=False),
    Column("current_version", Integer, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("not_before", UTCDateTime, nullable=True),
    Column("max_versions", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Column("updated_by", String(255), nullable=True),
    Column("deleted_at", UTCDateTime, nullable=True),
    Column("purge_after", UTCDateTime, nullable=True),
    Column("revision", BigInteger, nullable=False),
    # Stage labels as version numbers, and the highest number given out (core/domain/secrets.py).
    Column("latest_version", Integer, nullable=False),
    Column("previous_version", Integer, nullable=True),
    Column("pending_version", Integer, nullable=True),
    # The worker's bookkeeping, never part of the secret's metadata: the last expiry warning
    # sent (for which expiry, how many days ahead, 0 for "expired"), and a worker's claim on the
    # secret's jobs (retention purge, pruning, grace periods, warnings) until `claimed_until`.
    Column("expiry_notified_for", UTCDateTime, nullable=True),
    Column("expiry_notified_days", Integer, nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    UniqueConstraint("scope_pk", "environment", "name"),
    # A scope's live secrets in list order (migration 0011): a page is read from it, in order.
    Index(
        "ix_secret_secrets_scope_pk_name_environment",
        "scope_pk",
        "name",
        "environment",
        postgresql_where=text("deleted_at IS NULL"),
        sqlite_where=text("deleted_at IS NULL"),
    ),
)

versions = Table(
    "secret_versions",
    metadata,
    Column("secret_id", Uuid, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("backend", String(64), nullable=False),
    Column("locator", String(1024), nullable=False),
    Column("checksum", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("not_before", UTCDateTime, nullable=True),
    # The end of the grace period of a version a rotation replaced; then it is disabled.
    Column("disable_at", UTCDateTime, nullable=True, index=True),
    ForeignKeyConstraint(["secret_id"], ["secret_secrets.id"], ondelete="CASCADE"),
)

# The local backend's ciphertexts. Keyed by their own id (the locator): the value is written
# before the version row that points at it, so there is no foreign key to that row.
encrypted_values = Table(
    "secret_encrypted_values",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("secret_id", Uuid, nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("blob", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Key-encryption-key versions known to the service: ids and states, never the key bytes.
keys = Table(
    "secret_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

role_bindings = Table(
    "secret_role_bindings",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("principal", String(255), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("scope_pk", Integer, ForeignKey("secret_scopes.pk"), nullable=False, index=True),
    Column("secret_id", Uuid, nullable=True),
    Column("name_pattern", String(255), nullable=True),
    # `name_pattern` as an SQL LIKE pattern (escape character '\'), so queries can apply it.
    Column("name_like", String(512), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
)

service_accounts = Table(
    "secret_service_accounts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("scope_pk", Integer, ForeignKey("secret_scopes.pk"), nullable=False, index=True),
    Column("description", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    # A name is unique in its scope only (migration 0008): see ServiceAccount.principal.
    UniqueConstraint("scope_pk", "name"),
)

# API tokens: only the SHA-256 of each token is stored, never the token.
api_tokens = Table(
    "secret_api_tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "account_id",
        Uuid,
        ForeignKey("secret_service_accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
)

# The audit trail: a hash chain in `seq` order (see core/audit.py). Never holds a value.
audit_events = Table(
    "secret_audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", UTCDateTime, nullable=False, index=True),
    Column("request_id", String(64), nullable=True),
    Column("actor", String(255), nullable=False, index=True),
    Column("actor_type", String(32), nullable=False),
    Column("source_ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("action", String(64), nullable=False, index=True),
    Column("resource", String(512), nullable=False, index=True),
    Column("scope", String(255), nullable=True),
    Column("scope_path", String(255), nullable=True),
    Column("version", Integer, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("reason", String(255), nullable=True),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row: the chain's last seq and hash. Updating it first serializes appends on every database.
audit_head = Table(
    "secret_audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    # Incremented by every transaction that changes what the read caches hold (see uow.py).
    Column("generation", BigInteger, nullable=False, server_default="0"),
)

audit_checkpoints = Table(
    "secret_audit_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# At most one rotation policy per secret. `settings` are the rotator's, and name keys by
# reference (environment variable or file), never inline. `claimed_*`: a worker running it.
rotation_policies = Table(
    "secret_rotation_policies",
    metadata,
    Column("secret_id", Uuid, primary_key=True),
    Column("rotator", String(64), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("interval_seconds", Integer, nullable=True),
    Column("cron", String(128), nullable=True),
    Column("grace_seconds", Integer, nullable=False),
    Column("next_run_at", UTCDateTime, nullable=False, index=True),
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("last_status", String(16), nullable=True),
    Column("last_error", String(512), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Column("updated_by", String(255), nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    ForeignKeyConstraint(["secret_id"], ["secret_secrets.id"], ondelete="CASCADE"),
)

# Change events waiting for delivery, one row per event and subscriber (`target`), written in
# the transaction of the change. No foreign key: a purged secret's event outlives it. Never
# holds a value.
outbox = Table(
    "secret_outbox",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("event_id", Uuid, nullable=False, index=True),
    Column("type", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("secret_id", Uuid, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=True, index=True),
    Column("delivered_at", UTCDateTime, nullable=True, index=True),
    Column("last_error", String(512), nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
)

# Long-running jobs (migrations between backends; re-keys may follow), claimed under a lease.
# `params`, `counters` and `report` are the kind's own JSON; never a value.
jobs = Table(
    "secret_jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_by_type", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("counters", JSON, nullable=False),
    Column("report", JSON, nullable=False),
    Column("last_error", String(512), nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
)

# A job's progress per secret version (version 0: the secret itself). No foreign key to the
# secret: a secret purged while the job runs leaves its items, skipped.
job_items = Table(
    "secret_job_items",
    metadata,
    Column(
        "job_id",
        Uuid,
        ForeignKey("secret_jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("secret_id", Uuid, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("source_backend", String(64), nullable=False),
    Column("source_locator", String(1024), nullable=False),
    Column("target_locator", String(1024), nullable=True),
    Column("error", String(512), nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One row per running worker (`ports.workers`): its heartbeat and what it is doing. A worker that
# stops removes its row; one whose heartbeat grows old died.
workers = Table(
    "secret_workers",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_heartbeat_at", UTCDateTime, nullable=False),
    Column("current_job", String(255), nullable=True),
)

# The change stream (`core.changes`): one row per change event, whether or not webhooks are
# configured, written in the transaction of the change. `id` is the stream's cursor (monotonic;
# AUTOINCREMENT on SQLite so a pruned id is never given out again). Kept at least 24 h, then
# pruned by the worker. No foreign key: a purged secret's event outlives it. Never holds a value.
change_events = Table(
    "secret_change_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("secret_id", Uuid, nullable=False),
    Column("scope_type", String(32), nullable=True),
    Column("scope_id", String(255), nullable=True),
    Column("scope_path", String(1024), nullable=True),
    Column("name", String(255), nullable=True),
    Column("environment", String(255), nullable=True),
    Column("version", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    sqlite_autoincrement=True,
)
