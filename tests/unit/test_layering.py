"""Layering and lint run inside the test suite: the core imports no I/O, ruff and mypy are clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.once
def test_import_linter_contracts_hold() -> None:
    r = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command;"
                        " sys.exit(lint_imports_command())"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "broken" not in r.stdout.split("Contracts:")[-1] or " 0 broken" in r.stdout


@pytest.mark.once
def test_ruff_is_clean() -> None:
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.once
def test_mypy_is_clean(tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy")], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
