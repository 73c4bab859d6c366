"""The value types that carry secrets never show them: not in repr, str, logs, pickles or errors."""

from __future__ import annotations

import base64
import hmac
import logging
import pickle
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from core.domain.secrets import RevealedValue, Secret, SecretVersion
from core.domain.values import ScopeRef, SecretValue
from core.policy import ValueChecksum
from ports.security import KeyEncryptionKey

PLAINTEXT = "sk-live-Zm9vYmFyYmF6-canary"


@pytest.fixture
def value() -> SecretValue:
    return SecretValue.from_text(PLAINTEXT)


RENDERINGS = {
    "repr": repr,
    "str": str,
    "f-string": lambda v: f"{v}",
    "f-string-repr": lambda v: f"{v!r}",
    "f-string-ascii": lambda v: f"{v!a}",
    "format": format,
    "str.format": "{}".format,
    "percent-s": lambda v: "%s" % v,  # noqa: UP031 - the old operator is what is tested
    "percent-r": lambda v: "%r" % v,  # noqa: UP031
    "in-a-list": lambda v: repr([v]),
    "in-a-dict": lambda v: str({"token": v}),
    "in-an-exception": lambda v: str(ValueError(v)),
}


@pytest.mark.parametrize("render", RENDERINGS.values(), ids=RENDERINGS.keys())
def test_no_rendering_shows_the_bytes(value: SecretValue, render: object) -> None:
    text = render(value)  # type: ignore[operator]

    assert PLAINTEXT not in text
    assert f"<{len(PLAINTEXT)} bytes redacted>" in text


@pytest.mark.parametrize("spec", [">60", "s", "x"])
def test_a_format_spec_never_shows_the_bytes(value: SecretValue, spec: str) -> None:
    try:
        text = format(value, spec)
    except TypeError:  # object.__format__ refuses a spec it does not know: nothing shown
        return
    assert PLAINTEXT not in text


def test_a_revealed_value_shows_its_metadata_not_its_value(value: SecretValue) -> None:
    secret_id = uuid4()
    now = datetime(2024, 1, 1, tzinfo=UTC)
    revealed = RevealedValue(
        secret=Secret(secret_id, ScopeRef.global_scope(), "TOKEN", "local", now, "user:alice"),
        version=SecretVersion(secret_id, 1, "local", "loc-1", "hmac-sha256:00", now, "user:a"),
        value=value,
    )

    assert PLAINTEXT not in repr(revealed)
    assert "TOKEN" in repr(revealed)


@pytest.mark.parametrize(
    "log",
    [
        lambda logger, v: logger.warning("value is %s", v),
        lambda logger, v: logger.warning("value is %r", v),
        lambda logger, v: logger.warning("values are %(v)s", {"v": v}),
        lambda logger, v: logger.warning(f"value is {v}"),  # a careless caller
        lambda logger, v: logger.exception("failed", exc_info=ValueError(v)),
    ],
    ids=["percent-s", "percent-r", "mapping", "f-string", "exception"],
)
def test_a_log_line_never_shows_the_bytes(
    value: SecretValue, caplog: pytest.LogCaptureFixture, log: object
) -> None:
    logger = logging.getLogger("tests.values")
    caplog.set_level(logging.DEBUG, logger="tests.values")

    log(logger, value)  # type: ignore[operator]

    [record] = caplog.records
    assert PLAINTEXT not in caplog.text
    assert PLAINTEXT not in record.getMessage()
    assert "bytes redacted" in caplog.text


def test_a_log_field_never_shows_the_bytes(
    value: SecretValue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tests.values")

    logging.getLogger("tests.values").warning("rotated", extra={"value": value})

    [record] = caplog.records
    text = logging.Formatter("%(message)s %(value)s").format(record)
    assert PLAINTEXT not in text
    assert "bytes redacted" in text


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_value_cannot_be_pickled(value: SecretValue, protocol: int) -> None:
    with pytest.raises(TypeError) as raised:
        pickle.dumps(value, protocol=protocol)

    assert PLAINTEXT not in str(raised.value)


def test_a_value_has_no_attribute_dict_to_dump(value: SecretValue) -> None:
    with pytest.raises(TypeError):
        vars(value)


def test_a_value_is_not_hashable(value: SecretValue) -> None:
    with pytest.raises(TypeError):
        hash(value)


def test_equality_compares_the_bytes(value: SecretValue) -> None:
    assert value == SecretValue(PLAINTEXT.encode())
    assert not value != SecretValue(PLAINTEXT.encode())
    assert value != SecretValue(PLAINTEXT.encode()[:-1] + b"X")
    assert value != SecretValue(PLAINTEXT.encode() + b"-longer")
    assert value != SecretValue(b"")
    assert value != PLAINTEXT.encode()
    assert value != PLAINTEXT


def test_equality_runs_in_constant_time(
    value: SecretValue, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def recording_compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording_compare_digest)

    assert value == SecretValue(PLAINTEXT.encode())
    assert value != SecretValue(b"other")
    assert compared == [(PLAINTEXT.encode(), PLAINTEXT.encode()), (PLAINTEXT.encode(), b"other")]


@pytest.mark.parametrize("data", [PLAINTEXT, bytearray(PLAINTEXT.encode()), None])
def test_a_value_holds_bytes_only_and_says_so_without_the_data(data: object) -> None:
    with pytest.raises(TypeError) as raised:
        SecretValue(data)  # type: ignore[arg-type]

    assert PLAINTEXT not in str(raised.value)


def test_reveal_and_len(value: SecretValue) -> None:
    text = "pässwörd 🔑"
    unicode_value = SecretValue.from_text(text)

    assert value.reveal() == PLAINTEXT.encode()
    assert unicode_value.reveal() == text.encode("utf-8")
    assert len(unicode_value) == len(text.encode("utf-8"))


MATERIAL = bytes(range(32))


@pytest.mark.parametrize("render", [repr, str, lambda k: f"{k}", lambda k: f"{k!r}"])
def test_a_key_encryption_key_never_shows_its_material(render: object) -> None:
    key = KeyEncryptionKey(id="kek-2024-01", material=MATERIAL)

    text = render(key)  # type: ignore[operator]

    assert "kek-2024-01" in text
    for shown in (repr(MATERIAL), MATERIAL.hex(), base64.b64encode(MATERIAL).decode()):
        assert shown not in text
    assert "material" not in text


def test_a_key_held_by_a_kms_has_no_material() -> None:
    assert repr(KeyEncryptionKey(id="aws-kms:alias/secrets", material=None)) == (
        "KeyEncryptionKey(id='aws-kms:alias/secrets')"
    )


def test_the_checksum_key_is_not_shown() -> None:
    key = b"checksum-key-canary-0123456789ab"

    assert key.decode() not in repr(ValueChecksum(key))
    assert key.decode() not in str(ValueChecksum(key))
