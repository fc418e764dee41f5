"""``scripts/ablate_hard.py``: each variant changes one factor; a smoke run at a tiny budget."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = "ablate_hard.py"  # in scripts/


def load_script():
    spec = importlib.util.spec_from_file_location(
        "ablate_hard", Path(__file__).resolve().parents[2] / "scripts" / SCRIPT
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["ablate_hard"] = module
    spec.loader.exec_module(module)
    return module


def flat(tree: dict, prefix: str = "") -> dict:
    """``{"a.b": value}`` of a nested config dict (an empty dict is a value)."""
    items = [(f"{prefix}{k}", v) for k, v in tree.items()]
    return dict(
        kv for key, v in items for kv in (flat(v, key + ".").items() if isinstance(v, dict) and v else [(key, v)])
    )


def test_each_variant_changes_exactly_one_factor(tiny_voc):
    from xray_seg.core.config import config_to_dict

    abl = load_script()
    args = abl.parse_args(["--out", "unused", "--voc", str(tiny_voc), "--epochs", "7", "--width", "0.125"])
    base = flat(config_to_dict(abl.variant_config(args, tiny_voc, 64, [])))
    assert base["epochs"] == 7 and base["model.width"] == 0.125 and base["val_every"] == 8  # last epoch only
    assert base["loss.type"] == "ohem+dice" and base["data.image_size"] == [64, 64]
    expected = {
        "tip_off": {"data.augment.tip_prob"},
        "ohem": {"loss.type", "loss.weights"},
        "no_fg_crop": {"data.augment.foreground_crop_prob"},
        "low_res": set(),  # the same recipe on the same bags drawn smaller: only the data differ
    }
    for name, (_, overrides) in abl.VARIANTS.items():
        if name == "hard_cpu":
            continue
        cfg = flat(config_to_dict(abl.variant_config(args, tiny_voc, 64, overrides)))
        assert {k for k in cfg if cfg[k] != base[k]} == expected[name], name


def test_epochs_default_to_the_presets():
    abl = load_script()
    assert abl.parse_args(["--out", "o"]).epochs == 70  # hard_cpu's budget
    assert abl.parse_args(["--out", "o", "--preset", "demo_cpu"]).epochs == 30
    assert abl.parse_args(["--out", "o", "--epochs", "3"]).epochs == 3


def test_extra_variants_and_bad_ones():
    abl = load_script()
    args = abl.parse_args(["--out", "o", "--variants", "hard_cpu", "--variant", "ce:loss.type=ce;loss.weights=[]"])
    assert abl.chosen_variants(args)["ce"] == ("loss.type=ce, loss.weights=[]", ["loss.type=ce", "loss.weights=[]"])
    for bad in (["--variants", "nope"], ["--variant", "ce"], ["--variant", "ce:loss.type"]):
        with pytest.raises(SystemExit, match="error:"):
            abl.chosen_variants(abl.parse_args(["--out", "o", *bad]))


def test_smoke_run_writes_the_table_and_resumes(tmp_path, run):
    """Two variants (the preset and low_res, which synthesises the second dataset) at a tiny budget."""
    pytest.importorskip("tensorflow")
    out = tmp_path / "abl"
    tiny = ["--num-images", "12", "--size", "48", "--low-size", "32", "--epochs", "1", "--width", "0.0625"]
    tiny += ["--set", "data.batch_size=4", "--set", "steps_per_epoch=1", "--variants", "hard_cpu,low_res", "--quiet"]
    proc = run("--out", str(out), *tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "ablation.json").read_text())
    assert [r["variant"] for r in doc["variants"]] == ["hard_cpu", "low_res"]
    assert [r["size"] for r in doc["variants"]] == [48, 32]
    for record in doc["variants"]:
        assert 0.0 <= record["miou"] <= 1.0 and set(record["iou"]) >= {"_background_", "gun", "scissors"}
        assert record["train_seconds"] > 0
        assert (out / "runs" / record["variant"] / "eval-val" / "metrics.json").is_file()
    # the same bags at both sizes: same val split and the same subsets
    splits = "ImageSets/Segmentation/val.txt"
    assert (out / "data" / "voc" / splits).read_text() == (out / "data_low" / "voc" / splits).read_text()
    assert (out / "data" / "voc" / "subsets.json").read_text() == (
        out / "data_low" / "voc" / "subsets.json"
    ).read_text()
    md = (out / "ablation.md").read_text()
    assert "| hard_cpu | the preset |" in md and "PD@PFA5 hidden" in md and "CPU: " in md

    model = out / "runs" / "hard_cpu" / "best_model.keras"
    mtime = model.stat().st_mtime_ns
    again = run("--out", str(out), *tiny, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "hard_cpu: finished earlier, kept" in again.stdout and model.stat().st_mtime_ns == mtime

    refused = run("--out", str(out), *tiny)
    assert refused.returncode == 2 and "output already exists" in refused.stderr
    changed = run("--out", str(out), *[a if a != "48" else "40" for a in tiny], "--resume")
    assert changed.returncode == 2 and "--resume with different settings (data, size)" in changed.stderr
