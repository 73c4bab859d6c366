"""ImportService and ExportService on the fakes: the import diff and its strategies,
all-or-nothing writes, errors by line, sealed files, and exports that need the right role and
audit every value they hold."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core import imports as imports_module
from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.errors import (
    AuditUnavailable,
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidImport,
    InvalidInput,
    NotFound,
    PreconditionFailed,
)
from core.domain.secrets import VersionState
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.exports import ExportService
from core.formats import FormatRegistry
from core.imports import ImportService
from core.policy import SecretPolicy, ValueChecksum
from core.reads import ReadService, ValueReader
from core.secrets import NewSecret, SecretService
from core.transfer_requests import ConflictStrategy, ExportRequest, ImportAction, ImportRequest
from core.types import TypeRegistry
from core.versions import VersionService
from core.writes import WriteService
from plugins.format_dotenv import DotenvFormat
from tests.fakes import (
    FakeCipher,
    FakeDatabase,
    FakeUnitOfWorkFactory,
    FixedClock,
    InMemoryBackend,
    RecordsFormat,
    fake_secret_types,
    make_audit_trail,
    recorded,
)

NOW = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
ALICE = Principal("user:alice", "user")  # admin everywhere
BOB = Principal("user:bob", "user")  # editor everywhere
CAROL = Principal("user:carol", "user")  # viewer of the project
MALLORY = Principal("user:mallory", "user")  # nothing
ORGANIZATION = ScopeRef(ScopeType.ORGANIZATION, "acme")
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
NEW_PROJECT = ScopeRef(ScopeType.PROJECT, "p-7")
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def db() -> FakeUnitOfWorkFactory:
    database = FakeDatabase()
    database.add_scope(ORGANIZATION, ScopeRef.global_scope())
    database.add_scope(PROJECT, ORGANIZATION)
    database.grant(ALICE.id, Role.ADMIN)
    database.grant(BOB.id, Role.EDITOR)
    database.grant(CAROL.id, Role.VIEWER, PROJECT)
    return FakeUnitOfWorkFactory(database)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend("memory")


@pytest.fixture
def parts(db: FakeUnitOfWorkFactory, clock: FixedClock, backend: InMemoryBackend) -> dict[str, Any]:
    return {
        "uow_factory": db,
        "backends": BackendRegistry({backend.name: backend}, default=backend.name),
        "clock": clock,
        "checksum": ValueChecksum(b"unit-test-checksum-key-of-32-byt"),
        "policy": SecretPolicy(),
        "audit": make_audit_trail(db, clock),
        "types": TypeRegistry(fake_secret_types()),
    }


FORMATS = FormatRegistry({"records": RecordsFormat(), "dotenv": DotenvFormat()})


@pytest.fixture
def importer(parts: dict[str, Any]) -> ImportService:
    return ImportService(**parts, formats=FORMATS, cipher=FakeCipher())


@pytest.fixture
def exporter(parts: dict[str, Any]) -> ExportService:
    reader = ValueReader(parts["backends"], parts["clock"], parts["checksum"])
    return ExportService(
        parts["uow_factory"], reader, parts["clock"], parts["audit"], FORMATS, FakeCipher()
    )


@pytest.fixture
def secrets(parts: dict[str, Any]) -> SecretService:
    return SecretService(**parts)


@pytest.fixture
def writes(parts: dict[str, Any]) -> WriteService:
    return WriteService(**parts)


@pytest.fixture
def reads(parts: dict[str, Any]) -> ReadService:
    reader = ValueReader(parts["backends"], parts["clock"], parts["checksum"])
    return ReadService(parts["uow_factory"], reader, parts["clock"], parts["audit"])


@pytest.fixture
def versions(parts: dict[str, Any]) -> VersionService:
    return VersionService(parts["uow_factory"], parts["backends"], parts["clock"], parts["audit"])


def records(*items: dict[str, Any] | str) -> io.BytesIO:
    lines = [item if isinstance(item, str) else json.dumps(item) for item in items]
    return io.BytesIO(("\n".join(lines) + "\n").encode())


def run_import(
    importer: ImportService,
    content: io.BytesIO,
    actor: Principal = BOB,
    **request: Any,
) -> Any:
    request.setdefault("scope", PROJECT)
    request.setdefault("format", "records")
    return importer.import_secrets(actor, ImportRequest(**request), content)


def actions(report: Any) -> dict[str, str]:
    return {item.name: item.action.value for item in report.items}


def value_of(
    secrets: SecretService, reads: ReadService, name: str, scope: ScopeRef = PROJECT
) -> bytes:
    found = secrets.find_secret(ALICE, scope, name, None)
    return reads.read_value(ALICE, found.id).value.reveal()


def names_in(db: FakeUnitOfWorkFactory) -> set[str]:
    return {secret.name for secret in db.database.tables.secrets.values()}


def seed(secrets: SecretService, **values: str) -> None:
    for name, value in values.items():
        secrets.create_secret(ALICE, NewSecret(PROJECT, name), SecretValue.from_text(value))


# -- import: the diff ----------------------------------------------------------------------


def test_a_dry_run_shows_the_diff_and_changes_nothing(
    secrets: SecretService, db: FakeUnitOfWorkFactory, importer: ImportService
) -> None:
    seed(secrets, SAME="same-value", OTHER="old-value")
    stored_before = dict(db.database.tables.secrets)
    content = records(
        {"name": "SAME", "value": "same-value"},
        {"name": "OTHER", "value": "new-value"},
        {"name": "NEW", "value": "fresh"},
    )

    with recorded(db) as events:
        report = run_import(importer, content, dry_run=True, strategy=ConflictStrategy.OVERWRITE)

    assert actions(report) == {"SAME": "unchanged", "OTHER": "update", "NEW": "create"}
    assert [item.line for item in report.items] == [1, 2, 3]
    assert report.counts["update"] == 1 and report.dry_run
    assert db.database.tables.secrets == stored_before
    [event] = events
    assert (event.action, event.outcome, event.details["dry_run"]) == (
        "secret.import",
        "success",
        True,
    )
    assert event.details["create"] == 1 and event.details["unchanged"] == 1


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (ConflictStrategy.SKIP, {"OTHER": b"old-value", "NEW": b"fresh"}),
        (ConflictStrategy.OVERWRITE, {"OTHER": b"new-value", "NEW": b"fresh"}),
    ],
)
def test_skip_keeps_and_overwrite_replaces_a_name_holding_another_value(
    secrets: SecretService,
    strategy: ConflictStrategy,
    expected: dict[str, bytes],
    reads: ReadService,
    versions: VersionService,
    importer: ImportService,
) -> None:
    seed(secrets, OTHER="old-value")

    report = run_import(
        importer,
        records({"name": "OTHER", "value": "new-value"}, {"name": "NEW", "value": "fresh"}),
        strategy=strategy,
    )

    assert {name: value_of(secrets, reads, name) for name in expected} == expected
    other = report.items[0]
    if strategy is ConflictStrategy.SKIP:
        assert (other.action, other.reason) == (ImportAction.SKIPPED, "holds another value")
    else:
        assert (other.action, other.version) == (ImportAction.UPDATE, 2)
        found = secrets.find_secret(ALICE, PROJECT, "OTHER", None)
        assert [v.version for v in versions.list_versions(ALICE, found.id)] == [1, 2]


def test_fail_imports_nothing_when_a_name_holds_another_value(
    secrets: SecretService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    importer: ImportService,
) -> None:
    seed(secrets, OTHER="old-value")
    stored = set(backend.values)

    with recorded(db) as events, pytest.raises(Conflict) as raised:
        run_import(
            importer,
            records({"name": "NEW", "value": "fresh"}, {"name": "OTHER", "value": "new-value"}),
            strategy=ConflictStrategy.FAIL,
        )

    assert raised.value.details["conflicts"] == [
        {"line": 2, "name": "OTHER", "reason": "holds another value"}
    ]
    assert names_in(db) == {"OTHER"} and set(backend.values) == stored
    assert [(e.action, e.outcome, e.reason) for e in events] == [
        ("secret.import", "error", "conflict")
    ]


def test_fail_imports_everything_when_nothing_conflicts(
    secrets: SecretService, reads: ReadService, importer: ImportService
) -> None:
    seed(secrets, SAME="same-value")

    report = run_import(
        importer,
        records({"name": "SAME", "value": "same-value"}, {"name": "NEW", "value": "fresh"}),
        strategy=ConflictStrategy.FAIL,
    )

    assert actions(report) == {"SAME": "unchanged", "NEW": "create"}
    assert value_of(secrets, reads, "NEW") == b"fresh"


def test_a_deleted_name_is_skipped_or_a_conflict(
    secrets: SecretService, importer: ImportService
) -> None:
    seed(secrets, GONE="old")
    secrets.delete_secret(ALICE, secrets.find_secret(ALICE, PROJECT, "GONE", None).id)
    content = records({"name": "GONE", "value": "again"})

    skipped = run_import(importer, content, dry_run=True)
    conflict = run_import(importer, content, dry_run=True, strategy=ConflictStrategy.FAIL)

    assert skipped.items[0].action is ImportAction.SKIPPED
    assert "deleted" in skipped.items[0].reason
    assert conflict.items[0].action is ImportAction.CONFLICT


# -- import: errors by line ----------------------------------------------------------------


def test_a_file_with_errors_imports_nothing_and_names_each_line(
    db: FakeUnitOfWorkFactory, backend: InMemoryBackend, importer: ImportService
) -> None:
    content = records(
        {"name": "GOOD", "value": "fine"},
        "not json at all",
        {"name": "9BAD", "value": "x"},
        {"name": "GOOD", "value": "twice"},
        {"name": "PIN", "value": "secret-pin-12", "type": "pin"},
        {"name": "NOTYPE", "value": "x", "type": "no_such_type"},
        {"name": "EMPTY"},
    )

    with pytest.raises(InvalidImport) as raised:
        run_import(importer, content)

    errors = {(e["line"], e["field"]): e["message"] for e in raised.value.details["errors"]}
    assert set(errors) == {
        (2, None),
        (3, "name"),
        (4, "name"),
        (5, "pin"),
        (6, "type"),
        (7, "value"),
    }
    assert errors[(4, "name")] == "'GOOD' is also at line 1"
    assert errors[(5, "pin")] == "not a valid pin: pin: must be 4 to 8 digits"
    assert "secret-pin-12" not in json.dumps(raised.value.details)
    assert names_in(db) == set() and backend.values == {}


def test_a_dry_run_answers_with_the_errors_instead_of_refusing(importer: ImportService) -> None:
    report = run_import(importer, records({"name": "OK", "value": "v"}, "{broken"), dry_run=True)

    assert actions(report) == {"OK": "create"}
    assert [(error.line, error.message) for error in report.errors] == [(2, "is not a record")]


def test_a_value_over_the_backend_limit_is_an_error_at_its_line(
    parts: dict[str, Any], importer: ImportService
) -> None:
    content = records({"name": "BIG", "value": "x" * 70_000})

    with pytest.raises(InvalidImport) as raised:
        run_import(importer, content)

    [error] = raised.value.details["errors"]
    assert (error["line"], error["field"]) == (1, "value")
    assert "limit" in error["message"]


# -- import: all or nothing ----------------------------------------------------------------


def test_a_transaction_that_fails_destroys_every_value_it_put(
    db: FakeUnitOfWorkFactory, backend: InMemoryBackend, importer: ImportService
) -> None:
    db.database.fail_next_commit(RuntimeError("the database went away"))
    content = records({"name": "A", "value": "a"}, {"name": "B", "value": "b", "history": ["b0"]})

    with pytest.raises(RuntimeError):
        run_import(importer, content)

    assert names_in(db) == set()
    assert backend.values == {} and len(backend.destroyed) == 3


def test_a_backend_failing_midway_destroys_what_was_put_before(
    db: FakeUnitOfWorkFactory, backend: InMemoryBackend, importer: ImportService
) -> None:
    def second_put_fails(key: object) -> None:
        backend.on_put = None
        backend.fail_next_put = True

    backend.on_put = second_put_fails
    content = records({"name": "A", "value": "a"}, {"name": "B", "value": "b"})

    with pytest.raises(BackendUnavailable):
        run_import(importer, content)

    assert names_in(db) == set() and backend.values == {}


def test_a_secret_changed_during_the_import_makes_it_import_nothing(
    secrets: SecretService,
    db: FakeUnitOfWorkFactory,
    backend: InMemoryBackend,
    reads: ReadService,
    importer: ImportService,
) -> None:
    seed(secrets, OTHER="old-value")
    stored = set(backend.values)
    db.database.fail_next_update(PreconditionFailed("moved on"))
    content = records({"name": "OTHER", "value": "new"}, {"name": "NEW", "value": "fresh"})

    with pytest.raises(Conflict, match="nothing was imported"):
        run_import(importer, content, strategy=ConflictStrategy.OVERWRITE)

    assert names_in(db) == {"OTHER"} and set(backend.values) == stored
    assert value_of(secrets, reads, "OTHER") == b"old-value"


def test_an_import_records_every_version_it_writes_without_values(
    secrets: SecretService, db: FakeUnitOfWorkFactory, importer: ImportService
) -> None:
    seed(secrets, OTHER="old-value")

    with recorded(db) as events:
        run_import(
            importer,
            records({"name": "OTHER", "value": "new-value"}, {"name": "NEW", "value": "fresh"}),
            strategy=ConflictStrategy.OVERWRITE,
        )

    assert [(e.action, e.version, e.details.get("name")) for e in events] == [
        ("secret.import", None, None),
        ("secret.write_value", 2, "OTHER"),
        ("secret.create", 1, "NEW"),
    ]
    assert all(e.details.get("value_hmac", "hmac-sha256:").startswith("hmac") for e in events)
    assert "new-value" not in repr(events) and "fresh" not in repr(events)


def test_a_new_scope_below_its_parent_is_created_with_the_import(
    secrets: SecretService, importer: ImportService
) -> None:
    run_import(
        importer,
        records({"name": "A", "value": "a"}),
        ALICE,  # creating a scope takes an admin of its parent
        scope=NEW_PROJECT,
        parent=ORGANIZATION,
        environment="staging",
    )

    found = secrets.find_secret(ALICE, NEW_PROJECT, "A", "staging")
    assert found.environment == "staging"


def test_history_becomes_the_versions_of_a_new_secret(
    secrets: SecretService, reads: ReadService, importer: ImportService
) -> None:
    run_import(importer, records({"name": "H", "value": "v3", "history": ["v1", "v2"]}))

    found = secrets.find_secret(ALICE, PROJECT, "H", None)
    values = [reads.read_value(ALICE, found.id, n).value.reveal() for n in (1, 2, 3)]
    assert values == [b"v1", b"v2", b"v3"] and found.current_version == 3


def test_types_check_values_and_derive_metadata_and_expiry(
    secrets: SecretService, importer: ImportService
) -> None:
    run_import(
        importer,
        records(
            {"name": "PIN", "value": "1234", "type": "pin"},
            {"name": "DATED", "value": "2024-06-30:s3cret", "type": "dated"},
            {
                "name": "KEPT",
                "value": "2024-06-30:s3cret",
                "type": "dated",
                "expires_at": "2024-05-01T00:00:00+00:00",
            },
        ),
    )

    pin, dated, kept = (
        secrets.find_secret(ALICE, PROJECT, n, None) for n in ("PIN", "DATED", "KEPT")
    )
    assert pin.tags == {"type.length": "4"}
    assert dated.expires_at == datetime(2024, 6, 30, tzinfo=UTC)
    assert kept.expires_at == datetime(2024, 5, 1, tzinfo=UTC)


def test_an_update_is_checked_against_the_existing_secrets_type(
    secrets: SecretService, importer: ImportService
) -> None:
    secrets.create_secret(
        ALICE, NewSecret(PROJECT, "PIN", type="pin"), SecretValue.from_text("1234")
    )

    with pytest.raises(InvalidImport) as raised:
        run_import(
            importer, records({"name": "PIN", "value": "abcd"}), strategy=ConflictStrategy.OVERWRITE
        )

    [error] = raised.value.details["errors"]
    assert error["field"] == "pin"


def test_the_formats_style_note_is_kept_and_cleared(
    secrets: SecretService, importer: ImportService
) -> None:
    run_import(importer, records({"name": "S", "value": "v", "style": "fancy"}))
    assert secrets.find_secret(ALICE, PROJECT, "S", None).tags == {"records.style": "fancy"}

    run_import(importer, records({"name": "S", "value": "w"}), strategy=ConflictStrategy.OVERWRITE)
    assert secrets.find_secret(ALICE, PROJECT, "S", None).tags == {}


# -- import: who may --------------------------------------------------------------------------


@pytest.mark.parametrize(("actor", "error"), [(CAROL, Forbidden), (MALLORY, NotFound)])
def test_importing_takes_write_access_to_the_scope(
    actor: Principal, error: type[Exception], importer: ImportService
) -> None:
    with pytest.raises(error):
        run_import(importer, records({"name": "A", "value": "a"}), actor=actor, dry_run=True)


# -- sealed files -----------------------------------------------------------------------------


def test_a_sealed_file_is_opened_with_its_passphrase(
    secrets: SecretService, reads: ReadService, importer: ImportService
) -> None:
    sealed = FakeCipher().seal(b'{"name": "S", "value": "v"}\n', PASSPHRASE, "records")

    run_import(importer, io.BytesIO(sealed), format=None, passphrase=PASSPHRASE)

    assert value_of(secrets, reads, "S") == b"v"


@pytest.mark.parametrize(
    ("passphrase", "fmt", "field"),
    [
        (None, None, "passphrase"),
        ("wrong passphrase!", None, "passphrase"),
        (PASSPHRASE, "dotenv", "format"),
    ],
)
def test_a_sealed_file_needs_its_passphrase_and_names_its_format(
    passphrase: str | None, fmt: str | None, field: str, importer: ImportService
) -> None:
    sealed = FakeCipher().seal(b'{"name": "S", "value": "v"}\n', PASSPHRASE, "records")

    with pytest.raises(InvalidInput) as raised:
        run_import(importer, io.BytesIO(sealed), format=fmt, passphrase=passphrase)

    assert raised.value.details["field"] == field


def test_a_plain_file_needs_its_format_named_or_suggested_by_its_name(
    secrets: SecretService, reads: ReadService, importer: ImportService
) -> None:
    with pytest.raises(InvalidInput, match="format"):
        run_import(importer, records({"name": "A", "value": "a"}), format=None, filename="a.txt")

    run_import(importer, io.BytesIO(b"B=b\n"), format=None, filename="/tmp/.env.production")
    sealed = FakeCipher().seal(b'{"name": "C", "value": "c"}\n', PASSPHRASE, "records")
    run_import(importer, io.BytesIO(sealed), format=None, filename="c.env", passphrase=PASSPHRASE)

    assert value_of(secrets, reads, "B") == b"b" and value_of(secrets, reads, "C") == b"c"


# -- export -----------------------------------------------------------------------------------


def export(exporter: ExportService, actor: Principal = ALICE, **request: Any) -> Any:
    request.setdefault("scope", PROJECT)
    request.setdefault("format", "records")
    return exporter.export_secrets(actor, ExportRequest(**request))


def lines_of(content: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in content.decode().splitlines()]


def test_a_metadata_export_holds_no_value_and_needs_only_to_see_the_scope(
    secrets: SecretService, db: FakeUnitOfWorkFactory, exporter: ExportService
) -> None:
    seed(secrets, B_KEY="b-value", A_KEY="a-value")

    with recorded(db) as events:
        exported = export(exporter, CAROL)

    assert [line["name"] for line in lines_of(exported.content)] == ["A_KEY", "B_KEY"]
    assert b"a-value" not in exported.content and exported.values == 0
    assert [(e.action, e.details["values"]) for e in events] == [("secret.export", 0)]


def test_exporting_values_takes_an_admin_and_audits_every_value(
    secrets: SecretService, db: FakeUnitOfWorkFactory, exporter: ExportService
) -> None:
    seed(secrets, A_KEY="a-value", B_KEY="b-value")

    with pytest.raises(Forbidden):
        export(exporter, BOB, include_values=True)
    with recorded(db) as events:
        exported = export(exporter, ALICE, include_values=True)

    assert [line["value"] for line in lines_of(exported.content)] == ["a-value", "b-value"]
    assert [(e.action, e.details) for e in events[1:]] == [
        ("secret.read_value", {"via": "export"}),
        ("secret.read_value", {"via": "export"}),
    ]
    assert events[0].action == "secret.export" and events[0].details["values"] == 2
    assert "a-value" not in repr(events)


def test_no_export_leaves_without_its_audit_events(
    secrets: SecretService, db: FakeUnitOfWorkFactory, exporter: ExportService
) -> None:
    seed(secrets, A_KEY="a-value")
    db.database.audit_down = True

    with pytest.raises(AuditUnavailable):
        export(exporter, ALICE, include_values=True)


def test_an_export_takes_one_environment_or_the_environment_agnostic_secrets(
    secrets: SecretService, exporter: ExportService
) -> None:
    seed(secrets, SHARED="s")
    secrets.create_secret(
        ALICE, NewSecret(PROJECT, "PROD_ONLY", environment="production"), SecretValue(b"p")
    )

    agnostic = export(exporter, include_values=True)
    production = export(exporter, include_values=True, environment="production")

    assert [line["name"] for line in lines_of(agnostic.content)] == ["SHARED"]
    assert [line["name"] for line in lines_of(production.content)] == ["PROD_ONLY"]


def test_values_that_may_not_be_served_or_are_not_text_are_left_out(
    secrets: SecretService, clock: FixedClock, exporter: ExportService
) -> None:
    secrets.create_secret(
        ALICE,
        NewSecret(PROJECT, "EXPIRING", expires_at=NOW + timedelta(days=1)),
        SecretValue(b"soon"),
    )
    secrets.create_secret(ALICE, NewSecret(PROJECT, "BINARY"), SecretValue(b"\xff\xfe"))
    clock.advance(timedelta(days=2))

    exported = export(exporter, include_values=True)

    assert dict(exported.omitted) == {
        "BINARY": "binary; the records format holds text",
        "EXPIRING": "secret_expired",
    }
    assert all("value" not in line for line in lines_of(exported.content))


def test_an_export_with_versions_holds_each_one_that_may_be_served(
    secrets: SecretService, writes: WriteService, db: FakeUnitOfWorkFactory, exporter: ExportService
) -> None:
    seed(secrets, V="one")
    found = secrets.find_secret(ALICE, PROJECT, "V", None)
    writes.write_value(ALICE, found.id, SecretValue(b"two"))
    db.database.replace_version(found.id, 1, state=VersionState.DISABLED)

    exported = export(exporter, include_values=True, include_versions=True)

    [line] = lines_of(exported.content)
    assert line["versions"] == [
        {"version": 1, "value": None, "unavailable": "version_unavailable"},
        {"version": 2, "value": "two", "unavailable": None},
    ]
    assert exported.values == 1


def test_a_sealed_export_opens_with_its_passphrase_and_imports_back(
    secrets: SecretService, reads: ReadService, importer: ImportService, exporter: ExportService
) -> None:
    seed(secrets, A_KEY="a-value")

    exported = export(exporter, include_values=True, passphrase=PASSPHRASE)
    assert exported.sealed and exported.filename == "project-p-42.records.sealed"
    assert FakeCipher().open(exported.content, PASSPHRASE)[0] == "records"

    run_import(
        importer,
        io.BytesIO(exported.content),
        ALICE,
        scope=NEW_PROJECT,
        parent=ORGANIZATION,
        format=None,
        passphrase=PASSPHRASE,
    )
    assert value_of(secrets, reads, "A_KEY", NEW_PROJECT) == b"a-value"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"format": "nope"}, "format"),
        ({"format": "dotenv"}, "include_values"),
        ({"include_values": True, "passphrase": "short"}, "passphrase"),
    ],
)
def test_an_export_that_cannot_be_written_is_refused(
    request_fields: dict[str, Any], field: str, exporter: ExportService
) -> None:
    with pytest.raises(InvalidInput) as raised:
        export(exporter, **request_fields)

    assert raised.value.details["field"] == field


@pytest.mark.parametrize(("actor", "error"), [(MALLORY, NotFound), (ALICE, NotFound)])
def test_an_unknown_or_invisible_scope_is_not_found(
    actor: Principal, error: type[Exception], exporter: ExportService
) -> None:
    scope = PROJECT if actor is MALLORY else ScopeRef(ScopeType.PROJECT, "nowhere")

    with pytest.raises(error, match=f"no scope {scope}"):
        export(exporter, actor, scope=scope)


# -- round trip through the service ---------------------------------------------------------


def test_a_dotenv_file_round_trips_through_import_and_export(
    db: FakeUnitOfWorkFactory, importer: ImportService, exporter: ExportService
) -> None:
    content = b"A=plain\nB=\"two words\"\nexport C='${NOT_EXPANDED}'\nD=\n"

    run_import(importer, io.BytesIO(content), format="dotenv")
    exported = export(exporter, format="dotenv", include_values=True)

    assert exported.content == content
    assert sorted(names_in(db)) == ["A", "B", "C", "D"]


def test_a_value_no_dotenv_line_holds_safely_is_left_out_unread_saying_why(
    secrets: SecretService, db: FakeUnitOfWorkFactory, exporter: ExportService
) -> None:
    seed(secrets, A_OK="x", B_BOTH="it's $(touch pwned)")
    secrets.create_secret(ALICE, NewSecret(PROJECT, "c-dashed"), SecretValue(b"y"))

    with recorded(db) as events:
        exported = export(exporter, format="dotenv", include_values=True)

    assert exported.content == b"A_OK=x\n" and exported.values == 1
    assert dict(exported.omitted) == {
        "B_BOTH": "holds ' (or a trailing or doubled \\) and $ or a backtick: no quotes read "
        "it the same in sh and python-dotenv",
        "c-dashed": "the name is not a shell variable name",
    }
    assert [e.action for e in events] == ["secret.export", "secret.read_value"]


def test_an_import_holds_a_bounded_number_of_values_history_included(
    db: FakeUnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch, importer: ImportService
) -> None:
    monkeypatch.setattr(imports_module, "MAX_IMPORT_VALUES", 4)
    four = [{"name": f"K{i}", "value": "v"} for i in range(4)]

    assert run_import(importer, records(*four), dry_run=True).counts["create"] == 4
    for content in (
        records(*four, {"name": "K4", "value": "v"}),
        records({"name": "K", "value": "v", "history": ["1", "2", "3", "4"]}),
        records(*four, "not a record"),
    ):
        with pytest.raises(InvalidInput, match="more than 4 entries and versions") as refused:
            run_import(importer, content)
        assert refused.value.details == {"field": "file"}
    assert names_in(db) == set()
