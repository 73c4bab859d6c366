"""Core and ports import no framework or SDK, checked on the source.

`core/` (its domain included) and `ports/` may import the standard library and our own
packages; which of ours each layer may import is `test_layering.py`'s (import-linter). This
test also catches what an import graph does not show: `__import__` and
`importlib.import_module`, and a third-party import under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STDLIB = frozenset(sys.stdlib_module_names)

# Our own packages: which of them a layer may import is test_layering.py's.
OURS = frozenset({"core", "ports", "adapters", "plugins", "entrypoints", "tests", "benchmarks"})
ALLOWED = {"core": STDLIB | OURS, "ports": STDLIB | OURS}
DYNAMIC_IMPORTERS = frozenset({"__import__", "import_module"})


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    module: str
    type_checking: bool

    def __str__(self) -> str:
        when = " (under TYPE_CHECKING)" if self.type_checking else ""
        return f"{self.path}:{self.line} imports {self.module}{when}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    node: ast.AST, type_checking: bool = False
) -> Iterator[tuple[ast.stmt | ast.expr, str, bool]]:
    """(node, module, under TYPE_CHECKING) for every import anywhere in `node`, nested ones too.

    Relative imports are named by their level ('.' ...) and stay inside the package.
    A call of `__import__` or `importlib.import_module` is reported as '<dynamic import>'.
    """
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                yield from _imports_of(statement, True)
                yield from _imports(statement, True)
            for statement in child.orelse:
                yield from _imports_of(statement, type_checking)
                yield from _imports(statement, type_checking)
            continue
        yield from _imports_of(child, type_checking)
        yield from _imports(child, type_checking)


def _imports_of(
    node: ast.AST, type_checking: bool
) -> Iterator[tuple[ast.stmt | ast.expr, str, bool]]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield node, alias.name, type_checking
    elif isinstance(node, ast.ImportFrom):
        yield node, "." * node.level + (node.module or ""), type_checking
    elif isinstance(node, ast.Call):
        called = node.func
        name = called.id if isinstance(called, ast.Name) else getattr(called, "attr", None)
        if name in DYNAMIC_IMPORTERS:
            yield node, "<dynamic import>", type_checking


def violations(source: str, path: str, package: str) -> list[Violation]:
    allowed = ALLOWED[package]
    found = []
    for node, module, type_checking in _imports(ast.parse(source, filename=path)):
        if module.startswith("."):
            continue
        if not any(module == name or module.startswith(name + ".") for name in allowed):
            found.append(Violation(path, node.lineno, module, type_checking))
    return found


def source_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_the_package_imports_only_what_its_layer_may(package: str) -> None:
    files = source_files(package)
    assert files, f"no Python files found under {ROOT / package}"

    found = [
        violation
        for path in files
        for violation in violations(
            path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), package
        )
    ]

    assert not found, "layering broken:\n" + "\n".join(map(str, found))


def test_the_walk_covers_the_modules_that_matter() -> None:
    names = {
        path.relative_to(ROOT).as_posix() for package in ALLOWED for path in source_files(package)
    }

    assert {
        "core/secrets.py",
        "core/domain/secrets.py",
        "ports/unit_of_work.py",
        "core/domain/values.py",
    } <= names


# -- the checker itself: each case must be caught, or the meta-test could pass vacuously -------


@pytest.mark.parametrize(
    ("package", "source", "module"),
    [
        ("core", "import flask\n", "flask"),
        ("core", "import os, sqlalchemy.orm\n", "sqlalchemy.orm"),
        ("core", "from botocore.exceptions import ClientError\n", "botocore.exceptions"),
        ("core", "def f():\n    import requests\n", "requests"),
        ("core", "try:\n    import hvac\nexcept ImportError:\n    pass\n", "hvac"),
        (
            "core",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import flask\n",
            "flask",
        ),
        ("core", "import importlib\nimportlib.import_module('flask')\n", "<dynamic import>"),
        ("core", "__import__('flask')\n", "<dynamic import>"),
        (
            "ports",
            "if TYPE_CHECKING:\n    pass\nelse:\n    import hvac\n",
            "hvac",
        ),
        (
            "core",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import boto3\n",
            "boto3",
        ),
        (
            "core",
            "import importlib\nimportlib.import_module('core.services')\n",
            "<dynamic import>",
        ),
        ("ports", "if TYPE_CHECKING:\n    import sqlalchemy\n", "sqlalchemy"),
        ("ports", "import pluggy\n", "pluggy"),
    ],
)
def test_the_checker_reports_the_file_line_and_import(
    package: str, source: str, module: str
) -> None:
    [violation] = violations(source, f"{package}/example.py", package)

    assert violation.module == module
    assert violation.path == f"{package}/example.py"
    assert str(violation).startswith(f"{package}/example.py:{violation.line} imports {module}")


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("core", "from __future__ import annotations\nimport re, hmac, uuid\n"),
        (
            "core",
            "from core.domain.errors import NotFound\nfrom core.domain.values import SecretValue\n",
        ),
        ("core", "from . import errors\nfrom .model import Secret\n"),
        ("ports", "import abc\nfrom collections.abc import Callable\n"),
        ("ports", "from core.domain.values import ScopeRef\n"),
        (
            "ports",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from core.domain.secrets import Secret\n",
        ),
        (
            "ports",
            "import typing\nif typing.TYPE_CHECKING:\n    from core.domain.paging import Page\n",
        ),
    ],
)
def test_the_checker_allows_what_the_layer_may_import(package: str, source: str) -> None:
    assert violations(source, f"{package}/example.py", package) == []
