"""Service-account names are their scope's own: unique per owner scope, not everywhere.

An account of the global scope keeps the principal `service:<name>`; an account of another
scope becomes `service:<name>@<type>:<id>` (`ServiceAccount.principal`), so the role
bindings naming such an account are renamed with it. One whose new principal would not fit the
255-character columns keeps its old bindings, which then name no account: it loses its access
(closed, never wider) until an admin grants it again.

The change generation moves on, so no worker keeps a binding it cached under the old name.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The principal of each account of a scope other than the global one, old and new.
ACCOUNTS = (
    "SELECT 'service:' || a.name AS old_principal, "
    "'service:' || a.name || '@' || s.type || ':' || s.external_id AS new_principal "
    "FROM secret_service_accounts a JOIN secret_scopes s ON s.pk = a.scope_pk "
    "WHERE s.type <> 'global' "
    "AND length('service:' || a.name || '@' || s.type || ':' || s.external_id) <= 255"
)


def upgrade() -> None:
    op.execute(
        "UPDATE secret_role_bindings SET principal = ("  # noqa: S608 - constants only
        f"SELECT renamed.new_principal FROM ({ACCOUNTS}) renamed "
        "WHERE renamed.old_principal = secret_role_bindings.principal) "
        f"WHERE principal IN (SELECT old_principal FROM ({ACCOUNTS}) accounts)"
    )
    op.execute("UPDATE secret_audit_head SET generation = generation + 1")
    with op.batch_alter_table("secret_service_accounts") as batch:
        batch.drop_constraint("uq_secret_service_accounts_name", type_="unique")
        batch.create_unique_constraint(
            "uq_secret_service_accounts_scope_pk_name", ["scope_pk", "name"]
        )


def downgrade() -> None:
    with op.batch_alter_table("secret_service_accounts") as batch:
        batch.drop_constraint("uq_secret_service_accounts_scope_pk_name", type_="unique")
        batch.create_unique_constraint("uq_secret_service_accounts_name", ["name"])
    op.execute(
        "UPDATE secret_role_bindings SET principal = ("  # noqa: S608 - constants only
        f"SELECT renamed.old_principal FROM ({ACCOUNTS}) renamed "
        "WHERE renamed.new_principal = secret_role_bindings.principal) "
        f"WHERE principal IN (SELECT new_principal FROM ({ACCOUNTS}) accounts)"
    )
    op.execute("UPDATE secret_audit_head SET generation = generation + 1")
