"""Issue #15's limits on the production code: no module over 500 lines, no class over 20
methods (its constructor not counted), so that a module holds one job and a class one role.
A module or class kept bigger is listed in KEPT_BIGGER with the reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "ports", "adapters", "plugins", "entrypoints")
MAX_LINES = 500
MAX_METHODS = 20
KEPT_BIGGER: dict[str, str] = {}  # "path" or "path:Class" -> why


def modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def too_long(path: Path) -> list[str]:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    return [f"{path.relative_to(ROOT)}: {lines} lines"] if lines > MAX_LINES else []


def too_many_methods(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            methods = [
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                and item.name != "__init__"
            ]
            if len(methods) > MAX_METHODS:
                found.append(f"{where}:{node.name}: {len(methods)} methods")
    return found


def test_no_module_is_over_the_line_limit() -> None:
    found = [problem for path in modules() for problem in too_long(path)]
    assert [p for p in found if p.split(":")[0] not in KEPT_BIGGER] == []


def test_no_class_is_over_the_method_limit() -> None:
    found = [
        problem
        for path in modules()
        for problem in too_many_methods(
            path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))
        )
    ]
    assert [p for p in found if p.rsplit(":", 1)[0] not in KEPT_BIGGER] == []


def test_the_walk_covers_the_code() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in modules()}
    assert {"core/secrets.py", "adapters/db/secret_repository.py", "entrypoints/cli.py"} <= names


@pytest.mark.parametrize("count, caught", [(20, False), (21, True)])
def test_the_method_count_is_caught(count: int, caught: bool) -> None:
    body = "".join(f"    def m{i}(self): ...\n" for i in range(count))
    source = f"class Big:\n    def __init__(self): ...\n{body}"
    assert bool(too_many_methods(source, "x.py")) is caught
