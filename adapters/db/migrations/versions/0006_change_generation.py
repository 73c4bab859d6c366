"""The change generation: a counter on the audit head row that every transaction changing
secrets, versions, scopes, bindings, service accounts or tokens increments before it commits.
Workers' in-memory read caches are valid for one generation only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("secret_audit_head") as batch:
        batch.add_column(
            sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("secret_audit_head") as batch:
        batch.drop_column("generation")
