"""The tree stays lint-clean and formatted (settings in pyproject.toml)."""

import subprocess
import sys

from tests.conftest import REPO

PATHS = ["service", "tests", "benchmarks", "gunicorn.conf.py"]


def test_ruff_check():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *PATHS], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_ruff_format():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *PATHS], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
