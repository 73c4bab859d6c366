"""The benchmark's documentation says what the harness does: every command line shown parses
with the harness's own options, the quick run's sizes are the harness's, and how to run it is
said in one place (docs/benchmarks.md), which performance.md links instead of copying."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from benchmarks.harness import QUICK_SIZES, parse_args

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROFILE_READ = Path(__file__).resolve().parents[2] / "benchmarks" / "profile_read.py"


def command_lines(document: str) -> list[list[str]]:
    """The shell lines of the document's ```sh blocks, comments dropped."""
    blocks = re.findall(r"```sh\n(.*?)```", document, flags=re.S)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line]


def benchmark_arguments(words: list[str]) -> list[str] | None:
    """The harness's arguments of `bench.sh …` or `python -m benchmarks …`, else None."""
    if words[0].endswith("bench.sh"):
        return words[1:]
    if words[1:3] == ["-m", "benchmarks"]:
        return words[3:]
    return None


@pytest.mark.parametrize("name", ["benchmarks.md", "performance.md"])
def test_every_benchmark_command_shown_parses_with_the_harness(name: str) -> None:
    lines = command_lines((DOCS / name).read_text())
    harness = [args for words in lines if (args := benchmark_arguments(words)) is not None]
    profiled = [words[3:] for words in lines if words[1:3] == ["-m", "benchmarks.profile_read"]]
    options = set(re.findall(r'add_argument\(\s*"(--[a-z-]+)"', PROFILE_READ.read_text()))

    for args in harness:
        if "--help" not in args:
            parse_args(args)  # exits 2 on an option the harness does not have
    for args in profiled:
        assert {word for word in args if word.startswith("--")} <= options, args


def test_the_quick_run_is_described_as_the_harness_runs_it() -> None:
    described = re.search(
        r"--quick +# a smoke run: sizes ([\d,]+) and ([\d,]+)", (DOCS / "benchmarks.md").read_text()
    )

    assert described is not None
    sizes = tuple(int(size.replace(",", "")) for size in described.groups())
    assert sizes == QUICK_SIZES == parse_args(["--quick"]).sizes


def test_performance_md_links_how_to_run_the_benchmark_instead_of_copying_it() -> None:
    performance = (DOCS / "performance.md").read_text()
    runs = [words for words in command_lines(performance) if benchmark_arguments(words)]

    assert runs == [], "how to run the benchmark belongs in docs/benchmarks.md"
    assert "[benchmarks.md](benchmarks.md)" in performance.split("\n## ", 1)[0]
