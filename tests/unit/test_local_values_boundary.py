"""The local backend's ciphertext table (`secret_encrypted_values`) is known, among the database
adapters, only to the module that says so (`adapters/db/local_values.py`, which the secret
repository's one-statement reads use), to the table definitions, and to the key rewrap of the
local backend's rows (`adapters/db/rekey.py`); the local backend plugin itself stores there."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KNOWING = {"local_values.py", "tables.py", "rekey.py"}


def modules_naming_the_table(directory: Path) -> set[str]:
    return {
        path.name
        for path in directory.glob("*.py")
        if "encrypted_values" in path.read_text(encoding="utf-8")
    }


def test_only_the_local_values_module_joins_the_ciphertext_table() -> None:
    assert modules_naming_the_table(ROOT / "adapters" / "db") <= KNOWING


def test_the_check_sees_a_module_that_names_the_table(tmp_path: Path) -> None:
    (tmp_path / "repositories.py").write_text("from t import encrypted_values\n")
    (tmp_path / "other.py").write_text("x = 1\n")
    assert modules_naming_the_table(tmp_path) == {"repositories.py"}
