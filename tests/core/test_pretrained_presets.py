"""Pretrained presets: the search path, the manifest, the digest check, loading, the table."""

import json

import numpy as np
import pytest
from _model_files import NAMES, SIZE, save_preset

from xray_seg.core.errors import ModelError
from xray_seg.core.pretrained_presets import (
    PRESETS_PATH_ENV,
    find_preset,
    list_presets,
    verified_model_file,
)


@pytest.fixture(scope="module")
def preset_root(tmp_path_factory):
    return save_preset(tmp_path_factory.mktemp("presets"))


@pytest.fixture
def presets(preset_root, monkeypatch):
    monkeypatch.setenv(PRESETS_PATH_ENV, str(preset_root))
    return preset_root


def test_a_preset_is_found_its_digest_matches_and_it_loads(presets):
    import xray_seg

    preset = find_preset("preset:tiny_synth")
    assert [p.name for p in list_presets()] == ["synthetic_cwf_w025", "tiny_synth"]  # the shipped one too
    assert (preset.model, preset.width, preset.class_names, preset.val_miou) == (
        "cwf_deeplabv3plus",
        0.0625,
        NAMES,
        0.5,
    )
    assert verified_model_file(preset) == presets / "tiny_synth" / "model.keras"
    seg = xray_seg.Segmenter.from_preset("tiny_synth")
    assert seg.class_names == NAMES and seg.model_name == "cwf_deeplabv3plus"
    pred = seg.predict(np.full((SIZE, SIZE, 3), 200, np.uint8))
    assert pred.probabilities.shape == (SIZE, SIZE, len(NAMES))


def test_unknown_names_list_the_presets_and_bad_manifests_are_named(presets, tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="unknown preset 'nope'.*use one of: .*tiny_synth"):
        find_preset("nope")
    bad = tmp_path / "bad"
    for problem, manifest in [
        ("'sha256' is missing", {"name": "x", "model": "m", "width": 1, "class_names": ["a"], "file": "f"}),
        ("must be a name in its folder", {**_manifest(), "file": "../outside.keras"}),
        ("unique non-empty", {**_manifest(), "class_names": ["a", "a"]}),
    ]:
        (bad / "x").mkdir(parents=True, exist_ok=True)
        (bad / "x" / "manifest.json").write_text(json.dumps(manifest))
        monkeypatch.setenv(PRESETS_PATH_ENV, str(bad))
        with pytest.raises(ModelError, match=problem):
            list_presets()


def _manifest():
    return {"name": "x", "model": "m", "width": 1, "class_names": ["a", "b"], "file": "model.keras", "sha256": "0" * 64}


def test_a_changed_model_file_is_refused_before_loading(preset_root, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(preset_root, root)
    monkeypatch.setenv(PRESETS_PATH_ENV, str(root))
    (root / "tiny_synth" / "model.keras").write_bytes(b"short")
    with pytest.raises(ModelError, match="5 bytes, its manifest says"):
        verified_model_file(find_preset("tiny_synth"))


def test_models_lists_the_presets_as_a_table(presets, cli, capsys):
    from xray_seg.cli import main

    capsys.readouterr()
    assert main(["models", "--presets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:6] == ["name", "model", "width", "classes", "val", "mIoU"]
    (row,) = [line.split() for line in out[1:] if line.startswith("tiny_synth")]
    assert row[:5] == ["tiny_synth", "cwf_deeplabv3plus", "0.0625", "6", "0.5000"] and row[6] == "MB"
