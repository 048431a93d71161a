"""ruff and mypy (strict) are part of the suite: the code stays typed and clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def test_ruff_is_clean():
    result = subprocess.run(
        [_tool("ruff"), "check", "workflow_cli", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean():
    result = subprocess.run(
        [_tool("mypy"), "workflow_cli"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_checks_the_tests_too():
    """The tests are type-checked as well (strict, except that a test function's fixture
    arguments may stay unannotated, as pytest supplies them)."""
    loose = ["--allow-untyped-defs", "--allow-incomplete-defs", "--allow-untyped-calls"]
    result = subprocess.run(
        [_tool("mypy"), "tests", *loose], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
