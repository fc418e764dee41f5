"""The synthetic-pretrained preset shipped in the package: its manifest says how it was made, its
digest matches, it never saw the held-out look, and it loads and segments a synthetic bag."""

from __future__ import annotations

import numpy as np

from xray_seg.core.fileio import file_sha256
from xray_seg.core.pretrained_presets import PRESETS_PATH_ENV, find_preset, list_presets, verified_model_file

NAME = "synthetic_cwf_w025"


def test_the_shipped_preset_is_listed_and_its_digest_matches(monkeypatch):
    monkeypatch.delenv(PRESETS_PATH_ENV, raising=False)
    assert NAME in [p.name for p in list_presets()]
    preset = find_preset(NAME)
    manifest = preset.manifest
    assert file_sha256(preset.model_file) == manifest["sha256"]
    assert preset.model_file.stat().st_size == manifest["bytes"] < 10 * 2**20  # small enough for git
    assert verified_model_file(preset) == preset.model_file
    assert (preset.model, preset.width) == ("cwf_deeplabv3plus", 0.25)
    assert manifest["command"].startswith("python scripts/pretrain_preset.py")
    assert manifest["held_out_looks"] == ["dual_energy_b"]
    assert "dual_energy_b" not in manifest["data_recipe"]["scanner_looks"]
    assert 0.0 < manifest["val"]["miou"] <= 1.0 and 0.0 <= manifest["val"]["pd_at_pfa5"] <= 1.0


def test_the_shipped_preset_loads_and_finds_a_threat(monkeypatch):
    monkeypatch.delenv(PRESETS_PATH_ENV, raising=False)
    import xray_seg
    from xray_seg.synthesis.scene import SynthConfig, render_sample

    segmenter = xray_seg.Segmenter.from_preset(NAME)
    assert segmenter.class_names == find_preset(NAME).class_names
    image, _, info = render_sample(SynthConfig(size=256, seed=0, clutter="low", hide_prob=0.0), 3, debug=True)
    truth = info["threat_mask"]
    assert truth.any()
    predicted = segmenter.predict(image).class_map
    assert predicted.shape == truth.shape
    overlap = np.logical_and(predicted > 0, truth > 0).sum() / (truth > 0).sum()
    assert overlap > 0.3, overlap  # it knows where threats are on the looks it was trained on
