"""``xray-seg bench --suite station`` at a tiny size: interleaved rounds over engine worker processes,
peak RSS per worker, share of the measured matmul peak, accuracy against the Keras model.

No timed assertions: the test checks that every figure is measured and consistent, not how
fast anything is."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

HAVE_ORT = all(importlib.util.find_spec(p) for p in ("onnxruntime", "tf2onnx", "onnx"))


def _run(tmp_path: Path, voc: Path) -> Path:
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.core.config import save_config
    from xray_seg.models.registry import build_model
    from xray_seg.training.config import TrainConfig

    names = read_class_names(voc)
    run = tmp_path / "run"
    run.mkdir()
    build_model("cwf_deeplabv3plus", len(names), (64, 64, 3), width=0.0625).save(run / "best_model.keras")
    (run / "class_names.txt").write_text("\n".join(names) + "\n")
    cfg = TrainConfig()
    cfg.model.width, cfg.data.image_size = 0.0625, (64, 64)
    save_config(cfg, run / "config.yaml")
    return run


def test_bench_station_measures_every_engine_in_one_run(tmp_path, tiny_voc):
    from xray_seg.inference.geometry import ScanGeometry

    engines = ["keras", "tflite_f32", "tflite_int8"] + (["onnx", "onnx_int8"] if HAVE_ORT else [])
    out = tmp_path / "bench.json"
    args = ["--suite", "station", "--width", "0.0625", "--tile", "64", "--sizes", "64,96x160", "--rounds", "2"]
    scan = [e for e in engines if e != "tflite_f32"]  # the belt-scan size for all but one
    args += ["--engines", ",".join(engines), "--scan-engines", ",".join(scan)]
    args += ["--run", str(_run(tmp_path, tiny_voc)), "--voc", str(tiny_voc)]
    args += ["--peak-sizes", "32,64", "--calibration-tiles", "4", "--out", str(out), "--keep", str(tmp_path / "w")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "xray_seg", "bench", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(out.read_text())
    assert f"CPU: {results['cpu']['model']}" in proc.stdout and "vector extensions:" in proc.stdout
    assert "| engine | 64x64 ms median (min-max) | 96x160 ms median (min-max) | peak RSS MB |" in proc.stdout
    assert set(results["engines"]) == set(engines) and not results["not_run"]
    assert results["flops"]["96x160"]["tiles"] == ScanGeometry(tile=(64, 64)).num_tiles(96, 160) == 8
    peak = results["matmul_peak"]
    assert peak["gflops"] == max(r["gflops"] for r in peak["runs"]) and len(peak["runs"]) == 8  # 2 x 2 sizes x 2 libs
    for label in engines:
        row = results["engines"][label]
        assert f"| {label} | " in proc.stdout
        assert row["peak_rss_mb"] > 0
        assert set(row["sizes"]) == ({"64x64", "96x160"} if label in scan else {"64x64"})
        for name in row["sizes"]:
            s = row["sizes"][name]
            assert len(s["runs_ms"]) == 2 and s["min_ms"] <= s["median_ms"] <= s["max_ms"]
            assert s["share_of_matmul_peak"] == pytest.approx(
                results["flops"][name]["gflops"] / (s["median_ms"] / 1e3) / peak["gflops"]
            )
        acc = results["accuracy"][label]
        assert 0 <= acc["miou"] <= 1 and acc["keras_miou"] == results["accuracy"]["keras"]["miou"]
        assert acc["miou_delta_points"] == pytest.approx(100 * (acc["miou"] - acc["keras_miou"]))
    f32_row = next(line for line in proc.stdout.splitlines() if line.startswith("| tflite_f32 | "))
    assert f32_row.split(" | ")[2] == "not run"  # its 96x160 column
    assert results["accuracy"]["keras"]["miou_delta_points"] == 0
    assert results["accuracy"]["tflite_f32"]["miou"] == pytest.approx(results["accuracy"]["keras"]["miou"], abs=0.01)
    if HAVE_ORT:  # the benchmark checks each worker's own peak (ONNX below Keras) and says so
        assert any(line.startswith("peak RSS: onnx worker ") for line in results["checks"])
        assert results["checks"][-1] in proc.stdout
