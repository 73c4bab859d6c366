"""Access control: scope paths, role bindings, service accounts and their API tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("secret_scopes", sa.Column("path", sa.String(255), nullable=True))
    _backfill_paths()
    with op.batch_alter_table("secret_scopes") as batch:
        batch.alter_column("path", existing_type=sa.String(255), nullable=False)
        batch.create_index(op.f("ix_secret_scopes_path"), ["path"])

    op.create_table(
        "secret_role_bindings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("scope_pk", sa.Integer(), nullable=False),
        sa.Column("secret_id", sa.Uuid(), nullable=True),
        sa.Column("name_pattern", sa.String(255), nullable=True),
        sa.Column("name_like", sa.String(512), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_role_bindings")),
        sa.ForeignKeyConstraint(
            ["scope_pk"],
            ["secret_scopes.pk"],
            name=op.f("fk_secret_role_bindings_scope_pk_secret_scopes"),
        ),
    )
    op.create_index(
        op.f("ix_secret_role_bindings_principal"), "secret_role_bindings", ["principal"]
    )
    op.create_index(op.f("ix_secret_role_bindings_scope_pk"), "secret_role_bindings", ["scope_pk"])

    op.create_table(
        "secret_service_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scope_pk", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_service_accounts")),
        sa.ForeignKeyConstraint(
            ["scope_pk"],
            ["secret_scopes.pk"],
            name=op.f("fk_secret_service_accounts_scope_pk_secret_scopes"),
        ),
        sa.UniqueConstraint("name", name=op.f("uq_secret_service_accounts_name")),
    )
    op.create_index(
        op.f("ix_secret_service_accounts_scope_pk"), "secret_service_accounts", ["scope_pk"]
    )

    op.create_table(
        "secret_api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.Column("last_used_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_api_tokens")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["secret_service_accounts.id"],
            name=op.f("fk_secret_api_tokens_account_id_secret_service_accounts"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("token_hash", name=op.f("uq_secret_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_secret_api_tokens_account_id"), "secret_api_tokens", ["account_id"])


def _backfill_paths() -> None:
    """Scopes made before paths existed: walk from the roots down, parents first."""
    scopes = sa.table("secret_scopes", sa.column("pk"), sa.column("parent_pk"), sa.column("path"))
    connection = op.get_bind()
    rows = connection.execute(sa.select(scopes.c.pk, scopes.c.parent_pk)).all()
    children: dict[int | None, list[int]] = {}
    for pk, parent_pk in rows:
        children.setdefault(parent_pk, []).append(pk)
    pending = [(pk, f"/{pk}/") for pk in children.get(None, [])]
    while pending:
        pk, path = pending.pop()
        connection.execute(sa.update(scopes).where(scopes.c.pk == pk).values(path=path))
        pending.extend((child, f"{path}{child}/") for child in children.get(pk, []))


def downgrade() -> None:
    op.drop_table("secret_api_tokens")
    op.drop_table("secret_service_accounts")
    op.drop_table("secret_role_bindings")
    with op.batch_alter_table("secret_scopes") as batch:
        batch.drop_index(op.f("ix_secret_scopes_path"))
        batch.drop_column("path")
