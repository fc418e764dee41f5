"""``xray-seg bench --suite models --backend jax`` runs under JAX on a machine without TensorFlow.

The GPU machine has JAX and no TensorFlow. Here TensorFlow is installed, so the child
process blocks it (an import hook makes every ``import tensorflow`` fail, as on a machine
without it) and runs the benchmark at a tiny size on the CPU.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

RUN_WITHOUT_TENSORFLOW = """
import importlib.abc, sys
class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError(f"No module named {name!r} (blocked: this test plays a machine without TensorFlow)")
sys.meta_path.insert(0, NoTensorFlow())
from xray_seg.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_bench_gpu_runs_under_jax_without_tensorflow(tmp_path):
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "--suite",
        "models",
        "--backend",
        "jax",
        "--size",
        "32",
        "--width",
        "0.0625",
        "--models",
        "cwf_deeplabv3plus",
        "bisenetv2",
        "--batch-sizes",
        "1,2",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--train-batch",
        "2",
        "--train-steps",
        "2",
        "--out",
        str(out),
    ]
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_TENSORFLOW, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "device: CPU" in proc.stdout
    results = json.loads(out.read_text())
    assert results["tensorflow_imported"] is False
    rows = {(r["model"], r["dtype"], r["batch"]) for r in results["inference"]}
    assert rows == {
        (m, d, b) for m in ("cwf_deeplabv3plus", "bisenetv2") for d in ("float32", "bfloat16") for b in (1, 2)
    }
    for row in results["inference"]:
        assert row["fps"] > 0 and row["q25_ms"] <= row["median_ms"] <= row["q75_ms"]
        assert row["fps"] == pytest.approx(row["batch"] / (row["median_ms"] / 1e3))
    training = results["training"]
    assert training["images_per_sec"] > 0 and training["final_loss"] == training["final_loss"]  # not NaN


def test_the_jax_suite_modules_import_no_tensorflow_at_module_level():
    """The modules the JAX-only machine loads import TensorFlow only inside functions, if at all."""
    for path in ("xray_seg/evaluation/bench_backends.py", "xray_seg/evaluation/timing.py"):
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in top if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] in ("tensorflow", "keras")], path
