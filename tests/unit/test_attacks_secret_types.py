"""Attacks on the secret types (#15, found by the secret type contract): values built to make a
type's check slow (a connection string of 1 MiB took 41 s, a bundle of PEM headers without
their ends 31 s at 256 KiB), JSON nested deeper than the interpreter's stack (the check raised
instead of refusing), and invalid values rendered as environment variables all the same (a
certificate with another key, a connection string with no port, a key that does not parse)."""

from __future__ import annotations

import json
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from core.domain.values import SecretValue
from core.types import TypeRegistry
from plugins.manager import build_plugin_manager, secret_type_plugins
from plugins.secret_type_support import SchemaType
from plugins.types_connection import split_words
from plugins.types_keys import pem_blocks
from ports.types import FieldProblem, SecretType, TypeCheck
from tests.unit.test_plugin_contracts import certificate_pair, gcp_key_file, pem

TYPES = secret_type_plugins(build_plugin_manager())
MIB = 1024 * 1024

# -- values built to be slow: each type checks 1 MiB in linear time -----------------------------

# Per type and shape, an expression of a 1 MiB value (`M` is 1 MiB). Each took from 30 s to
# minutes before; a linear check takes well under a second.
SLOW_VALUES = {
    ("connection_string", "one-word"): "b'x' * M",
    ("connection_string", "one-pair"): "b'host=' + b'a' * M",
    ("connection_string", "many-words"): "b'a ' * (M // 2)",
    ("connection_string", "many-pairs"): "b'a=b;' * (M // 4)",
    ("connection_string", "quoted"): "b'host=\"' + b'a\\\\\"' * (M // 3) + b'\"'",
    ("connection_string", "escapes"): "b'\\\\a' * (M // 2)",
    ("connection_string", "unterminated"): "b'host=' + b'a' * M + b\"'\"",
    ("connection_string", "query"): "b'postgresql://db/app?' + b'a=b&' * (M // 4)",
    ("connection_string", "json"): "b'{\"a\":' * (M // 5)",
    ("certificate", "headers"): "b'-----BEGIN CERTIFICATE-----\\n' * (M // 28)",
    ("certificate", "labels"): "b''.join(b'-----BEGIN L%d-----\\n' % i for i in range(M // 24))",
    ("ssh_key", "headers"): "b'-----BEGIN OPENSSH PRIVATE KEY-----\\n' * (M // 36)",
    ("api_key", "json"): "b'{\"a\":' * (M // 5)",
}
CHECK_IN_CHILD = """
import sys, time
from core.domain.values import SecretValue
from plugins.manager import build_plugin_manager, secret_type_plugins
M = 1024 * 1024
value = SecretValue({value})
secret_type = secret_type_plugins(build_plugin_manager())[{name!r}]
started = time.monotonic()
check = secret_type.validate(value)
print(len(value.reveal()), check.valid, time.monotonic() - started)
"""


@pytest.mark.parametrize(("name", "shape"), SLOW_VALUES, ids=[f"{n}-{s}" for n, s in SLOW_VALUES])
def test_a_1_mib_value_built_to_be_slow_is_checked_in_linear_time(name: str, shape: str) -> None:
    # In a child with a timeout: the quadratic check of before would hold the suite for minutes.
    child = subprocess.run(
        [sys.executable, "-c", CHECK_IN_CHILD.format(value=SLOW_VALUES[name, shape], name=name)],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )

    size, valid, seconds = child.stdout.split()
    assert int(size) >= MIB * 9 // 10 and valid == "False"
    assert float(seconds) < 2, f"{name} took {float(seconds):.1f} s to check 1 MiB ({shape})"


def test_a_connection_string_of_too_many_parts_is_refused_naming_the_limit() -> None:
    pairs = SecretValue.from_text("host=db " + "a=b " * 300)
    query = SecretValue.from_text("postgresql://db/app?" + "a=b&" * 300)

    assert TYPES["connection_string"].validate(pairs).problems == (
        FieldProblem("value", "has more than 256 parts"),
    )
    assert TYPES["connection_string"].validate(query).problems == (
        FieldProblem("options", "are more than 256"),
    )


