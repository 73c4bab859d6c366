"""The unit of work on SQLAlchemy: one connection and one transaction per `with` block. A
database that cannot be reached, on entering or inside the block, leaves it as core's
`DatabaseUnavailable` (`adapters.db.errors`)."""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from adapters.db.access_repositories import SqlRoleBindingRepository, SqlServiceAccountRepository
from adapters.db.audit_repository import SqlAuditRepository
from adapters.db.errors import database_errors, translated
from adapters.db.job_repository import SqlJobRepository
from adapters.db.lifecycle_repositories import (
    SqlOutboxRepository,
    SqlRotationPolicyRepository,
    SqlWorkQueueRepository,
)
from adapters.db.scope_repository import SqlScopeRepository
from adapters.db.secret_repository import SqlSecretRepository
from ports.unit_of_work import UnitOfWork


class SqlUnitOfWork(UnitOfWork):
    """Leaving the `with` block rolls back whatever was not committed, then closes."""

    def __init__(self, engine: Engine, *, read_only: bool = False) -> None:
        self._engine = engine
        self._read_only = read_only
        self._connection: Connection | None = None

    def __enter__(self) -> SqlUnitOfWork:
        with database_errors():
            self._connection = self._engine.connect()
        if self._read_only:
            # No BEGIN and no ROLLBACK: a round trip each, for reads that need no transaction.
            self._connection.execution_options(isolation_level="AUTOCOMMIT")
        else:
            self._connection.begin()
        self.scopes = SqlScopeRepository(self._connection)
        self.secrets = SqlSecretRepository(self._connection)
        self.bindings = SqlRoleBindingRepository(self._connection)
        self.service_accounts = SqlServiceAccountRepository(self._connection)
        self.audit = self._audit = SqlAuditRepository(self._connection)
        self.rotations = SqlRotationPolicyRepository(self._connection)
        self.outbox = SqlOutboxRepository(self._connection)
        self.work = SqlWorkQueueRepository(self._connection)
        self.jobs = SqlJobRepository(self._connection)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: object
    ) -> None:
        with database_errors():
            try:
                self.rollback()
            finally:
                self._active_connection().close()
                self._connection = None
        if error is not None and (replacement := translated(error)) is not error:
            raise replacement from error

    def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("a read-only unit of work has nothing to commit")
        self._audit.commit_pending()  # an append left for the COMMIT is sent with it
        self._active_connection().commit()

    def rollback(self) -> None:
        self._active_connection().rollback()

    def _active_connection(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("the unit of work is used outside its `with` block")
        return self._connection
