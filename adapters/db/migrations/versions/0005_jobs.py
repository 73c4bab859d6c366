"""Jobs: long-running work such as migrations between backends (and, later, re-keys), with
their per-item progress, claimed under a lease.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "secret_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_by_type", sa.String(32), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("counters", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.String(512), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_until", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_jobs")),
    )
    op.create_index(op.f("ix_secret_jobs_created_at"), "secret_jobs", ["created_at"])
    op.create_table(
        "secret_job_items",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("secret_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source_backend", sa.String(64), nullable=False),
        sa.Column("source_locator", sa.String(1024), nullable=False),
        sa.Column("target_locator", sa.String(1024), nullable=True),
        sa.Column("error", sa.String(512), nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "secret_id", "version", name=op.f("pk_secret_job_items")),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["secret_jobs.id"],
            name=op.f("fk_secret_job_items_job_id_secret_jobs"),
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("secret_job_items")
    op.drop_index(op.f("ix_secret_jobs_created_at"), table_name="secret_jobs")
    op.drop_table("secret_jobs")
