"""Quiet start (issue 29): none of TensorFlow's start-up lines reach the user unless ``--debug``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOISE = ("I0000", "E0000", "W0000", "absl::InitializeLog", "cuInit", "oneDNN", "cpu_feature_guard", "cuda drivers")


def _xray_seg(*argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "xray_seg", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_a_command_that_loads_tensorflow_prints_only_its_error(tmp_path):
    proc = _xray_seg("train", str(tmp_path / "no_voc"), "--preset", "demo_cpu", "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2
    lines = (proc.stdout + proc.stderr).splitlines()
    assert [line for line in lines if any(n in line for n in NOISE)] == []
    assert len(lines) == 1 and lines[0].startswith("error: "), lines


def test_quiet_import_keeps_python_errors_and_restores_stderr(capfd):
    from xray_seg.core.quiet import stderr_silenced

    with stderr_silenced():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    err = capfd.readouterr().err
    assert "hidden" not in err and "shown" in err
