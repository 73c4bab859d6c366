"""Service accounts and their API tokens on the fakes: issued once, stored as SHA-256 hashes,
and every way a token can fail looks the same."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.accounts import ServiceAccount
from core.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from core.domain.paging import PageRequest
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.policy import SecretPolicy, ValueChecksum
from core.read_cache import ReadCache
from core.reads import ReadService, ValueReader
from core.secrets import NewSecret, SecretService
from core.service_accounts import (
    INVALID_CREDENTIALS,
    TOKEN_PREFIX,
    ServiceAccountService,
    hash_token,
    looks_like_api_token,
)
from tests.fakes import (
    FakeDatabase,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
    make_audit_trail,
    recorded,
)

NOW = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
ROOT = Principal("root", "root", is_root=True)
ALICE = Principal("user:alice", "user")  # admin of the project
BOB = Principal("user:bob", "user")  # editor of the project
GLOBAL = ScopeRef.global_scope()
TEAM = ScopeRef(ScopeType.TEAM, "t-1")
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
CHECKSUM = ValueChecksum(b"k" * 32)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def db() -> FakeUnitOfWorkFactory:
    database = FakeDatabase()
    database.add_scope(ScopeRef(ScopeType.ORGANIZATION, "acme"), GLOBAL)
    database.add_scope(TEAM, ScopeRef(ScopeType.ORGANIZATION, "acme"))
    database.add_scope(PROJECT, TEAM)
    database.grant(ALICE.id, Role.ADMIN, PROJECT)
    database.grant(BOB.id, Role.EDITOR, PROJECT)
    return FakeUnitOfWorkFactory(database)


@pytest.fixture
def accounts(db: FakeUnitOfWorkFactory, clock: FixedClock) -> ServiceAccountService:
    return ServiceAccountService(db, clock, make_audit_trail(db, clock))


@pytest.fixture
def account(accounts: ServiceAccountService) -> ServiceAccount:
    return accounts.create(ALICE, "deployer", PROJECT, "deploys p-42")


# -- accounts -------------------------------------------------------------------------------


def test_an_admin_creates_a_service_account_in_their_scope(
    accounts: ServiceAccountService, account: ServiceAccount, db: FakeUnitOfWorkFactory
) -> None:
    assert (account.name, account.scope, account.description) == (
        "deployer",
        PROJECT,
        "deploys p-42",
    )
    assert (account.created_by, account.created_at, account.principal) == (
        ALICE.id,
        NOW,
        "service:deployer@project:p-42",
    )
    with db() as uow:
        project = uow.scopes.get(PROJECT)
    assert project is not None and account.scope_path == project.path
    assert accounts.get(ALICE, account.id) == account
    assert accounts.list_accounts(ALICE, PROJECT, PageRequest()).items == [account]


def test_creating_a_service_account_needs_admin_at_the_scope(
    accounts: ServiceAccountService,
) -> None:
    with pytest.raises(Forbidden):
        accounts.create(BOB, "ci", PROJECT)
    with pytest.raises(NotFound):
        accounts.create(ALICE, "ci", TEAM)
    with pytest.raises(NotFound):
        accounts.create(ROOT, "ci", ScopeRef(ScopeType.PROJECT, "p-404"))
    assert accounts.create(ROOT, "ci", TEAM).scope == TEAM


@pytest.mark.parametrize(
    ("name", "scope", "field"),
    [
        ("CI", PROJECT, "name"),
        ("-ci", PROJECT, "name"),
        ("c i", PROJECT, "name"),
        ("c" * 129, PROJECT, "name"),
        ("ci", ScopeRef(ScopeType.USER, "alice"), "scope"),
        ("ci", ScopeRef(ScopeType.PROJECT, "p 1"), "scope"),
    ],
)
def test_invalid_service_accounts_are_refused(
    accounts: ServiceAccountService, name: str, scope: ScopeRef, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        accounts.create(ALICE, name, scope)
    assert caught.value.details == {"field": field}


def test_a_service_account_name_is_unique_in_its_scope_and_its_scopes_own(
    accounts: ServiceAccountService, account: ServiceAccount, db: FakeUnitOfWorkFactory
) -> None:
    """Another scope's admin may name an account `deployer` too: no 409 tells it that p-42
    has one, and the two are two principals, bound apart."""
    with pytest.raises(Conflict, match="project/p-42 has a service account named 'deployer'"):
        accounts.create(ALICE, "deployer", PROJECT)
    db.database.grant(BOB.id, Role.ADMIN, TEAM)

    teams = accounts.create(BOB, "deployer", TEAM)
    ours = accounts.create(ROOT, "deployer", GLOBAL)

    assert account.principal == "service:deployer@project:p-42"
    assert teams.principal == "service:deployer@team:t-1"
    assert ours.principal == "service:deployer"  # as ever, for the global scope's accounts
    db.database.grant(account.principal, Role.READER, TEAM)  # a scope Alice does not administer
    with pytest.raises(Conflict, match="role bindings already name"):  # as before, per name
        accounts.create(ALICE, "deployer", PROJECT)


def test_a_principal_too_long_for_its_columns_is_refused(accounts: ServiceAccountService) -> None:
    with pytest.raises(InvalidInput, match="shorter name") as caught:
        accounts.create(ROOT, "n" * 128, ScopeRef(ScopeType.PROJECT, "p" * 128))
    assert caught.value.details == {"field": "name"}


def test_only_admins_of_its_scope_see_a_service_account(
    accounts: ServiceAccountService, account: ServiceAccount
) -> None:
    carol = Principal("user:carol", "user")
    with pytest.raises(NotFound, match=f"no service account {account.id}"):
        accounts.get(carol, account.id)
    with pytest.raises(NotFound, match=f"no service account {account.id}"):
        accounts.issue_token(carol, account.id)
    with pytest.raises(Forbidden):  # Bob sees the project, but administers nothing
        accounts.get(BOB, account.id)
    with pytest.raises(Forbidden):
        accounts.issue_token(BOB, account.id)
    with pytest.raises(Forbidden):
        accounts.list_accounts(BOB, PROJECT, PageRequest())
    with pytest.raises(NotFound):
        accounts.get(ALICE, uuid4())


# -- tokens ---------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_only_its_sha256_is_kept(
    accounts: ServiceAccountService, account: ServiceAccount, db: FakeUnitOfWorkFactory
) -> None:
    record, plaintext = accounts.issue_token(ALICE, account.id, description="ci")

    assert plaintext.startswith(TOKEN_PREFIX) and looks_like_api_token(plaintext)
    assert (
        record.token_hash == hashlib.sha256(plaintext.encode()).hexdigest() == hash_token(plaintext)
    )
    assert record.prefix == plaintext[: len(TOKEN_PREFIX) + 6]
    assert (record.account_id, record.created_by, record.created_at) == (
        account.id,
        ALICE.id,
        NOW,
    )
    assert accounts.tokens(ALICE, account.id) == [record]
    assert plaintext not in repr(record)
    assert plaintext not in repr(db.database.tables)  # nowhere in any row


def test_a_token_carries_256_random_bits(
    accounts: ServiceAccountService, account: ServiceAccount
) -> None:
    plaintexts = {accounts.issue_token(ALICE, account.id)[1] for _ in range(50)}

    assert len(plaintexts) == 50
    for plaintext in plaintexts:
        body = plaintext.removeprefix(TOKEN_PREFIX)
        assert len(base64.urlsafe_b64decode(body + "=")) == 32


def test_a_token_authenticates_as_its_service_account(
    accounts: ServiceAccountService,
    account: ServiceAccount,
    db: FakeUnitOfWorkFactory,
    clock: FixedClock,
) -> None:
    _, plaintext = accounts.issue_token(ALICE, account.id)
    backend = InMemoryBackend("memory")
    secrets = SecretService(
        db,
        BackendRegistry({"memory": backend}, default="memory"),
        clock,
        CHECKSUM,
        SecretPolicy(),
        make_audit_trail(db, clock),
    )
    secret = secrets.create_secret(ALICE, NewSecret(PROJECT, "DEPLOY_KEY"), SecretValue(b"k"))
    reader = ValueReader(BackendRegistry({"memory": backend}, default="memory"), clock, CHECKSUM)
    reads = ReadService(db, reader, clock, make_audit_trail(db, clock))
    db.database.grant(account.principal, Role.READER, PROJECT)

    principal = accounts.authenticate(plaintext)

    assert principal == Principal("service:deployer@project:p-42", "service")
    assert reads.read_value(principal, secret.id).value.reveal() == b"k"


def test_every_failing_token_gets_the_same_answer(
    accounts: ServiceAccountService, account: ServiceAccount, clock: FixedClock
) -> None:
    expiring, expiring_plaintext = accounts.issue_token(
        ALICE, account.id, expires_at=NOW + timedelta(hours=1)
    )
    revoked, revoked_plaintext = accounts.issue_token(ALICE, account.id)
    _, good = accounts.issue_token(ALICE, account.id)
    accounts.revoke_token(ALICE, account.id, revoked.id)
    doomed = accounts.create(ALICE, "doomed", PROJECT)
    _, orphaned = accounts.issue_token(ALICE, doomed.id)
    accounts.delete(ALICE, doomed.id)
    clock.set(expiring.expires_at)  # type: ignore[arg-type]

    failing = {
        "expired": expiring_plaintext,
        "revoked": revoked_plaintext,
        "unknown": TOKEN_PREFIX + "A" * 43,
        "altered": good[:-1] + ("A" if good[-1] != "A" else "B"),
        "of a deleted account": orphaned,
        "empty": "",
    }
    for why, token in failing.items():
        with pytest.raises(Unauthenticated) as caught:
            accounts.authenticate(token)
        assert caught.value.message == INVALID_CREDENTIALS, why
        assert caught.value.details == {}, why
    assert accounts.authenticate(good).id == "service:deployer@project:p-42"


def test_a_token_works_until_it_expires(
    accounts: ServiceAccountService, account: ServiceAccount, clock: FixedClock
) -> None:
    expires_at = NOW + timedelta(days=1)
    _, plaintext = accounts.issue_token(ALICE, account.id, expires_at=expires_at)

    clock.set(expires_at - timedelta(microseconds=1))
    accounts.authenticate(plaintext)
    clock.set(expires_at)
    with pytest.raises(Unauthenticated):
        accounts.authenticate(plaintext)


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(seconds=-1)])
def test_a_token_cannot_be_issued_already_expired(
    accounts: ServiceAccountService, account: ServiceAccount, delta: timedelta
) -> None:
    with pytest.raises(InvalidInput) as caught:
        accounts.issue_token(ALICE, account.id, expires_at=NOW + delta)
    assert caught.value.details == {"field": "expires_at"}
    assert accounts.tokens(ALICE, account.id) == []


def test_last_use_is_recorded_at_most_once_a_minute(
    accounts: ServiceAccountService, account: ServiceAccount, clock: FixedClock
) -> None:
    record, plaintext = accounts.issue_token(ALICE, account.id)
    assert record.last_used_at is None

    def last_used() -> datetime | None:
        [token] = accounts.tokens(ALICE, account.id)
        return token.last_used_at

    accounts.authenticate(plaintext)
    assert last_used() == NOW
    clock.advance(timedelta(seconds=30))
    accounts.authenticate(plaintext)
    assert last_used() == NOW
    clock.set(NOW + timedelta(minutes=1))
    accounts.authenticate(plaintext)
    assert last_used() == NOW
    later = clock.advance(timedelta(microseconds=1))
    accounts.authenticate(plaintext)
    assert last_used() == later


def test_revoking_a_token(accounts: ServiceAccountService, account: ServiceAccount) -> None:
    record, plaintext = accounts.issue_token(ALICE, account.id)
    other = accounts.create(ALICE, "other", PROJECT)

    with pytest.raises(NotFound):  # a token is revoked through its own account only
        accounts.revoke_token(ALICE, other.id, record.id)
    with pytest.raises(NotFound):
        accounts.revoke_token(ALICE, account.id, uuid4())
    with pytest.raises(Forbidden):
        accounts.revoke_token(BOB, account.id, record.id)
    accounts.authenticate(plaintext)

    accounts.revoke_token(ALICE, account.id, record.id)
    accounts.revoke_token(ALICE, account.id, record.id)  # again: the first time stays

    [revoked] = accounts.tokens(ALICE, account.id)
    assert revoked.revoked_at == NOW and not revoked.usable(NOW)
    with pytest.raises(Unauthenticated):
        accounts.authenticate(plaintext)


def test_deleting_an_account_removes_its_tokens_and_bindings(
    accounts: ServiceAccountService, account: ServiceAccount, db: FakeUnitOfWorkFactory
) -> None:
    _, plaintext = accounts.issue_token(ALICE, account.id)
    db.database.grant(account.principal, Role.READER, PROJECT)
    db.database.grant("service:other", Role.READER, PROJECT)

    with pytest.raises(Forbidden):
        accounts.delete(BOB, account.id)
    accounts.delete(ALICE, account.id)

    with pytest.raises(NotFound):
        accounts.get(ALICE, account.id)
    with pytest.raises(Unauthenticated):
        accounts.authenticate(plaintext)
    with db() as uow:
        assert uow.bindings.for_identities([account.principal], NOW) == []
        assert len(uow.bindings.for_identities(["service:other"], NOW)) == 1
        assert uow.service_accounts.token_by_hash(hash_token(plaintext)) is None


def test_an_account_cannot_be_created_into_bindings_that_already_name_it(
    accounts: ServiceAccountService, db: FakeUnitOfWorkFactory
) -> None:
    # granted at the top ahead of time, e.g. by the root for a CI account to come
    db.database.grant("service:ci@project:p-42", Role.ADMIN, GLOBAL)
    db.database.grant(
        "service:old@project:p-42", Role.READER, GLOBAL, expires_at=NOW - timedelta(days=1)
    )

    for name in ("ci", "old"):  # Alice administers only p-42: she must not inherit them
        with pytest.raises(Conflict, match=f"service:{name}@project:p-42"):
            accounts.create(ALICE, name, PROJECT)
    assert accounts.list_accounts(ALICE, PROJECT, PageRequest()).total == 0


def test_who_administers_every_binding_naming_an_account_may_create_it(
    accounts: ServiceAccountService, db: FakeUnitOfWorkFactory
) -> None:
    """The operator binds `service:bootstrap` first (`secretctl admin grant`), then creates the
    account it names: nothing is inherited that its creator could not have granted itself."""
    db.database.grant("service:bootstrap", Role.ADMIN, GLOBAL)
    db.database.grant("service:ci@project:p-42", Role.READER, PROJECT)

    bootstrap = accounts.create(ROOT, "bootstrap", GLOBAL)
    ci = accounts.create(ALICE, "ci", PROJECT)  # she administers p-42, where it is bound

    assert (bootstrap.principal, ci.principal) == ("service:bootstrap", "service:ci@project:p-42")


# -- the audit trail ------------------------------------------------------------------------


def test_each_account_use_case_records_one_event(
    accounts: ServiceAccountService, db: FakeUnitOfWorkFactory
) -> None:
    project_path = db.database.tables.scopes[PROJECT].path

    with recorded(db) as events:
        account = accounts.create(ALICE, "deployer", PROJECT)
        accounts.get(ALICE, account.id)
        accounts.list_accounts(ALICE, PROJECT, PageRequest())
        token, _ = accounts.issue_token(ALICE, account.id)
        accounts.tokens(ALICE, account.id)
        accounts.revoke_token(ALICE, account.id, token.id)
        accounts.delete(ALICE, account.id)

    resource = f"service_account:{account.id}"
    assert [(e.action, e.resource) for e in events] == [
        ("service_account.create", resource),
        ("service_account.read", resource),
        ("service_account.list", "scope:project/p-42"),
        ("token.issue", resource),
        ("token.list", resource),
        ("token.revoke", resource),
        ("service_account.delete", resource),
    ]
    assert {(e.actor, e.scope, e.scope_path, e.outcome) for e in events} == {
        (ALICE.id, "project/p-42", project_path, "success")
    }
    assert events[3].details == {"token_id": str(token.id), "prefix": token.prefix}
    assert events[5].details == {"token_id": str(token.id)}


def test_no_token_reaches_an_audit_event(
    accounts: ServiceAccountService, account: ServiceAccount, db: FakeUnitOfWorkFactory
) -> None:
    plaintexts = [accounts.issue_token(ALICE, account.id)[1] for _ in range(3)]
    with pytest.raises(Forbidden):
        accounts.issue_token(BOB, account.id)
    for plaintext in plaintexts:
        accounts.authenticate(plaintext)

    events = db.database.audit_events()
    assert [e.outcome for e in events if e.action == "token.issue"] == ["success"] * 3 + ["denied"]
    for event in events:
        for text in (repr(event), json.dumps(event.content())):
            assert not any(plaintext.removeprefix(TOKEN_PREFIX) in text for plaintext in plaintexts)


def test_a_token_served_from_the_cache_records_its_last_use_once_not_on_each_request(
    db: FakeUnitOfWorkFactory, clock: FixedClock
) -> None:
    """A minute after its last recorded use, the first request records the new one; the
    requests the token cache serves next see that, and write nothing."""
    cache = ReadCache(max_entries=100, ttl_seconds=60)
    cache.observe(1)
    accounts = ServiceAccountService(db, clock, make_audit_trail(db, clock), cache=cache)
    account = accounts.create(ALICE, "deployer", PROJECT)
    record, plaintext = accounts.issue_token(ALICE, account.id)
    accounts.authenticate(plaintext)  # looked up, cached, its use recorded
    later = clock.advance(timedelta(minutes=1, seconds=1))

    before = db.committed
    for _ in range(3):
        assert accounts.authenticate(plaintext).token_id == record.id  # served by the cache
    assert db.committed - before == 1
    [token] = accounts.tokens(ALICE, account.id)
    assert token.last_used_at == later
    assert cache.hits >= 3


def test_a_token_revoked_through_another_process_mints_nothing_with_its_cached_lookup(
    db: FakeUnitOfWorkFactory, clock: FixedClock
) -> None:
    """Process A's token cache still holds the lookup; process B revoked the token. A's next
    use of it, a write, is refused in its own transaction (the generation moved on)."""
    here = ServiceAccountService(db, clock, make_audit_trail(db, clock))
    account = here.create(ALICE, "deployer", PROJECT)
    db.database.grant(account.principal, Role.ADMIN, PROJECT)
    record, plaintext = here.issue_token(ALICE, account.id)
    cache = ReadCache(max_entries=100, ttl_seconds=60)
    with db() as uow:
        cache.observe(uow.audit.generation())
    worker_a = ServiceAccountService(db, clock, make_audit_trail(db, clock), cache=cache)
    worker_a.authenticate(plaintext)
    cached = worker_a.authenticate(plaintext)
    assert cached.generation is not None  # served by A's token cache
    worker_a.issue_token(cached, account.id)  # still good: nothing changed

    here.revoke_token(ALICE, account.id, record.id)  # through process B
    stale = worker_a.authenticate(plaintext)
    assert stale.generation is not None  # A's cache has not heard of it

    with pytest.raises(Unauthenticated):
        worker_a.issue_token(stale, account.id)
    with pytest.raises(Unauthenticated):
        worker_a.tokens(stale, account.id)
    with pytest.raises(Unauthenticated):  # nor is it told who it is
        worker_a.confirm(stale)
    assert worker_a.confirm(ALICE) is ALICE
    assert len(here.tokens(ALICE, account.id)) == 2
