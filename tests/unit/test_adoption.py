"""Adoption on fakes: values found under a prefix become secrets pointing at them, once."""

from __future__ import annotations

import uuid

import pytest

from core.adoption import (
    AdoptionRequest,
    AdoptionService,
    AdoptionStatus,
    adopted_secret_id,
    secret_name_for,
)
from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.errors import NotFound
from core.domain.secrets import Secret
from core.domain.values import Principal, ScopeRef, ScopeType, VersionKey
from core.policy import SecretPolicy, ValueChecksum
from tests.fakes import (
    EXTERNAL,
    AdoptableBackend,
    FakeUnitOfWorkFactory,
    FixedClock,
    make_audit_trail,
)

ROOT = Principal(id="root", kind="root", is_root=True)
ACME = ScopeRef(ScopeType.ORGANIZATION, "acme")


@pytest.fixture
def backend() -> AdoptableBackend:
    store = AdoptableBackend()
    store.external = {"apps/db": b"db-pw", "apps/api/key": b"api-key", "other/x": b"no"}
    return store


@pytest.fixture
def uow_factory() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


CHECKSUM = ValueChecksum(b"k" * 32)


def service(uow_factory: FakeUnitOfWorkFactory, backend: AdoptableBackend) -> AdoptionService:
    registry = BackendRegistry({backend.name: backend}, default=backend.name)
    clock = FixedClock()
    audit = make_audit_trail(uow_factory, clock)
    return AdoptionService(uow_factory, registry, clock, CHECKSUM, SecretPolicy(), audit)


def adopt(service: AdoptionService, prefix: str = "apps/", actor: Principal = ROOT) -> list:
    request = AdoptionRequest("store", prefix, ACME, parent=ScopeRef.global_scope())
    return service.adopt(actor, request)


def test_values_under_the_prefix_become_secrets_pointing_at_them(
    uow_factory: FakeUnitOfWorkFactory, backend: AdoptableBackend
) -> None:
    results = adopt(service(uow_factory, backend))

    assert {(r.external_name, r.name, r.status) for r in results} == {
        ("apps/db", "db", AdoptionStatus.ADOPTED),
        ("apps/api/key", "api_key", AdoptionStatus.ADOPTED),
    }
    uow = uow_factory()
    for result in results:
        locator = EXTERNAL + result.external_name
        assert result.secret_id == adopted_secret_id("store", locator)
        secret, version = (
            uow.secrets.get(result.secret_id),
            uow.secrets.get_version(result.secret_id, 1),
        )
        assert secret.tags == {"adopted-from": "store"} and secret.scope == ACME
        assert secret.current_version == 1 and version.locator == locator
        value = backend.get(VersionKey(result.secret_id, 1), locator)
        assert value.reveal() == backend.external[result.external_name]
        assert CHECKSUM.matches(value, version.checksum)
    assert backend.values == {}  # nothing was copied into the store
    audited = [(e.action, e.outcome) for e in uow_factory.database.tables.audit_events.values()]
    assert audited == [("backend.adopt", "success")] + [("secret.adopt", "success")] * 2


def test_adopting_again_skips_what_is_adopted_and_names_that_are_taken(
    uow_factory: FakeUnitOfWorkFactory, backend: AdoptableBackend
) -> None:
    adoption = service(uow_factory, backend)
    adopt(adoption)
    backend.external["apps/taken"] = b"x"
    with uow_factory() as uow:
        uow.secrets.add(Secret(uuid.uuid4(), ACME, "taken", "store", FixedClock().now(), "root"))
        uow.commit()

    results = {r.name: r for r in adopt(adoption)}

    assert {name: r.status for name, r in results.items()} == {
        "db": AdoptionStatus.SKIPPED,
        "api_key": AdoptionStatus.SKIPPED,
        "taken": AdoptionStatus.SKIPPED,
    }
    assert results["db"].reason == "adopted already"
    assert "name is taken" in results["taken"].reason


def test_a_value_that_cannot_be_adopted_is_reported_and_the_others_go_on(
    uow_factory: FakeUnitOfWorkFactory, backend: AdoptableBackend
) -> None:
    backend.external["apps/huge"] = b"x" * 65

    results = {r.name: r for r in adopt(service(uow_factory, backend))}

    assert results["huge"].status is AdoptionStatus.FAILED and "64 bytes" in results["huge"].reason
    assert results["db"].status is AdoptionStatus.ADOPTED


def test_adoption_needs_a_known_backend_and_an_admin_of_the_global_scope(
    uow_factory: FakeUnitOfWorkFactory, backend: AdoptableBackend
) -> None:
    adoption = service(uow_factory, backend)

    with pytest.raises(NotFound, match="no backend instance 'elsewhere'"):
        adoption.adopt(ROOT, AdoptionRequest("elsewhere", "", ACME, ScopeRef.global_scope()))
    with pytest.raises(NotFound):
        adopt(adoption, actor=Principal(id="user:mallory", kind="user"))
    assert uow_factory.database.all_versions() == []


@pytest.mark.parametrize(
    ("external_name", "prefix", "name"),
    [
        ("apps/db/password", "apps/", "db_password"),
        ("secret-management-legacy", "secret-management-", "legacy"),
        ("prod/2fa seed", "prod/", "_2fa_seed"),
        ("apps/db", "apps/db", "db"),
    ],
)
def test_secret_names_follow_the_external_name(external_name: str, prefix: str, name: str) -> None:
    assert secret_name_for(external_name, prefix) == name


@pytest.mark.parametrize("carol_has_a_scope", [True, False])
def test_nobody_but_its_user_adopts_into_a_personal_scope(
    uow_factory: FakeUnitOfWorkFactory, backend: AdoptableBackend, carol_has_a_scope: bool
) -> None:
    """Values adopted into `user:carol` would win her resolutions: the root and global admins
    may adopt, but a personal scope is written by its user alone."""
    carols = ScopeRef(ScopeType.USER, "carol")
    if carol_has_a_scope:
        uow_factory.database.add_scope(carols, ScopeRef.global_scope())
    uow_factory.database.grant("user:admin", Role.ADMIN)
    uow_factory.database.grant("user:carol", Role.ADMIN)
    adoption = service(uow_factory, backend)

    for actor in (ROOT, Principal(id="user:admin", kind="user")):
        for parent in (None, ScopeRef.global_scope()):
            with pytest.raises(NotFound, match="no scope user/carol"):
                adoption.adopt(actor, AdoptionRequest("store", "apps/", carols, parent))
    assert uow_factory.database.all_versions() == []

    carol = Principal(id="user:carol", kind="user")
    adopted = adoption.adopt(carol, AdoptionRequest("store", "apps/", carols))
    assert {r.status for r in adopted} == {AdoptionStatus.ADOPTED}
