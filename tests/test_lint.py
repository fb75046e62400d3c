"""The code is formatted and linted as pyproject.toml configures (`ruff format`, `ruff check`)."""

import subprocess

from conftest import REPO, VENV_BIN


def test_ruff_format_and_check_pass():
    ruff = VENV_BIN / "ruff"
    assert ruff.is_file(), f"{ruff} missing: ruff is pinned in requirements/lock.txt (make setup installs it)"
    fmt = subprocess.run([str(ruff), "format", "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert fmt.returncode == 0, f"files need `ruff format`:\n{fmt.stdout}{fmt.stderr}"
    check = subprocess.run([str(ruff), "check", "."], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, f"`ruff check` found problems:\n{check.stdout}{check.stderr}"
