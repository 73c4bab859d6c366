"""Each contract of `plugins.testing` can fail: its cases, run on a deliberately broken tiny
implementation (a built-in with one obligation broken), fail, and the case that fails is the one
named for that obligation. The built-ins pass the same cases (`test_plugin_contracts.py`,
`test_fake_backend_contract.py`)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from adapters.keys import FileKeyProvider
from core.domain.errors import InvalidInput, NotFound
from core.domain.values import SecretValue, VersionKey
from plugins.audit_sinks import StreamSink, json_line
from plugins.format_json import JsonFormat
from plugins.rotators import RandomRotator
from plugins.testing import (
    AuditSinkContract,
    BackendContract,
    FormatContract,
    KeyProviderContract,
    RotatorContract,
    SecretTypeContract,
)
from plugins.types_basic import UsernamePasswordType
from ports.formats import EntryError, ImportEntry
from ports.security import KeyEncryptionKey
from ports.types import FieldProblem, TypeCheck
from tests.fakes import InMemoryBackend

CONTRACT_FAILS = (AssertionError, pytest.fail.Exception)


def fails(case: Callable[..., Any], *arguments: Any) -> None:
    """The contract case fails on the broken implementation."""
    with pytest.raises(CONTRACT_FAILS):
        case(*arguments)


# -- storage backends -------------------------------------------------------------------------


class ServesAnyVersion(InMemoryBackend):
    """Serves a locator's value whatever version key it is asked for."""

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        stored = self.values.get(locator)
        if stored is None:
            raise NotFound("no such value")
        return SecretValue(stored.data)


def test_the_backend_contract_catches_a_value_served_under_another_version() -> None:
    backend = ServesAnyVersion()
    fails(BackendContract().test_a_value_is_never_served_under_another_version_key, backend)


# -- formats ----------------------------------------------------------------------------------


class TruncatingFormat(JsonFormat):
    """Reads every value back one character short."""

    def parse(self, stream: BinaryIO) -> Iterator[ImportEntry | EntryError]:
        for item in super().parse(stream):
            if isinstance(item, ImportEntry) and item.value is not None:
                text = item.value.reveal()[:-1]
                item = ImportEntry(item.line, item.name, SecretValue(text))
            yield item


class QuotingFormat(JsonFormat):
    """Says what is wrong with a file by quoting it."""

    def parse(self, stream: BinaryIO) -> Iterator[ImportEntry | EntryError]:
        content = stream.read()
        try:
            json.loads(content)
        except ValueError:
            yield EntryError(1, f"not JSON: {content.decode('utf-8', 'replace')[:200]}")
            return
        yield from super().parse(io.BytesIO(content))


class CrashingFormat(JsonFormat):
    def parse(self, stream: BinaryIO) -> Iterator[ImportEntry | EntryError]:
        document = json.loads(stream.read())  # a ValueError on anything but JSON
        yield from super().parse(io.BytesIO(json.dumps(document).encode()))


class ClosingFormat(JsonFormat):
    def parse(self, stream: BinaryIO) -> Iterator[ImportEntry | EntryError]:
        entries = list(super().parse(stream))
        stream.close()
        yield from entries


class TextFormatTakingBytes(JsonFormat):
    def cannot_hold(self, name: str, value: SecretValue) -> str | None:
        return None


def test_the_format_contract_catches_each_broken_obligation() -> None:
    contract = FormatContract()
    fails(contract.test_what_it_renders_parses_back_in_name_order, TruncatingFormat(full=False))
    fails(
        contract.test_an_error_names_its_line_and_never_quotes_the_file, QuotingFormat(full=False)
    )
    with pytest.raises(ValueError):  # not a contract failure: the case itself crashes
        contract.test_any_bytes_parse_to_entries_and_errors_never_another_exception(
            CrashingFormat(full=False), b"\xff not json"
        )
    fails(contract.test_the_callers_stream_stays_open, ClosingFormat(full=False))
    fails(
        contract.test_a_binary_value_is_kept_or_refused_as_its_declaration_says,
        TextFormatTakingBytes(full=False),
    )


