"""The code stays ruff clean: checked in the same run as everything else, so CI catches it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_check_and_format() -> None:
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_no_error_in_wslab() -> None:
    """The types are checked, not only written: ``[tool.mypy]`` in pyproject.toml (strict, ``wslab/``).

    It is also what proves that every fan-out backend still fits the ``FanOut`` interface the manager
    calls (``create_fanout`` returns each one as a ``FanOut``).
    """
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
