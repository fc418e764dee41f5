"""``scripts/learning_curve.py``: every arm starts as the docstring says (checked on the configs, without
training), one arm runs end to end at a tiny budget with nested label sets, and a preset that saw the
target look is refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

SCRIPT = "learning_curve.py"  # in scripts/
TINY = ["--sizes", "4,8", "--val", "4", "--size", "64", "--width", "0.0625", "--epochs", "2", "--seeds", "1"]
TINY += ["--steps-per-epoch", "1", "--freeze-epochs", "1", "--preset-name", "tiny", "--quiet"]
TINY += ["--set", "data.batch_size=2"]


def _script():
    path = Path(__file__).resolve().parents[2] / "scripts" / SCRIPT
    spec = importlib.util.spec_from_file_location("learning_curve", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_three_arms_differ_only_in_their_start(tmp_path):
    script = _script()
    args = script.parse_args(["--out", str(tmp_path / "lc"), *TINY])
    configs = {arm: script.run_config(args, tmp_path / "voc", arm, 8, 0) for arm in script.ARMS}
    assert configs["scratch"].init == "" and configs["preset"].init == configs["preset_frozen"].init == "preset:tiny"
    assert (configs["preset_frozen"].freeze, configs["preset_frozen"].freeze_epochs) == ("backbone", 1)
    assert configs["preset"].freeze == configs["scratch"].freeze == ""
    for cfg in configs.values():  # the same budget, data and validation in every arm
        assert (cfg.epochs, cfg.steps_per_epoch, cfg.val_every) == (2, 1, 1)
        assert cfg.data.train_split == "train8" and cfg.model.width == 0.0625


def test_smoke_run_of_one_arm(tmp_path, run, monkeypatch):
    pytest.importorskip("tensorflow")
    from _model_files import save_preset

    from xray_seg.conversion.voc import read_split

    presets = save_preset(tmp_path / "presets", "tiny", held_out=["dual_energy_b"])
    monkeypatch.setenv("XRAY_SEG_PRESETS_PATH", str(presets))
    out = tmp_path / "lc"
    proc = run("--out", str(out), *TINY, "--sizes", "4", "--arms", "preset_frozen")
    assert proc.returncode == 0, proc.stderr[-3000:]
    voc = out / "data" / "voc"
    assert read_split(voc, "train4") == [f"xray_{i:05d}" for i in range(4)]
    assert read_split(voc, "val") == [f"xray_{i:05d}" for i in range(100000, 100004)]
    config = yaml.safe_load((out / "runs" / "preset_frozen_n4_seed0" / "config.yaml").read_text())
    assert config["init"] == "preset:tiny" and config["freeze"] == "backbone"
    (record,) = json.loads((out / "learning_curve.json").read_text())["runs"]
    assert set(record["reached"]) == {"0.65", "0.7"} and record["val_images"] == 4
    assert "| preset_frozen | 4 | 0 |" in (out / "learning_curve.md").read_text()


def test_a_preset_that_saw_the_target_look_is_refused(tmp_path, run, monkeypatch):
    from _model_files import save_preset

    presets = save_preset(tmp_path / "presets", "tiny", held_out=[])
    monkeypatch.setenv("XRAY_SEG_PRESETS_PATH", str(presets))
    proc = run("--out", str(tmp_path / "lc"), "--preset-name", "tiny", "--look", "dual_energy_b")
    assert proc.returncode == 2 and "was pretrained on look 'dual_energy_b'" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "lc").exists()