# -- secret types -----------------------------------------------------------------------------

VALID = SecretValue.from_text(json.dumps({"username": "app", "password": "pw-contract-0001"}))
INVALID = SecretValue.from_text(
    json.dumps({"username": "app", "password": "pw-contract-0002", "unknown": "x"})
)


class ShowsPassword(UsernamePasswordType):
    def validate(self, value: SecretValue) -> TypeCheck:
        check = super().validate(value)
        return TypeCheck(check.problems, {"login": value.reveal().decode()}, check.expires_at)


class QuotesValue(UsernamePasswordType):
    def validate(self, value: SecretValue) -> TypeCheck:
        check = super().validate(value)
        if check.valid:
            return check
        return TypeCheck((FieldProblem("value", f"bad: {value.reveal().decode()}"),))


class RaisesOnGarbage(UsernamePasswordType):
    def validate(self, value: SecretValue) -> TypeCheck:
        json.loads(value.reveal())  # raises on what is not JSON
        return super().validate(value)


class BadVariableNames(UsernamePasswordType):
    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        return {f"{variable}-USER": "app"}


class RendersInvalid(UsernamePasswordType):
    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        return {variable: value.reveal().decode("utf-8", "replace")}


class UndeclaredSensitiveField(UsernamePasswordType):
    sensitive_fields = frozenset({"password", "pin"})


def test_the_secret_type_contract_catches_each_broken_obligation() -> None:
    contract = SecretTypeContract()
    shows = ShowsPassword()
    fails(
        contract.test_a_valid_value_passes_with_text_metadata_and_no_sensitive_part,
        shows,
        VALID,
        ["pw-contract-0001"],
    )
    fails(
        contract.test_an_invalid_value_is_refused_naming_a_field_never_quoting_it,
        QuotesValue(),
        INVALID,
    )
    with pytest.raises(ValueError):  # not a contract failure: the case itself crashes
        contract.test_validate_returns_problems_and_never_raises(RaisesOnGarbage(), b"\xff")
    fails(contract.test_a_valid_value_renders_as_environment_variables, BadVariableNames(), VALID)
    fails(
        contract.test_a_value_that_is_not_valid_has_no_variables_and_is_not_quoted,
        RendersInvalid(),
        INVALID,
    )
    fails(
        contract.test_it_declares_a_name_and_its_sensitive_fields_among_its_fields,
        UndeclaredSensitiveField(),
    )


# -- rotators ---------------------------------------------------------------------------------

SETTINGS = {"length": 24}


class TakesAnything(RandomRotator):
    def check_settings(self, settings: Mapping[str, Any]) -> None:
        pass


class SameValue(RandomRotator):
    def generate(self, settings: Mapping[str, Any]) -> SecretValue:
        return SecretValue.from_text("always-the-same-value")


class CrashesOnWrongType(RandomRotator):
    def check_settings(self, settings: Mapping[str, Any]) -> None:
        if set(settings) - {"length"}:
            raise InvalidInput("rotation settings: unknown setting")
        if settings["length"] + 0 < 8:  # a TypeError for a list, None…
            raise InvalidInput("rotation settings: length")


class LogsValue(RandomRotator):
    def generate(self, settings: Mapping[str, Any]) -> SecretValue:
        value = super().generate(settings)
        logging.getLogger("contract.rotator").debug("made %s", value.reveal().decode())
        return value


def test_the_rotator_contract_catches_each_broken_obligation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    contract = RotatorContract()
    fails(contract.test_an_unknown_setting_is_refused_naming_it, TakesAnything(), SETTINGS)
    fails(
        contract.test_a_url_key_file_or_variable_is_never_a_setting,
        TakesAnything(),
        SETTINGS,
        "url",
    )
    fails(
        contract.test_its_settings_are_accepted_and_make_a_new_value_each_time,
        SameValue(),
        SETTINGS,
    )
    with pytest.raises(TypeError):  # not a contract failure: the case itself crashes
        contract.test_a_setting_of_the_wrong_type_is_invalid_input_not_a_crash(
            CrashesOnWrongType(), SETTINGS, [1, 2]
        )
    fails(
        contract.test_no_value_reaches_a_repr_an_error_or_a_log_record,
        LogsValue(),
        SETTINGS,
        caplog,
    )


