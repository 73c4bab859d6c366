"""The layering of our own packages, checked by import-linter on the import graph (imports
under `TYPE_CHECKING` and indirect ones included), with no exception list:

1. `core.domain` imports nothing of ours but itself: no other module of `core`, no `ports`,
   `adapters`, `plugins` or `entrypoints`;
2. `ports` imports only `core.domain` of ours (and itself);
3. `core` imports only `core` and `ports` of ours: no `adapters`, `plugins` or `entrypoints`.

The contracts are built here from the tree itself: "every module of `core` but `domain`" is
read from the directory, so a new module is covered the day it is added. (Third-party and
dynamic imports are `test_core_purity.py`'s.) The meta-tests at the end build small trees that
break each rule and check that the same contracts catch them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
OUTER = ("adapters", "plugins", "entrypoints", "tests", "benchmarks")  # ours, beyond core/ports


def _children(root: Path, package: str) -> list[str]:
    """The direct submodules and subpackages of `package` under `root`."""
    directory = root / package.replace(".", "/")
    names = {path.stem for path in directory.glob("*.py") if path.stem != "__init__"}
    names |= {path.name for path in directory.iterdir() if (path / "__init__.py").is_file()}
    return sorted(f"{package}.{name}" for name in names)


def contracts(root: Path) -> str:
    """import-linter's configuration of the three rules for the tree at `root`."""
    outer = [name for name in OUTER if (root / name / "__init__.py").is_file()]
    core_but_domain = [name for name in _children(root, "core") if name != "core.domain"]

    def forbidden(key: str, name: str, source: str, modules: list[str]) -> str:
        listed = "".join(f"\n    {module}" for module in modules)
        return (
            f"[importlinter:contract:{key}]\nname = {name}\ntype = forbidden\n"
            f"source_modules =\n    {source}\nforbidden_modules ={listed}\n"
        )

    return "\n".join(
        [
            "[importlinter]\nroot_packages =\n    core\n    ports"
            + "".join(f"\n    {name}" for name in outer)
            + "\n",
            forbidden(
                "domain",
                "core.domain imports nothing of ours but itself",
                "core.domain",
                [*core_but_domain, "ports", *outer],
            ),
            forbidden(
                "ports",
                "ports import only core.domain of ours",
                "ports",
                [*core_but_domain, *outer],
            ),
            forbidden("core", "core imports only core and ports of ours", "core", outer),
        ]
    )


def lint(root: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "importlinter.ini"
    config.write_text(contracts(root), encoding="utf-8")
    return subprocess.run(
        [str(LINT_IMPORTS), str(config), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_layers_import_only_what_the_rules_allow(tmp_path: Path) -> None:
    result = lint(ROOT, tmp_path)

    assert "Contracts: 3 kept, 0 broken." in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0


def test_the_contracts_cover_every_module_of_core_but_the_domain() -> None:
    config = contracts(ROOT)

    for module in ("core.secrets", "core.audit", "core.migration", "core.access"):
        assert f"\n    {module}\n" in config
    assert "\n    core.domain\n    " not in config.split("[importlinter:contract:domain]")[1]


# -- the contracts themselves: each rule broken in a small tree must be caught -----------------

TREE = {
    "core/__init__.py": "",
    "core/services.py": "from core.domain import model\nfrom ports import storage\n",
    "core/domain/__init__.py": "",
    "core/domain/model.py": "import dataclasses\n",
    "core/domain/values.py": "from core.domain import model\n",
    "ports/__init__.py": "",
    "ports/storage.py": "from core.domain.values import model\n",
    "adapters/__init__.py": "",
    "adapters/db.py": "from core import services\nfrom ports import storage\n",
    "plugins/__init__.py": "",
    "plugins/backend.py": "from ports import storage\n",
    "entrypoints/__init__.py": "",
    "entrypoints/app.py": "from adapters import db\nfrom core import services\n",
}


def build(root: Path, **changes: str) -> Path:
    for name, source in {
        **TREE,
        **{k.replace("__", "/") + ".py": v for k, v in changes.items()},
    }.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root


def test_a_tree_that_keeps_the_rules_passes(tmp_path: Path) -> None:
    result = lint(build(tmp_path / "tree"), tmp_path)

    assert "Contracts: 3 kept, 0 broken." in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("core__domain__model", "from core import services\n", "core.domain imports nothing"),
        ("core__domain__model", "from ports import storage\n", "core.domain imports nothing"),
        ("core__domain__model", "import entrypoints.app\n", "core.domain imports nothing"),
        (
            "core__domain__model",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from core import services\n",
            "core.domain imports nothing",
        ),
        ("ports__storage", "from core.services import x\n", "ports import only core.domain"),
        (
            "ports__storage",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import core.services\n",
            "ports import only core.domain",
        ),
        ("ports__storage", "from adapters import db\n", "ports import only core.domain"),
        ("core__services", "from adapters.db import x\n", "core imports only core and ports"),
        ("core__services", "def f():\n    import plugins.backend\n", "core imports only"),
        ("core__services", "import entrypoints.app\n", "core imports only core and ports"),
    ],
)
def test_each_broken_rule_is_caught(tmp_path: Path, module: str, source: str, broken: str) -> None:
    result = lint(build(tmp_path / "tree", **{module: source}), tmp_path)

    assert result.returncode != 0
    summary, _, details = result.stdout.partition("Broken contracts")
    assert any(
        line.startswith(broken) and line.endswith(" BROKEN") for line in summary.splitlines()
    ), result.stdout
    assert details


def test_lint_imports_is_installed() -> None:
    assert LINT_IMPORTS.is_file() or shutil.which("lint-imports"), "pip install import-linter"
