"""Worker heartbeats: one row per running worker (its host, process, start, last heartbeat and
current job), for `/readyz` and `GET /api/v1/status`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "secret_workers",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("last_heartbeat_at", UTC_DATETIME, nullable=False),
        sa.Column("current_job", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_workers")),
    )


def downgrade() -> None:
    op.drop_table("secret_workers")
