"""References: the one parse/format of `secret://…`, every refusal, and `${…}` expansion."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from core.domain.errors import InvalidInput, NotFound
from core.domain.references import format_reference
from core.domain.secrets import RevealedValue, Secret, SecretVersion, Stage
from core.domain.values import ScopeRef, ScopeType, SecretValue
from core.references import (
    MAX_DEPTH,
    Reference,
    ReferenceCycle,
    ReferenceTooDeep,
    ReferenceUnresolvable,
    expand,
    parse_reference,
    reference_of,
)

PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")
NOW = datetime(2026, 12, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("secret://project/p-42/API_KEY", Reference(PROJECT, "API_KEY")),
        (
            "secret://project/p-42/API_KEY?env=production",
            Reference(PROJECT, "API_KEY", "production"),
        ),
        ("secret://global/DB_URL", Reference(ScopeRef.global_scope(), "DB_URL")),
        (
            "secret://team/t-1/db.password?env=dev&version=3",
            Reference(ScopeRef(ScopeType.TEAM, "t-1"), "db.password", "dev", version=3),
        ),
        (
            "secret://user/alice@example.com/TOKEN?stage=previous",
            Reference(ScopeRef(ScopeType.USER, "alice@example.com"), "TOKEN", stage=Stage.PREVIOUS),
        ),
    ],
)
def test_parse_and_format_round_trip(text: str, expected: Reference) -> None:
    parsed = parse_reference(text)
    assert parsed == expected
    assert str(parsed) == text
    assert parse_reference(str(parsed)) == parsed


def test_the_global_scope_is_accepted_with_its_id_and_written_without() -> None:
    parsed = parse_reference("secret://global/global/DB_URL?env=prod")
    assert parsed == Reference(ScopeRef.global_scope(), "DB_URL", "prod")
    assert str(parsed) == "secret://global/DB_URL?env=prod"


def test_query_keys_may_come_in_any_order() -> None:
    assert parse_reference("secret://project/p-42/K?version=2&env=dev") == Reference(
        PROJECT, "K", "dev", version=2
    )


def test_reference_of_a_secret_names_its_environment_never_a_version() -> None:
    assert (
        reference_of(secret("API_KEY", "production"))
        == "secret://project/p-42/API_KEY?env=production"
    )
    assert format_reference(ScopeRef.global_scope(), "X") == "secret://global/X"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "https://project/p-42/K",  # bad scheme
        "SECRET://project/p-42/K",
        "secret:/project/p-42/K",
        "secret://galaxy/g-1/K",  # unknown scope type
        "secret://project/p-42",  # no name
        "secret://project/p-42/",
        "secret://project//K",
        "secret://project/p-42/a/K",  # too many segments
        "secret://global/other/K",  # the global scope has one id
        "secret://project/p-42/K?foo=1",  # unknown query key
        "secret://project/p-42/K?env=dev&env=prod",  # a key twice
        "secret://project/p-42/K?env=",
        "secret://project/p-42/K?env",
        "secret://project/p-42/K?version=1&stage=current",  # version and stage together
        "secret://project/p-42/K?version=0",
        "secret://project/p-42/K?version=01",
        "secret://project/p-42/K?version=-1",
        "secret://project/p-42/K?version=99999999999",
        "secret://project/p-42/K?stage=latest",
        "secret://project/p-42/K?env=Prod",  # not an environment
        "secret://project/p-42/%4B",  # percent-encoding of a plain character
        "secret://project/p%2D42/K",
        "secret://project/p-42/K%2Fx",  # an encoded slash
        "secret://project/p-42/K?env=de%76",
        "secret://project/p-42/K%00",  # an encoded NUL
        "secret://project/p-42/K\x00",  # a NUL
        "secret://project/p-42/K\n",
        "secret://project/p-42/K#frag",
        "secret://project/p-42/K?",
        "secret://project/p-42/K?env=dev&",
        "secret://user:pw@project/p-42/K",
        "secret://project:80/p-42/K",
        "secret://project/p-42/KÉ",  # not ASCII
        "secret://project/p-42/K L",
        "secret://project/" + "p" * 129 + "/K",  # scope id too long
        "secret://project/p-42/" + "K" * 256,  # name too long
        "secret://project/p-42/K?env=" + "e" * 2000,  # overlong
    ],
)
def test_refusals(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_reference(text)
    assert raised.value.details == {"field": "reference"}
    assert not isinstance(raised.value, ReferenceUnresolvable)


def test_a_refusal_does_not_echo_the_text() -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_reference("secret://project/p-42/K?foo=sk-canary-1234")
    assert "sk-canary-1234" not in raised.value.message


# -- expansion -------------------------------------------------------------------------------


@dataclass
class Store:
    """Secrets by reference text, as a caller's value read would find them."""

    values: dict[str, tuple[Secret, SecretValue]]
    hidden: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.reads: list[str] = []

    def read(self, reference: Reference) -> RevealedValue:
        text = str(reference)
        self.reads.append(text)
        if text not in self.values or text in self.hidden:
            raise NotFound(f"no secret {text}")
        secret, value = self.values[text]
        return RevealedValue(secret, version_of(secret), value)


