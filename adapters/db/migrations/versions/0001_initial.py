"""The initial schema: scopes, secrets, versions, local ciphertexts, key versions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    scopes = op.create_table(
        "secret_scopes",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("parent_pk", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_secret_scopes")),
        sa.ForeignKeyConstraint(
            ["parent_pk"],
            ["secret_scopes.pk"],
            name=op.f("fk_secret_scopes_parent_pk_secret_scopes"),
        ),
        sa.UniqueConstraint("type", "external_id", name=op.f("uq_secret_scopes_type_external_id")),
    )
    op.create_table(
        "secret_secrets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope_pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("consumer", sa.String(32), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.Column("not_before", UTC_DATETIME, nullable=True),
        sa.Column("max_versions", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_by", sa.String(255), nullable=True),
        sa.Column("deleted_at", UTC_DATETIME, nullable=True),
        sa.Column("purge_after", UTC_DATETIME, nullable=True),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_secrets")),
        sa.ForeignKeyConstraint(
            ["scope_pk"],
            ["secret_scopes.pk"],
            name=op.f("fk_secret_secrets_scope_pk_secret_scopes"),
        ),
        sa.UniqueConstraint(
            "scope_pk",
            "environment",
            "name",
            name=op.f("uq_secret_secrets_scope_pk_environment_name"),
        ),
    )
    op.create_table(
        "secret_versions",
        sa.Column("secret_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("locator", sa.String(1024), nullable=False),
        sa.Column("checksum", sa.String(128), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("secret_id", "version", name=op.f("pk_secret_versions")),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secret_secrets.id"],
            name=op.f("fk_secret_versions_secret_id_secret_secrets"),
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "secret_encrypted_values",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("secret_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_encrypted_values")),
    )
    op.create_index(
        op.f("ix_secret_encrypted_values_secret_id"), "secret_encrypted_values", ["secret_id"]
    )
    op.create_table(
        "secret_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_keys")),
    )
    op.bulk_insert(
        scopes,
        [
            {
                "type": "global",
                "external_id": "global",
                "parent_pk": None,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("secret_keys")
    op.drop_index(op.f("ix_secret_encrypted_values_secret_id"), "secret_encrypted_values")
    op.drop_table("secret_encrypted_values")
    op.drop_table("secret_versions")
    op.drop_table("secret_secrets")
    op.drop_table("secret_scopes")
