"""Lifecycle: stage labels, version validity and grace periods, rotation policies, the event
outbox, and the worker's claims and expiry-warning bookkeeping.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
CLAIM_COLUMNS = ("claimed_by", "claimed_until")


def _claim_columns() -> list[sa.Column]:
    return [
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_until", UTC_DATETIME, nullable=True),
    ]


def upgrade() -> None:
    # Until now the current version was always the highest number given out.
    op.add_column("secret_secrets", sa.Column("latest_version", sa.Integer(), nullable=True))
    op.execute("UPDATE secret_secrets SET latest_version = current_version")
    with op.batch_alter_table("secret_secrets") as batch:
        batch.alter_column("latest_version", existing_type=sa.Integer(), nullable=False)
        batch.add_column(sa.Column("previous_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("pending_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("expiry_notified_for", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("expiry_notified_days", sa.Integer(), nullable=True))
        for column in _claim_columns():
            batch.add_column(column)

    with op.batch_alter_table("secret_versions") as batch:
        batch.add_column(sa.Column("not_before", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("disable_at", UTC_DATETIME, nullable=True))
        batch.create_index(op.f("ix_secret_versions_disable_at"), ["disable_at"])

    op.create_table(
        "secret_rotation_policies",
        sa.Column("secret_id", sa.Uuid(), nullable=False),
        sa.Column("rotator", sa.String(64), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("cron", sa.String(128), nullable=True),
        sa.Column("grace_seconds", sa.Integer(), nullable=False),
        sa.Column("next_run_at", UTC_DATETIME, nullable=False),
        sa.Column("last_run_at", UTC_DATETIME, nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("last_error", sa.String(512), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_by", sa.String(255), nullable=True),
        *_claim_columns(),
        sa.PrimaryKeyConstraint("secret_id", name=op.f("pk_secret_rotation_policies")),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secret_secrets.id"],
            name=op.f("fk_secret_rotation_policies_secret_id_secret_secrets"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        op.f("ix_secret_rotation_policies_next_run_at"),
        "secret_rotation_policies",
        ["next_run_at"],
    )

    op.create_table(
        "secret_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("secret_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=True),
        sa.Column("delivered_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.String(512), nullable=True),
        *_claim_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_outbox")),
    )
    for column in ("event_id", "next_attempt_at", "delivered_at"):
        op.create_index(op.f(f"ix_secret_outbox_{column}"), "secret_outbox", [column])


def downgrade() -> None:
    op.drop_table("secret_outbox")
    op.drop_table("secret_rotation_policies")
    with op.batch_alter_table("secret_versions") as batch:
        batch.drop_index(op.f("ix_secret_versions_disable_at"))
        batch.drop_column("disable_at")
        batch.drop_column("not_before")
    with op.batch_alter_table("secret_secrets") as batch:
        for column in (
            *CLAIM_COLUMNS,
            "expiry_notified_days",
            "expiry_notified_for",
            "pending_version",
            "previous_version",
            "latest_version",
        ):
            batch.drop_column(column)
