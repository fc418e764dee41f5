"""The ``hard_cpu`` preset (xray_seg/presets/hard_cpu.yaml): loads, validates, trains, and
differs from ``demo_cpu`` exactly in the factors its comments name."""

from __future__ import annotations

import csv
import math

import pytest

from xray_seg.core.config import config_to_dict, load_config
from xray_seg.training.config import TrainConfig


def flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_hard_cpu_changes_only_the_documented_factors():
    hard = flat(config_to_dict(load_config(TrainConfig, "hard_cpu", [])))
    demo = flat(config_to_dict(load_config(TrainConfig, "demo_cpu", [])))
    changed = {key for key in hard if hard[key] != demo.get(key)}
    assert changed == {
        "data.augment.tip_prob",
        "data.augment.tip_max_threats",
        "data.augment.foreground_crop_prob",
        "loss.type",
        "loss.weights",
        "epochs",
    }
    assert hard["loss.type"] == "ohem+dice" and hard["data.augment.tip_prob"] == 0.5
    assert hard["epochs"] == 70 and demo["epochs"] == 30
    assert hard["data.image_size"] == demo["data.image_size"]


def test_hard_cpu_validates_and_trains_two_steps(tiny_voc, tmp_path):
    pytest.importorskip("tensorflow")
    from xray_seg.training.config_checks import validate_train_config
    from xray_seg.training.trainer import train

    cfg = load_config(
        TrainConfig,
        "hard_cpu",
        [
            f"data.voc_dir={tiny_voc}",
            "model.width=0.0625",
            "data.image_size=[64,64]",
            "data.batch_size=4",
            "epochs=1",
            "steps_per_epoch=2",
            "val_every=1",
            "num_val_images=0",
        ],
    )
    validate_train_config(cfg)
    result = train(cfg, tmp_path / "run", verbose=0)
    assert result.epochs_done == 1 and 0.0 <= result.best_miou <= 1.0
    with open(tmp_path / "run" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and math.isfinite(float(rows[0]["loss"])) and float(rows[0]["loss"]) > 0
    saved = load_config(TrainConfig, str(tmp_path / "run" / "config.yaml"), [])
    assert saved.loss.type == "ohem+dice" and saved.data.augment.tip_prob == 0.5
