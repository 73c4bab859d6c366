"""The change stream: one row per change event (`secret_change_events`), its `id` the stream's
monotonic cursor, written in the transaction of the change and kept at least 24 h.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "secret_change_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("secret_id", sa.Uuid(), nullable=False),
        sa.Column("scope_type", sa.String(32), nullable=True),
        sa.Column("scope_id", sa.String(255), nullable=True),
        sa.Column("scope_path", sa.String(1024), nullable=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("environment", sa.String(255), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_change_events")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_secret_change_events_created_at"),
        "secret_change_events",
        ["created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_secret_change_events_created_at"), table_name="secret_change_events")
    op.drop_table("secret_change_events")
