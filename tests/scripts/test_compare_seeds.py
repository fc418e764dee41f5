"""``scripts/compare_seeds.py``: a smoke run at a tiny budget, then ``--resume`` trains nothing.

The seed-by-seed difference of CWF-DeepLabv3+ and DeepLabv3+ is checked on hand-made
numbers in ``tests/evaluation/test_compare.py``; here one model at two seeds keeps the run
short (DeepLabv3+'s Xception alone takes over a minute to build and train on 2 cores).
"""

from __future__ import annotations

import json

import pytest

SCRIPT = "compare_seeds.py"  # in scripts/


def test_smoke_run_two_seeds_and_resume(tmp_path, run):
    pytest.importorskip("tensorflow")
    out = tmp_path / "cs"
    tiny = ["--num-images", "12", "--size", "32", "--epochs", "1", "--width", "0.0625", "--seeds", "2"]
    tiny += ["--models", "cwf_deeplabv3plus", "--set", "data.batch_size=4", "--set", "steps_per_epoch=1"]
    tiny += ["--fps-runs", "1", "--grid-images", "0", "--quiet"]
    proc = run("--out", str(out), *tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "compare" / "compare.json").read_text())
    assert sorted(doc["per_seed_miou"]["cwf_deeplabv3plus"]) == ["0", "1"]
    protocol = doc["protocol"]["train_config"]
    assert protocol["val_every"] == 2 and protocol["epochs"] == 1 and protocol["loss"]["type"] == "ohem"  # demo_cpu
    text = (out / "compare_seeds.md").read_text()
    assert "| Network | seed 0 | seed 1 | mean | std |" in text and "demo difficulty" in text and "CPU: " in text
    miou = doc["per_seed_miou"]["cwf_deeplabv3plus"]["1"]
    assert f"{100 * miou:.2f}" in text
    # the demo's bags: every bag holds a threat, so no image is flagged clean
    subsets = json.loads((out / "data" / "voc" / "subsets.json").read_text())["subsets"]
    assert subsets["clean"] == [] and subsets["hidden"] == [] and subsets["small"] == []

    again = run("--out", str(out), *tiny, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished earlier, skipped") == 2