# -- key providers ----------------------------------------------------------------------------


class KeyErrorProvider(FileKeyProvider):
    def key(self, key_id: str) -> KeyEncryptionKey:
        if key_id != self.active_key().id:
            raise KeyError(key_id)
        return self.active_key()


class ChecksumIsTheKey(FileKeyProvider):
    def checksum_key(self) -> bytes:
        material = self.active_key().material
        assert material is not None
        return material


class ShowsMaterial(FileKeyProvider):
    def __repr__(self) -> str:
        material = self.active_key().material
        assert material is not None
        return f"ShowsMaterial({material.hex()})"


class ForgetsOlderKeys(FileKeyProvider):
    def key(self, key_id: str) -> KeyEncryptionKey:
        active = self.active_key()
        if key_id != active.id:
            raise NotFound("gone")
        return active


def test_the_key_provider_contract_catches_each_broken_obligation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    contract = KeyProviderContract()

    def provider(kind: type[FileKeyProvider], name: str) -> FileKeyProvider:
        return kind(str(tmp_path / f"{name}.json"), create=True)

    with pytest.raises(KeyError):  # not a contract failure: the case itself crashes
        contract.test_an_unknown_key_id_is_a_configuration_error(provider(KeyErrorProvider, "a"))
    fails(
        contract.test_the_checksum_key_is_stable_and_not_the_key_itself,
        provider(ChecksumIsTheKey, "b"),
    )
    fails(
        contract.test_no_material_shows_in_a_repr_or_a_log_record,
        provider(ShowsMaterial, "c"),
        caplog,
    )
    with pytest.raises((NotFound, *CONTRACT_FAILS)):
        contract.test_rotate_refuses_or_keeps_every_older_key(provider(ForgetsOlderKeys, "d"))


# -- audit sinks ------------------------------------------------------------------------------


class DropsLast(StreamSink):
    def emit(self, events: Sequence[Any]) -> None:
        super().emit(events[:-1])


class Reverses(StreamSink):
    def emit(self, events: Sequence[Any]) -> None:
        super().emit(list(reversed(events)))


class WritesOnNothing(StreamSink):
    def emit(self, events: Sequence[Any]) -> None:
        if not events:
            self._stream.write('{"seq": 0}\n')
        super().emit(events)


class ClearsDetails(StreamSink):
    def emit(self, events: Sequence[Any]) -> None:
        super().emit(events)
        for event in events:
            event.details.clear()


class UnlockedSink(StreamSink):
    """Writes each record in two pieces without its lock, pausing between them: while one
    thread pauses, the others write, so lines interleave."""

    def emit(self, events: Sequence[Any]) -> None:
        for event in events:
            line = json_line(event)
            self._stream.write(line[:10])
            time.sleep(0.001)
            self._stream.write(line[10:])


def test_the_audit_sink_contract_catches_each_broken_obligation() -> None:
    contract = AuditSinkContract()

    def run(kind: type[StreamSink], case: Callable[..., Any], *, reads: bool = True) -> None:
        stream = io.StringIO()
        sink = kind("broken", stream)

        def delivered() -> list[dict[str, Any]]:
            return [json.loads(line) for line in stream.getvalue().splitlines()]

        fails(case, sink, delivered) if reads else fails(case, sink)

    run(DropsLast, contract.test_events_are_delivered_once_in_chain_order_with_their_content)
    run(Reverses, contract.test_events_are_delivered_once_in_chain_order_with_their_content)
    run(WritesOnNothing, contract.test_emitting_nothing_delivers_nothing)
    run(ClearsDetails, contract.test_emit_leaves_the_events_as_they_were, reads=False)
    with pytest.raises((json.JSONDecodeError, *CONTRACT_FAILS)):
        stream = io.StringIO()
        contract.test_events_from_many_threads_are_all_delivered_whole(
            UnlockedSink("broken", stream),
            lambda: [json.loads(line) for line in stream.getvalue().splitlines()],
        )
