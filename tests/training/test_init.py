"""``train --init SOURCE``: the source forms, exact logits before any step, classes by name,
``init_report.json``, every refusal (one line, exit 2, no run folder) and one real run."""

import json
import shutil

import numpy as np
import pytest
import yaml
from _model_files import NAMES, SIZE, save_preset, save_run

from xray_seg.core.config import load_config
from xray_seg.core.errors import ModelError
from xray_seg.core.pretrained_presets import PRESETS_PATH_ENV
from xray_seg.training.config import TrainConfig
from xray_seg.training.init_source import initialise_from_source, resolve_init_source

IMAGE = np.random.default_rng(1).uniform(0, 255, (1, SIZE, SIZE, 3)).astype("float32")
CWF = {"model": {"name": "cwf_deeplabv3plus", "width": 0.0625}}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    return save_run(tmp_path_factory.mktemp("init") / "source")


@pytest.fixture
def presets(source_run, tmp_path, monkeypatch):
    """A tiny preset ``tiny_synth`` made from ``source_run``, found through the search path."""
    root = save_preset(tmp_path / "presets", run=source_run)
    monkeypatch.setenv(PRESETS_PATH_ENV, str(root))
    return root


def started(source, names, tmp_path, cfg=CWF):
    """A fresh target model with ``names``, initialised from ``source`` (no step taken)."""
    from xray_seg.models.registry import build_model

    cfg = load_config(TrainConfig, None, cfg)
    model = build_model(cfg.model.name, len(names), (SIZE, SIZE, 3), width=cfg.model.width)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    initialise_from_source(model, cfg, source, names, out, verbose=0)
    return model, json.loads((out / "init_report.json").read_text())


def logits(model):
    return np.asarray(model(IMAGE, training=False))


def test_init_from_a_run_gives_the_source_logits_exactly(source_run, tmp_path):
    import keras

    model, report = started(resolve_init_source(str(source_run)), NAMES, tmp_path)
    saved = keras.saving.load_model(source_run / "best_model.keras", compile=False)
    np.testing.assert_array_equal(logits(model), logits(saved))
    assert report["counts"]["loaded"] == report["counts"]["target_tensors"] == len(model.weights)
    assert report["counts"]["skipped"] == report["counts"]["new"] == 0 and not report["classes"]["by_name"]
    assert report["file"] == str((source_run / "checkpoints" / "best.weights.h5").resolve())

    last, _ = started(resolve_init_source(f"{source_run}:last"), NAMES, tmp_path)  # another checkpoint
    assert not np.allclose(logits(last), logits(saved))


def test_source_forms_resolve_to_their_file_classes_and_architecture(source_run, presets, tmp_path):
    names_file = tmp_path / "names.txt"
    names_file.write_text("\n".join(NAMES) + "\n")
    plain = tmp_path / "plain.weights.h5"
    shutil.copy(source_run / "checkpoints" / "best.weights.h5", plain)
    cases = {
        str(source_run): ("run", "best.weights.h5", 0.0625),
        f"{source_run}:last": ("run", "last.weights.h5", 0.0625),
        str(source_run / "checkpoints" / "last.weights.h5"): ("run", "last.weights.h5", 0.0625),
        str(source_run / "best_model.keras"): ("keras", "best_model.keras", 0.0625),
        "preset:tiny_synth": ("preset", "model.keras", 0.0625),
    }
    for spelling, (kind, file, width) in cases.items():
        source = resolve_init_source(spelling)
        assert (source.kind, source.file.name, source.width) == (kind, file, width), spelling
        assert source.class_names == NAMES and source.model_name == "cwf_deeplabv3plus"
        assert len(source.sha256) == 64
    source = resolve_init_source(str(plain), str(names_file))
    assert (source.kind, source.model_name, source.class_names) == ("weights", None, NAMES)
    model, report = started(source, NAMES, tmp_path)  # read as this run's architecture
    assert report["counts"]["loaded"] == len(model.weights)


def test_classes_map_by_name_and_the_mapping_is_recorded(tmp_path):
    source_names = ["_background_", "knife", "gun", "laptop"]
    run = save_run(tmp_path / "four", names=source_names, seed=5)
    import keras

    saved = keras.saving.load_model(run / "best_model.keras", compile=False)
    model, report = started(resolve_init_source(str(run)), NAMES, tmp_path)
    got, want = logits(model), logits(saved)
    np.testing.assert_allclose(got[..., [0, 1, 2]], want[..., [0, 2, 1]], rtol=0, atol=1e-5)  # bg, gun, knife
    assert report["mapped"] == ["classifier/kernel", "classifier/bias"]
    assert report["classes"]["new"] == ["wrench", "pliers", "scissors"]
    assert report["classes"]["dropped"] == ["laptop"]
    assert [r["source_index"] for r in report["classes"]["mapping"]] == [0, 2, 1, None, None, None]


@pytest.fixture
def voc(tiny_voc, tmp_path):
    return tiny_voc