# -- the linear parsers read what the slow ones read --------------------------------------------


def test_libpq_words_split_as_a_posix_shell_splits_them() -> None:
    pieces = ["a", "b", "=", " ", "\t", "\n", "\r", "'", '"', "\\", "é", "#", "$", "\x0b"]
    rnd = random.Random(15)
    for _ in range(20_000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
        try:
            expected: Any = shlex.split(text)
        except ValueError:
            expected = ValueError
        try:
            found: Any = split_words(text, 10_000)
        except ValueError:
            found = ValueError
        assert found == expected, repr(text)
    assert split_words("a b c d", 2) == ["a", "b"]


def test_pem_blocks_are_those_the_lazy_regex_found() -> None:
    lazy = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)
    pieces = [
        *("-----BEGIN A-----\n", "-----BEGIN B-----\r\n", "-----BEGIN A B-----\n"),
        *("-----END A-----", "-----END B-----", "-----END A B-----", "-----END "),
        *("-----BEGIN A", "-----", "BEGIN ", "END ", "\n", "\r", "x", "A", " ", "-"),
    ]
    rnd = random.Random(15)
    for _ in range(20_000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 10)))
        expected = [(match.group(1), match.group(0)) for match in lazy.finditer(text)]
        assert pem_blocks(text) == expected, repr(text)


# -- JSON nested deeper than the stack: refused, not raised ------------------------------------

DEEP_JSON = SecretValue(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)


@pytest.mark.parametrize(
    "name", sorted(name for name, kind in TYPES.items() if isinstance(kind, SchemaType))
)
def test_json_nested_deeper_than_the_stack_is_refused_not_raised(name: str) -> None:
    check = TYPES[name].validate(DEEP_JSON)

    assert check.problems == (FieldProblem("value", "is nested too deeply"),)
    with pytest.raises(ValueError, match="not a valid"):
        TYPES[name].environment("APP", DEEP_JSON)


# -- an invalid value has no environment variables ----------------------------------------------


def json_value(document: dict[str, str]) -> SecretValue:
    return SecretValue.from_text(json.dumps(document))


def test_a_gcp_key_file_whose_key_does_not_parse_has_no_variables() -> None:
    broken = json_value({**gcp_key_file(), "private_key": "-----BEGIN PRIVATE KEY-----\nno\n"})

    assert TYPES["gcp_service_account"].environment("GCP", json_value(gcp_key_file()))
    assert not TYPES["gcp_service_account"].validate(broken).valid
    with pytest.raises(ValueError, match="not a valid gcp_service_account") as raised:
        TYPES["gcp_service_account"].environment("GCP", broken)
    assert "BEGIN" not in str(raised.value)


def test_a_certificate_with_another_key_has_no_variables() -> None:
    certificate, key = certificate_pair()
    other = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    mismatched = json_value({"certificate": certificate, "private_key": other})

    assert TYPES["certificate"].environment(
        "TLS", json_value({"certificate": certificate, "private_key": key})
    )
    with pytest.raises(ValueError) as raised:
        TYPES["certificate"].environment("TLS", mismatched)
    assert "PRIVATE KEY" not in str(raised.value)


class LenientType(SecretType):
    """A plugin that renders whatever it is given, though it refuses values starting `bad`."""

    name = "lenient"

    def validate(self, value: SecretValue) -> TypeCheck:
        if value.reveal().startswith(b"bad"):
            return TypeCheck(problems=(FieldProblem("value", "starts badly"),))
        return TypeCheck()

    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        return {variable: value.reveal().decode()}


def test_the_registry_renders_only_a_value_its_type_passes_whatever_the_plugin_does() -> None:
    registry = TypeRegistry({"lenient": LenientType()})

    assert registry.environment("lenient", "APP", SecretValue.from_text("good")) == {"APP": "good"}
    assert registry.environment("lenient", "APP", SecretValue.from_text("bad-0001")) is None
