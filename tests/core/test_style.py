"""House style (issue 15, part 6): ``ruff check`` and ``ruff format`` pass over the package,
tests and scripts.

The rules and the line length are in ``pyproject.toml`` (``[tool.ruff]``). Run
``ruff format xray_seg tests scripts && ruff check --fix xray_seg tests scripts`` before
committing.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("xray_seg", "tests", "scripts")


def _ruff() -> list[str] | None:
    """The ruff beside this interpreter (the venv's), else one on PATH; None if neither."""
    beside = Path(sys.executable).with_name("ruff")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("ruff")
    return [found] if found else None


def test_ruff_check_passes():
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -r requirements.txt installs ruff==0.17.5)")
    proc = subprocess.run(
        [*ruff, "check", "--no-cache", "--output-format", "concise", *TARGETS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"ruff check found problems (fix them or run `ruff check --fix`):\n{proc.stdout}{proc.stderr}"
    )


def test_ruff_format_leaves_the_code_as_it_is():
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -r requirements.txt installs ruff==0.17.5)")
    proc = subprocess.run(
        [*ruff, "format", "--check", "--no-cache", *TARGETS], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"run `ruff format xray_seg tests scripts`:\n{proc.stdout}{proc.stderr}"


def test_ruff_is_configured_for_the_repository():
    """The line length and rule set live in pyproject.toml, so every editor and CI run agrees."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]
    assert config["line-length"] == 120
    assert {"E", "F", "W", "I", "B", "UP", "SIM"} <= set(config["lint"]["select"])
    assert "format" in config
    pinned = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert "ruff==0.17.5" in pinned