def secret(name: str, environment: str | None = None) -> Secret:
    return Secret(
        id=uuid.uuid4(),
        scope=PROJECT,
        name=name,
        environment=environment,
        backend="local",
        created_at=NOW,
        created_by="user:test",
        current_version=1,
    )


def version_of(secret: Secret) -> SecretVersion:
    return SecretVersion(secret.id, secret.current_version, "local", "loc", "sum", NOW, "user:t")


def store(**values: str) -> Store:
    return Store(
        {
            f"secret://project/p-42/{name}": (secret(name), SecretValue.from_text(text))
            for name, text in values.items()
        }
    )


def top(text: str) -> RevealedValue:
    origin = secret("TOP")
    return RevealedValue(origin, version_of(origin), SecretValue.from_text(text))


def test_expansion_replaces_nested_references() -> None:
    found = store(A="a-${secret://project/p-42/B}", B="b")
    value, used = expand(top("x ${secret://project/p-42/A} y"), found.read)
    assert value.reveal() == b"x a-b y"
    assert [e.reference for e in used] == ["secret://project/p-42/A", "secret://project/p-42/B"]


def test_dollar_dollar_escapes_and_other_placeholders_stay() -> None:
    found = store(A="a")
    value, _ = expand(
        top("$${secret://project/p-42/A} ${HOME} ${secret://project/p-42/A}"), found.read
    )
    assert value.reveal() == b"${secret://project/p-42/A} ${HOME} a"
    assert found.reads == ["secret://project/p-42/A"]


def test_a_value_without_references_is_returned_as_is() -> None:
    revealed = top("plain")
    assert expand(revealed, store().read) == (revealed.value, [])


def test_a_cycle_is_refused() -> None:
    found = store(A="${secret://project/p-42/B}", B="${secret://project/p-42/A}")
    with pytest.raises(ReferenceCycle) as raised:
        expand(top("${secret://project/p-42/A}"), found.read)
    assert raised.value.code == "reference_cycle"


def test_a_self_reference_is_a_cycle() -> None:
    found = store(A="${secret://project/p-42/A}")
    with pytest.raises(ReferenceCycle):
        expand(top("${secret://project/p-42/A}"), found.read)


def test_the_same_reference_twice_side_by_side_is_no_cycle() -> None:
    found = store(A="a")
    value, _ = expand(top("${secret://project/p-42/A}${secret://project/p-42/A}"), found.read)
    assert value.reveal() == b"aa"


def chain(length: int) -> Store:
    return store(
        **{f"S{i}": f"${{secret://project/p-42/S{i + 1}}}" for i in range(length)},
        **{f"S{length}": "end"},
    )


def test_depth_ten_is_allowed_eleven_refused() -> None:
    value, used = expand(top("${secret://project/p-42/S1}"), chain(MAX_DEPTH).read)
    assert value.reveal() == b"end" and len(used) == MAX_DEPTH
    with pytest.raises(ReferenceTooDeep) as raised:
        expand(top("${secret://project/p-42/S1}"), chain(MAX_DEPTH + 1).read)
    assert raised.value.details["max_depth"] == MAX_DEPTH


def test_an_unreadable_reference_is_named_without_a_value() -> None:
    found = store(A="sk-canary-value-9999 ${secret://project/p-42/HIDDEN}")
    found.hidden = frozenset({"secret://project/p-42/HIDDEN"})
    with pytest.raises(ReferenceUnresolvable) as raised:
        expand(top("${secret://project/p-42/A}"), found.read)
    assert raised.value.details == {
        "reference": "secret://project/p-42/HIDDEN",
        "reason": "not_found",
    }
    assert "sk-canary" not in raised.value.message
    assert "sk-canary" not in str(raised.value.details)


def test_a_malformed_reference_in_a_value_is_unresolvable() -> None:
    with pytest.raises(ReferenceUnresolvable):
        expand(top("${secret://project/p-42/A?foo=1}"), store().read)


def test_a_binary_value_is_not_expanded() -> None:
    origin = secret("BIN")
    raw = SecretValue(b"\xff${secret://project/p-42/A}")
    revealed = RevealedValue(origin, version_of(origin), raw)
    assert expand(revealed, store(A="a").read) == (raw, [])
