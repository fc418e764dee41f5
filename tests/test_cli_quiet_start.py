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


def test_a_tiny_train_prints_no_cuinit_line_with_the_scripts_log_level(tiny_voc, tmp_path):
    """cuInit is logged at the first device use (the train step), not at the import; with
    TF_CPP_MIN_LOG_LEVEL=2, as scripts/_venv.sh sets it, it must still not reach the user."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    tiny = ["--preset", "demo_cpu", "--set", "epochs=1", "--set", "model.width=0.0625", "--set", "data.image_size=32"]
    tiny += ["--set", "data.batch_size=4", "--set", "steps_per_epoch=1", "--set", "loss.type=ce"]
    cmd = [sys.executable, "-m", "xray_seg", "train", str(tiny_voc), "--run-dir", str(tmp_path / "run"), *tiny]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "best_model.keras").is_file()
    output = (proc.stdout + proc.stderr).splitlines()
    assert [line for line in output if any(n in line for n in NOISE)] == []
