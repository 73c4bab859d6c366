"""What authenticating and authorizing a request costs the process (issue #20): the lookups of
the caller's API token (by hash; by id to confirm a cached one) and of its role bindings run on
every write (a write moves the change generation, which empties the token cache); they are built
once, not per call (building and keying a statement costs more CPU than its round trip), and
still answer what they answered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.bindings import NewBinding
from core.domain.access import Role
from core.domain.values import Principal, ScopeRef
from core.service_accounts import hash_token
from entrypoints.config import Settings
from entrypoints.container import Container
from tests.support.statements import recorded

pytestmark = pytest.mark.postgres

ROOT = Principal("root", "root", is_root=True)
ACCESS_TABLES = ("secret_api_tokens", "secret_role_bindings")


@pytest.fixture
def container(tmp_path: Path, _postgres_test_database: Any) -> Iterator[Container]:
    _postgres_test_database.reset()
    settings = Settings(
        data_dir=tmp_path,
        database_url=_postgres_test_database.url,
        keys={"provider": "file", "path": str(tmp_path / "master.key")},
    )
    made = Container(settings=settings)
    yield made
    made.shutdown_resources()


def executed(container: Container, work: Callable[[], object]) -> list[object]:
    """The statement objects `work` runs on the token and binding tables."""
    return [
        clause
        for clause, sql in recorded(container.engine(), work)
        if any(f" {table} " in f" {sql} " for table in ACCESS_TABLES)
    ]


def test_the_token_and_binding_lookups_are_built_once_and_answer_right(container):
    accounts, bindings = container.service_account_service(), container.binding_service()
    scope = ScopeRef.global_scope()
    ci = accounts.create(ROOT, "ci", scope)
    deploy = accounts.create(ROOT, "deploy", scope)
    ci_issued, ci_plain = accounts.issue_token(ROOT, ci.id)
    deploy_issued, deploy_plain = accounts.issue_token(ROOT, deploy.id)
    bindings.create(ROOT, NewBinding(ci.principal, Role.EDITOR, scope))
    bindings.create(ROOT, NewBinding(deploy.principal, Role.READER, scope))
    now = container.clock().now()
    bindings.create(
        ROOT,
        NewBinding(deploy.principal, Role.ADMIN, scope, expires_at=now + timedelta(seconds=1)),
    )
    answers: list[Any] = []

    def lookup(plain: str, token_id: Any, principal: str, at: Any) -> Callable[[], None]:
        def work() -> None:
            with container.unit_of_work(read_only=True) as uow:
                answers.append(uow.service_accounts.token_by_hash(hash_token(plain)))
                answers.append(uow.bindings.for_identities([principal], at))
                answers.append(uow.service_accounts.token(token_id))  # a cached one, confirmed

        return work

    first = executed(container, lookup(ci_plain, ci_issued.id, ci.principal, now))
    second = executed(container, lookup(deploy_plain, deploy_issued.id, deploy.principal, now))
    assert len(first) == 3  # the token with its account, the bindings, the token by id
    assert all(a is b for a, b in zip(first, second, strict=True))

    (ci_token, ci_account), ci_bindings, ci_by_id = answers[:3]
    (deploy_token, deploy_account), deploy_bindings, deploy_by_id = answers[3:]
    assert (ci_token, deploy_token) == (ci_issued, deploy_issued) == (ci_by_id, deploy_by_id)
    assert (ci_account.id, ci_token.account_id) == (ci.id, ci.id)
    assert (deploy_account.id, deploy_token.account_id) == (deploy.id, deploy.id)
    assert [b.role for b in ci_bindings] == [Role.EDITOR]
    assert sorted(b.role for b in deploy_bindings) == [Role.ADMIN, Role.READER]
    with container.unit_of_work(read_only=True) as uow:
        assert uow.service_accounts.token_by_hash(hash_token("no such token")) is None
        assert uow.service_accounts.token(deploy.id) is None  # an account's id is no token's
        later = now + timedelta(seconds=2)  # the admin binding expired
        assert [b.role for b in uow.bindings.for_identities([deploy.principal], later)] == [
            Role.READER
        ]
        assert uow.bindings.for_identities([], now) == []
        both = uow.bindings.for_identities([ci.principal, deploy.principal], now)
        assert sorted(b.principal for b in both) == sorted(
            [ci.principal, deploy.principal, deploy.principal]
        )
