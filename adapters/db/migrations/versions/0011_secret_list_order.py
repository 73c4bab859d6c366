"""A scope's live secrets in list order: an index on (scope_pk, name, environment) of the rows
not deleted, so that a page of one scope is read from the index in order and stops after the
page (no sort of the scope), and a scope's count reads the index only.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    live = sa.text("deleted_at IS NULL")
    op.create_index(
        "ix_secret_secrets_scope_pk_name_environment",
        "secret_secrets",
        ["scope_pk", "name", "environment"],
        postgresql_where=live,
        sqlite_where=live,
    )


def downgrade() -> None:
    op.drop_index("ix_secret_secrets_scope_pk_name_environment", table_name="secret_secrets")
