"""`xray-seg bench`: model-only and end-to-end FPS at batch 1."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from xray_seg.evaluation.timing import time_calls


def test_time_calls_counts_warmup_and_runs():
    calls = []
    timing = time_calls(calls.append, runs=5, warmup=2)
    assert calls == [0, 1, 0, 1, 2, 3, 4]
    assert timing.p10_s <= timing.median_s <= timing.p90_s and timing.fps > 0


def test_bench_command_on_a_keras_file(tmp_path):
    from xray_seg.models.registry import build_model

    model = build_model("cwf_deeplabv3plus", 3, (64, 64, 3), width=0.125)
    model.save(tmp_path / "m.keras")
    (tmp_path / "class_names.txt").write_text("_background_\na\nb\n")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(tmp_path / f"scan{i}.png")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xray_seg",
            "bench",
            str(tmp_path / "m.keras"),
            str(tmp_path / "scan*.png"),
            "--runs",
            "3",
            "--warmup",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "model only" in proc.stdout and "end to end" in proc.stdout
    figures = json.loads(out.read_text())
    assert figures["input_size"] == [64, 64] and figures["runs"] == 3
    assert figures["model_only"]["fps"] > 0 and figures["end_to_end"]["fps"] > 0