def train_args(voc, run, *extra):
    return ["train", voc, "--preset", "demo_cpu", "--run-dir", run, "--set", "data.image_size=[64,64]", *extra]


def test_refusals_are_one_line_and_leave_no_run_folder(voc, source_run, presets, tmp_path, refused):
    run = tmp_path / "run"
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 not a zip at all")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    dup = tmp_path / "dup.txt"
    dup.write_text("_background_\ngun\ngun\n")
    plain = tmp_path / "plain.weights.h5"
    shutil.copy(source_run / "checkpoints" / "best.weights.h5", plain)
    cases = [
        (["--init", tmp_path / "nowhere"], ["nowhere", "not found"]),
        (["--init", corrupt], ["corrupt.keras", "not a Keras model file"]),
        (["--init", text], ["notes.txt", "not a model"]),
        (
            ["--init", source_run, "--model", "deeplabv3plus"],
            ["cwf_deeplabv3plus", "deeplabv3plus width", "one architecture"],
        ),
        (["--init", source_run, "--set", "model.width=0.125"], ["width 0.0625", "width 0.125"]),
        (["--init", plain], ["plain.weights.h5", "--init-classes"]),
        (["--init", plain, "--init-classes", dup], ["dup.txt", "class names repeat: gun"]),
        (["--init", source_run, "--init-classes", dup], ["names its own"]),
        (["--init", source_run, "--resume"], ["--init", "--resume"]),
        (["--init", "preset:nope"], ["unknown preset 'nope'", "tiny_synth"]),
    ]
    for extra, texts in cases:
        refused(train_args(voc, run, *extra), *texts, untouched=(source_run, voc))
        assert not run.exists(), extra


def test_a_preset_whose_file_changed_is_refused(voc, presets, tmp_path, refused):
    model = presets / "tiny_synth" / "model.keras"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    model.write_bytes(bytes(data))
    refused(
        train_args(voc, tmp_path / "run", "--init", "preset:tiny_synth"), "tiny_synth", "does not match its manifest"
    )
    assert not (tmp_path / "run").exists()
    with pytest.raises(ModelError, match="does not match"):
        import xray_seg

        xray_seg.Segmenter.from_preset("tiny_synth")


def test_a_source_matching_under_half_is_refused_naming_both_models(voc, tmp_path, refused):
    """A .keras file that says neither model nor width (no xray_seg.json): the tensor match
    decides, after the model is built, and the run folder made for it is removed again."""
    import zipfile

    unet = save_run(tmp_path / "unet", model="unet")
    bare = tmp_path / "bare"
    bare.mkdir()
    with zipfile.ZipFile(unet / "best_model.keras") as src, zipfile.ZipFile(bare / "m.keras", "w") as dst:
        for info in src.infolist():
            if info.filename != "xray_seg.json":
                dst.writestr(info, src.read(info.filename))
    (bare / "class_names.txt").write_text("\n".join(NAMES) + "\n")
    run = tmp_path / "run"
    args = train_args(voc, run, "--init", bare / "m.keras", "--set", "model.width=0.0625", "--epochs", "1")
    line = refused(args, "m.keras", "matches only", "cwf_deeplabv3plus width 0.0625", "another architecture")
    assert "unstated architecture" in line
    assert not run.exists()


def test_a_run_from_a_preset_records_source_digest_and_report(voc, presets, tmp_path, cli):
    run = tmp_path / "run"
    args = train_args(voc, run, "--init", "preset:tiny_synth", "--epochs", "1")
    rc, line = cli([*args, "--set", "steps_per_epoch=1", "--set", "num_val_images=0", "--quiet"])
    assert rc == 0, line
    manifest = json.loads((presets / "tiny_synth" / "manifest.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["init"] == "preset:tiny_synth" and config["init_sha256"] == manifest["sha256"]
    assert config["model"]["width"] == 0.0625  # the preset's architecture, over demo_cpu's width
    report = json.loads((run / "init_report.json").read_text())
    assert report["sha256"] == manifest["sha256"] and report["counts"]["loaded"] == report["counts"]["target_tensors"]
    assert json.loads((run / "checkpoints" / "state.json").read_text())["epochs_done"] == 1


def test_the_api_refuses_as_the_cli_does(voc, presets, tmp_path):
    import xray_seg
    from xray_seg.core.errors import ConfigError

    cfg = xray_seg.TrainConfig.from_preset("demo_cpu", model={"width": 0.0625}, data={"image_size": [64, 64]})
    with pytest.raises(ModelError, match="unknown preset 'nope'.*tiny_synth"):
        xray_seg.train(cfg, voc, tmp_path / "run", init="preset:nope", verbose=0)
    with pytest.raises(ConfigError, match="resume"):
        xray_seg.train(cfg, voc, tmp_path / "run", init="preset:tiny_synth", resume=True, verbose=0)
    with pytest.raises(ModelError, match="one architecture"):
        xray_seg.train(xray_seg.TrainConfig(init="preset:tiny_synth"), voc, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()
