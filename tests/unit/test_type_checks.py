"""Secret types in core: SecretService checks a value against its type before storing it, keeps
what the check derives in `type.*` tags, and takes the value's own expiry when none is given."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.errors import InvalidInput, InvalidSecretValue
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.policy import SecretPolicy, ValueChecksum
from core.secrets import MetadataChanges, NewSecret, SecretService
from core.types import TypeRegistry
from core.writes import WriteService
from ports.types import SecretType, TypeCheck
from tests.fakes import (
    FakeDatabase,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
    fake_secret_types,
    make_audit_trail,
    recorded,
)

ALICE = Principal("user:alice", "user")
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
JUNE = datetime(2024, 6, 30, tzinfo=UTC)
SEPTEMBER = datetime(2024, 9, 30, tzinfo=UTC)


class BrokenType(SecretType):
    """A plugin with a bug: its check raises, with the value in the message."""

    name = "broken"

    def validate(self, value: SecretValue) -> TypeCheck:
        raise RuntimeError(f"cannot handle {value.reveal()!r}")

    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        return {}


@pytest.fixture
def db() -> FakeUnitOfWorkFactory:
    database = FakeDatabase()
    database.add_scope(PROJECT, ScopeRef.global_scope())
    database.grant(ALICE.id, Role.ADMIN)
    return FakeUnitOfWorkFactory(database)


def parts(db: FakeUnitOfWorkFactory) -> tuple[Any, ...]:
    """What `SecretService` and `WriteService` are built with (and the types)."""
    backend = InMemoryBackend()
    clock = FixedClock(datetime(2024, 3, 1, tzinfo=UTC))
    return (
        db,
        BackendRegistry({backend.name: backend}, default=backend.name),
        clock,
        ValueChecksum(b"unit-test-checksum-key-of-32-byt"),
        SecretPolicy(),
        make_audit_trail(db, clock),
    )


def make_service(db: FakeUnitOfWorkFactory, types: TypeRegistry) -> SecretService:
    return SecretService(*parts(db), types=types)


@pytest.fixture
def built(db: FakeUnitOfWorkFactory) -> tuple[Any, ...]:
    """One backend, clock and audit trail, and the types, for `service` and `writes`."""
    return (*parts(db), TypeRegistry({**fake_secret_types(), "broken": BrokenType()}))


@pytest.fixture
def service(built: tuple[Any, ...]) -> SecretService:
    return SecretService(*built)


@pytest.fixture
def writes(built: tuple[Any, ...]) -> WriteService:
    return WriteService(*built)


def create(service: SecretService, value: str, **draft: Any) -> Any:
    draft.setdefault("name", "S")
    return service.create_secret(ALICE, NewSecret(PROJECT, **draft), SecretValue.from_text(value))


def test_an_unknown_type_is_refused_before_anything_happens(
    service: SecretService, db: FakeUnitOfWorkFactory
) -> None:
    with recorded(db) as events, pytest.raises(InvalidInput) as raised:
        create(service, "x", type="no_such_type")

    assert raised.value.details == {"field": "type"}
    assert "pin" in raised.value.message and events == []


def test_a_value_failing_its_type_is_422_naming_the_field_and_reason_not_the_value(
    service: SecretService, db: FakeUnitOfWorkFactory
) -> None:
    with recorded(db) as events, pytest.raises(InvalidSecretValue) as raised:
        create(service, "12ab-secret", type="pin")

    assert raised.value.code == "invalid_secret_value"
    assert raised.value.details["field"] == "pin"
    assert raised.value.details["reason"] == "must be 4 to 8 digits"
    assert "12ab-secret" not in str(raised.value) + repr(raised.value.details)
    assert [(e.action, e.outcome, e.reason) for e in events] == [
        ("secret.create", "error", "invalid_secret_value")
    ]
    assert db.database.tables.secrets == {}


def test_a_valid_value_keeps_what_its_type_derives_in_type_tags(service: SecretService) -> None:
    secret = create(service, "123456", type="pin", tags={"team": "payments", "type.fake": "x"})

    assert secret.tags == {"team": "payments", "type.length": "6"}


def test_new_tags_keep_the_derived_ones_and_cannot_set_or_remove_them(
    service: SecretService,
) -> None:
    secret = create(service, "123456", type="pin", tags={"team": "payments"})

    replaced = service.update_metadata(
        ALICE, secret.id, MetadataChanges(tags={"team": "billing", "type.length": "99"})
    )
    emptied = service.update_metadata(ALICE, secret.id, MetadataChanges(tags={}))

    assert replaced.tags == {"team": "billing", "type.length": "6"}
    assert emptied.tags == {"type.length": "6"}


def test_the_values_expiry_becomes_the_secrets_when_none_is_given(service: SecretService) -> None:
    derived = create(service, "2024-06-30:s", name="DERIVED", type="dated")
    explicit = create(service, "2024-06-30:s", name="EXPLICIT", type="dated", expires_at=SEPTEMBER)

    assert derived.expires_at == JUNE
    assert derived.tags["type.expires_at"] == JUNE.isoformat()
    assert explicit.expires_at == SEPTEMBER


def test_a_new_value_refreshes_the_derived_tags_and_the_derived_expiry(
    service: SecretService,
    writes: WriteService,
) -> None:
    derived = create(service, "2024-06-30:s", name="DERIVED", type="dated")
    explicit = create(service, "2024-06-30:s", name="EXPLICIT", type="dated", expires_at=SEPTEMBER)

    renewed = writes.write_value(ALICE, derived.id, SecretValue(b"2025-06-30:t"))
    kept = writes.write_value(ALICE, explicit.id, SecretValue(b"2025-06-30:t"))

    assert renewed.expires_at == datetime(2025, 6, 30, tzinfo=UTC)
    assert renewed.tags["type.not_after"] == "2025-06-30"
    assert kept.expires_at == SEPTEMBER
    assert service.get_secret(ALICE, derived.id).expires_at == renewed.expires_at


def test_a_new_value_is_checked_against_the_secrets_type(
    service: SecretService, writes: WriteService, db: FakeUnitOfWorkFactory
) -> None:
    secret = create(service, "1234", type="pin")

    with pytest.raises(InvalidSecretValue):
        writes.write_value(ALICE, secret.id, SecretValue(b"letters"))

    assert list(db.database.tables.versions[secret.id]) == [1]  # the refused value made none
    assert service.get_secret(ALICE, secret.id).current_version == 1


def test_a_failing_plugin_refuses_the_value_and_logs_no_value(
    service: SecretService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    with pytest.raises(InvalidSecretValue) as raised:
        create(service, "plugin-crasher-0042", type="broken")

    assert raised.value.details["reason"] == "could not be checked"
    assert "plugin-crasher-0042" not in caplog.text
    assert "RuntimeError" in caplog.text


def test_a_registry_without_types_checks_nothing(db: FakeUnitOfWorkFactory) -> None:
    service = make_service(db, TypeRegistry())

    secret = create(service, "anything", type="whatever_type")

    assert secret.type == "whatever_type" and secret.tags == {}
    assert list(TypeRegistry()) == []
