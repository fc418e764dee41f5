"""The memory benchmark's ``tflite`` route (xray_seg.serving.bench_memory): its command runs
``predict EXPORT --engine tflite`` in a fresh process that reports its peak RSS, and the route's
formula takes the TFLite base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")


def test_tflite_route_runs_predict_with_the_tflite_engine(station_export, tmp_path):
    from xray_seg.inference.strips import TFLITE_BASE_BYTES, predict_memory_bytes
    from xray_seg.serving.bench_memory import MemorySettings, formula, route_command, run_measured, write_scan

    run, out, _ = station_export
    scan = write_scan(tmp_path / "scan.png", 100, 200)
    command = route_command("tflite", run, out, scan, tmp_path / "pred")
    result = run_measured(command, 8 << 30, tmp_path / "tflite.log")
    assert result["returncode"] == 0, result["error"]
    written = json.loads((tmp_path / "pred" / "scan.json").read_text())
    assert Path(written["model"]).name == "model_float32.tflite" and (written["height"], written["width"]) == (100, 200)
    settings = MemorySettings(classes=3)
    assert formula("tflite", settings, 100, 200) == predict_memory_bytes(100, 200, 3, TFLITE_BASE_BYTES)
    assert 0 < result["peak_rss"] <= formula("tflite", settings, 100, 200)
