"""Rebuilding the synthetic-pretrained preset, piece by piece (the full ``--quick`` run takes
over a minute on 2 shared cores, so its steps are tested one at a time here)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from xray_seg.core.errors import ConfigError, OutputExistsError
from xray_seg.training.pretrain import (
    MANIFEST_FILE,
    MODEL_FILE,
    PretrainRecipe,
    check_destination,
    synthesise_bags,
    train_config,
    write_preset,
)

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("pretrain_preset", REPO / "scripts" / "pretrain_preset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_counts_looks_and_training_config(tmp_path):
    recipe = PretrainRecipe()
    counts = recipe.counts()
    starts = [indices.start for _, indices in counts]
    assert sum(len(indices) for _, indices in counts) == recipe.bags == counts[-1][1].stop
    assert starts == sorted(starts) and all(a.stop == b.start for (_, a), (_, b) in zip(counts, counts[1:]))
    assert [part.name for part, _ in counts] == ["easy", "default", "cluttered", "belt"]
    assert recipe.looks() == ("dual_energy_a", "grey") and "dual_energy_b" not in recipe.looks()
    assert recipe.data_recipe()["held_out_looks"] == ["dual_energy_b"]
    cfg = train_config(recipe, tmp_path / "voc")
    assert (cfg.model.name, cfg.model.width, cfg.epochs) == ("cwf_deeplabv3plus", 0.25, 40)
    assert tuple(cfg.data.image_size) == (256, 256) and cfg.loss.type == "ohem+dice"
    assert cfg.data.augment.tip_prob == 0.0  # TIP would mix looks (module docstring)


@pytest.mark.parametrize(
    "changes, text",
    [
        ({"name": "Bad Name"}, "preset name"),
        ({"held_out": ("vendor_x",)}, "vendor_x"),
        ({"held_out": ("dual_energy_a", "dual_energy_b", "grey")}, "leaves no look"),
        ({"bags": 3}, "--bags 3"),
    ],
)
def test_bad_recipes_are_refused(changes, text):
    with pytest.raises(ConfigError, match=text):
        PretrainRecipe(**changes).validate()


def test_bags_of_the_pretraining_looks_mixed_difficulty_and_belts(tmp_path):
    recipe = PretrainRecipe.quick(bags=16, clean_val_bags=2, size=48, held_out=("grey",))
    clean = synthesise_bags(recipe, tmp_path / "lm", progress=False)
    assert clean == ["xray_00016", "xray_00017"]
    records = {p.stem: json.loads(p.read_text()) for p in sorted((tmp_path / "lm").glob("xray_*.json"))}
    assert len(records) == 18
    for stem, record in records.items():
        looks = [k for k, v in record["flags"].items() if k.startswith("scanner_") and v]
        assert len(looks) == 1 and looks[0] in ("scanner_dual_energy_a", "scanner_dual_energy_b")
        assert set(record["flags"]) - {"hidden", "small", "clean"} == {"scanner_dual_energy_a", "scanner_dual_energy_b"}
        if stem in clean:
            assert record["shapes"] == [] and record["flags"]["clean"]
    parts = {part.name: indices for part, indices in recipe.counts()}
    belt = parts["belt"]
    widths = [records[f"xray_{i:05d}"]["imageWidth"] for i in belt]
    assert all(records[f"xray_{i:05d}"]["imageHeight"] == 48 for i in belt) and max(widths) > 48
    assert all(records[f"xray_{i:05d}"]["shapes"] for i in parts["easy"])  # easy: a threat in every bag
    assert {p.name for p in (tmp_path / "lm").glob("synth_config_*.yaml")} == {
        f"synth_config_{n}.yaml" for n in ("easy", "default", "cluttered", "belt", "clean_val")
    }
    assert (tmp_path / "lm" / "contact_sheet.png").is_file()


def _preset_folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(b"old")
    (folder / MANIFEST_FILE).write_text(json.dumps({"name": name}))
    return folder


def test_an_existing_preset_is_refused_without_force_and_a_foreign_folder_always(tmp_path):
    check_destination(tmp_path / "new", force=False)
    old = _preset_folder(tmp_path, "p")
    with pytest.raises(OutputExistsError, match="exists already"):
        check_destination(old, force=False)
    check_destination(old, force=True)
    (old / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not a preset folder"):
        check_destination(old, force=True)
    other = _preset_folder(tmp_path, "q")
    (other / MANIFEST_FILE).write_text(json.dumps({"name": "someone_else"}))
    with pytest.raises(OutputExistsError, match="not a preset folder"):
        check_destination(other, force=True)


def test_write_preset_records_the_digest_and_the_model_loads(tmp_path):
    pytest.importorskip("keras")
    from xray_seg.core.model_metadata import model_metadata, read_model_metadata, write_model_metadata
    from xray_seg.inference.loader import load_keras_model
    from xray_seg.models.registry import build_model

    names = ["_background_", "gun", "knife"]
    model = build_model("cwf_deeplabv3plus", len(names), input_shape=(32, 32, 3), width=0.0625)
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    source = tmp_path / "best_model.keras"
    model.save(source)
    write_model_metadata(source, model_metadata(names, (32, 32), "cwf_deeplabv3plus"))
    dest = _preset_folder(tmp_path / "presets", "tiny")  # an older build, replaced

    write_preset(dest, source, {"name": "tiny", "val": {"miou": 0.5}})
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tiny"]  # no staging folder left
    manifest = json.loads((dest / MANIFEST_FILE).read_text())
    data = (dest / MODEL_FILE).read_bytes()
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest() and manifest["bytes"] == len(data)
    assert manifest["file"] == MODEL_FILE and manifest["val"] == {"miou": 0.5}
    with zipfile.ZipFile(dest / MODEL_FILE) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5", "xray_seg.json"]
    assert read_model_metadata(dest / MODEL_FILE)["class_names"] == names
    loaded = load_keras_model(dest / MODEL_FILE)
    assert np.array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_script_refuses_bad_options_before_any_work(tmp_path, capsys):
    script = _script()
    work = tmp_path / "work"
    for argv, text in (
        (["--hold-out", "nope"], "nope"),
        (["--name", "Bad Name"], "preset name"),
    ):
        with pytest.raises(SystemExit) as exc:
            script.run_script(lambda argv=argv: script.main([*argv, "--work", str(work), "--dest", str(tmp_path)]))
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err
    assert not work.exists()
    _preset_folder(tmp_path / "presets", "taken")
    with pytest.raises(SystemExit) as exc:
        script.run_script(
            lambda: script.main(["--name", "taken", "--work", str(work), "--dest", str(tmp_path / "presets")])
        )
    assert exc.value.code == 2 and "--force" in capsys.readouterr().err and not work.exists()
    args = script.parse_args(["--quick", "--hold-out", "grey", "--epochs", "3"])
    recipe = script.recipe_of(args)
    assert (recipe.bags, recipe.size, recipe.epochs, recipe.held_out) == (24, 64, 3, ("grey",))
