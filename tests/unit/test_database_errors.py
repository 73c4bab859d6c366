"""The database's exceptions are translated in the adapter (`adapters.db.errors`): a database that
cannot be reached leaves the unit of work, and the readiness ping, as core's
`DatabaseUnavailable`; nothing above the adapters names SQLAlchemy's exceptions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError, OperationalError

from adapters.db.engine import ping
from adapters.db.uow import SqlUnitOfWork
from core.domain.errors import DatabaseUnavailable

ROOT = Path(__file__).resolve().parents[2]


def unreachable_engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    # SQLite cannot open a file in a directory that does not exist: an OperationalError on connect.
    return create_engine(f"sqlite:///{tmp_path / 'missing' / 'secrets.db'}")


def test_a_database_that_cannot_be_reached_is_database_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailable) as raised, SqlUnitOfWork(unreachable_engine(tmp_path)):
        pass  # pragma: no cover - the connection fails first
    assert isinstance(raised.value.__cause__, OperationalError)
    assert "missing" not in raised.value.message  # the driver's words stay in the cause


def test_a_connection_lost_inside_the_block_is_database_unavailable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'secrets.db'}")
    with pytest.raises(DatabaseUnavailable), SqlUnitOfWork(engine):
        raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))


def test_any_other_database_error_goes_on_as_it_is(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'secrets.db'}")
    with pytest.raises(IntegrityError), SqlUnitOfWork(engine):
        raise IntegrityError("INSERT", {}, ValueError("duplicate key"))


def test_the_readiness_ping_translates_too(tmp_path: Path) -> None:
    ping(create_engine(f"sqlite:///{tmp_path / 'secrets.db'}"))
    with pytest.raises(DatabaseUnavailable):
        ping(unreachable_engine(tmp_path))


def test_nothing_above_the_adapters_imports_sqlalchemys_exceptions() -> None:
    offenders = []
    for path in sorted((ROOT / "entrypoints" / "http").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                offenders.append(f"{path.relative_to(ROOT)}: {node.module}")
            if isinstance(node, ast.Import):
                offenders += [
                    f"{path.relative_to(ROOT)}: {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("sqlalchemy")
                ]
    assert offenders == []
