"""Shared by the experiment-script tests: run the test module's ``SCRIPT`` in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(request):
    """``run(*args)``: ``scripts/<the module's SCRIPT>`` with ``args``, one thread, this checkout first on the path."""
    script = REPO / "scripts" / request.module.SCRIPT

    def call(*args):
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        return subprocess.run(
            [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=900
        )

    return call
