"""The public Python API: docs/python_api.md runs as written, and Segmenter behaves the same
whatever it loads (run folder, bare .keras file, SavedModel); .keras files describe themselves;
``import xray_seg`` does not import TensorFlow; the CLI train and evaluate go through the API."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "python_api.md"
TINY_TRAIN = [
    "--preset",
    "demo_cpu",
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--set",
    "model.width=0.0625",
    "--set",
    "data.image_size=[64,64]",
    "--set",
    "steps_per_epoch=1",
    "--set",
    "val_every=1",
    "--set",
    "num_val_images=1",
    "--quiet",
]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def test_import_does_not_import_tensorflow():
    code = (
        "import sys, xray_seg; xray_seg.Segmenter; xray_seg.Prediction; xray_seg.synthesize; xray_seg.train\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow imported'\n"
        "assert set(xray_seg.__all__) <= set(dir(xray_seg)), dir(xray_seg)\n"
        "names = ['synthesize', 'convert', 'TrainConfig', 'train', 'build_model', 'list_models', 'Segmenter']\n"
        "assert all(n in xray_seg.__all__ for n in names)\n"
        "try:\n    xray_seg.no_such_name\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit('no error')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def docs_run(tmp_path_factory):
    """Every python block of docs/python_api.md, in order, in one namespace, in an empty folder."""
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    root = tmp_path_factory.mktemp("docs")
    namespace: dict = {}
    with contextlib.chdir(root):
        for index, block in enumerate(blocks):
            exec(compile(block, f"{DOC.name} block {index}", "exec"), namespace)
    return namespace, root


def test_docs_python_api_runs(docs_run):
    namespace, root = docs_run
    seg, pred, tiled = namespace["seg"], namespace["pred"], namespace["tiled"]
    assert seg.class_names[0] == "_background_" and len(seg.class_names) == pred.probabilities.shape[-1]
    assert pred.class_map.dtype == np.uint8 and pred.probabilities.dtype == np.float32
    np.testing.assert_allclose(pred.probabilities.sum(-1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(pred.class_map, pred.probabilities.argmax(-1))
    np.testing.assert_allclose(tiled.probabilities.sum(-1), 1.0, atol=1e-4)
    for item in pred.items:
        x, y, w, h = item["bbox"]
        # items are components after the alarm rule's closing (inference/alarm_rule.py): inside their box
        assert w * h >= item["area"] >= 50 and (pred.class_map[y : y + h, x : x + w] == item["class_index"]).any()
    metrics = json.loads((root / "runs/tiny/eval-val/metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(namespace["ev"].scores["miou"])
    assert (root / "runs/tiny-export/savedmodel/saved_model.pb").is_file()
    assert not (root / "alone" / "class_names.txt").exists()


def test_from_preset_overrides():
    from xray_seg import TrainConfig
    from xray_seg.core.config import load_config
    from xray_seg.core.errors import ConfigError

    cfg = TrainConfig.from_preset(
        "demo_cpu", epochs=3, model={"width": 0.125}, **{"data.batch_size": 2, "model.aux": True}
    )
    assert (cfg.epochs, cfg.model.width, cfg.model.aux, cfg.data.batch_size) == (3, 0.125, True, 2)
    assert cfg.model.name == "cwf_deeplabv3plus" and cfg.data.image_size == (256, 256)  # the rest of the preset
    same = load_config(
        TrainConfig, "demo_cpu", ["epochs=3", "model.width=0.125", "data.batch_size=2", "model.aux=true"]
    )
    assert cfg == same
    assert TrainConfig.from_preset() == TrainConfig()
    with pytest.raises(ConfigError, match="unknown setting 'widht'"):
        TrainConfig.from_preset("demo_cpu", model={"widht": 1})


def test_api_wrappers_check_their_options(tmp_path):
    import xray_seg
    from xray_seg.core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown synthesize option"):
        xray_seg.synthesize(tmp_path / "x", nmu=3)
    with pytest.raises(ConfigError, match="unknown convert option"):
        xray_seg.convert(tmp_path / "x", tmp_path / "y", val_ration=0.2)
    assert not (tmp_path / "x").exists()
    assert "cwf_deeplabv3plus" in xray_seg.list_models() and "unet" in xray_seg.list_models()
    model = xray_seg.build_model("unet", 3, (32, 32, 3), width=0.0625)
    assert tuple(model.output_shape) == (None, 32, 32, 3)


def test_tta_specs():
    from xray_seg import TTAOptions
    from xray_seg.inference.tta_options import tta_options

    assert tta_options("scales=0.75,1,1.25 flip") == TTAOptions(scales=(0.75, 1.0, 1.25), flip=True)
    assert tta_options("flip,scales=0.5,1") == TTAOptions(scales=(0.5, 1.0), flip=True)
    assert tta_options(None, window=48) == TTAOptions(window=(48, 48))
    assert tta_options(TTAOptions(flip=True), window="32x64", stride=16) == TTAOptions(
        flip=True, window=(32, 64), stride=(16, 16)
    )
    with pytest.raises(TypeError):
        tta_options(3)


def test_model_metadata_round_trip(tmp_path):
    import keras

    from xray_seg.core.model_metadata import METADATA_ENTRY, model_metadata, read_model_metadata, write_model_metadata
    from xray_seg.models.registry import build_model, import_custom_objects

    path = tmp_path / "m.keras"
    model = build_model("unet", 3, (32, 32, 3), width=0.0625)
    model.save(path)
    assert read_model_metadata(path) is None
    os.chmod(path, 0o640)
    meta = model_metadata(["_background_", "gun", "knife"], (32, 32), "unet")
    write_model_metadata(path, meta)
    write_model_metadata(path, {**meta, "model_name": "unet2"})  # replaced, not duplicated
    assert read_model_metadata(path) == {**meta, "model_name": "unet2"}
    assert meta["palette"] == [[0, 0, 0], [128, 0, 0], [0, 128, 0]] and meta["input_size"] == [32, 32]
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist().count(METADATA_ENTRY) == 1
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)  # the file keeps its mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # no temporary file left
    import_custom_objects()
    again = keras.saving.load_model(path, compile=False)  # plain Keras ignores the extra entry
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(again.predict_on_batch(x), model.predict_on_batch(x))
    (tmp_path / "not.keras").write_bytes(b"not a zip")
    assert read_model_metadata(tmp_path / "not.keras") is None


# ----------------------------------------------------------------------------- one trained run, three sources


@pytest.fixture(scope="module")
def sources(docs_run):
    """The docs' run folder, its .keras file alone (no class_names.txt), and its SavedModel export."""
    _, root = docs_run
    return {
        "run": root / "runs/tiny",
        "keras": root / "alone/model.keras",
        "savedmodel": root / "runs/tiny-export/savedmodel",
    }


def test_cli_train_evaluate_export_go_through_the_api(docs_run, tmp_path):
    """`xray-seg train` writes a self-describing .keras file; `evaluate` equals Segmenter.evaluate;
    `export` of the bare file needs no class_names.txt."""
    from xray_seg import Segmenter
    from xray_seg.cli import main
    from xray_seg.core.model_metadata import read_model_metadata

    voc = docs_run[1] / "data/voc"
    run = tmp_path / "run"
    assert main(["train", str(voc), "--run-dir", str(run), *TINY_TRAIN]) == 0
    meta = read_model_metadata(run / "best_model.keras")
    names = (voc / "class_names.txt").read_text().split()
    assert meta["class_names"] == names and meta["input_size"] == [64, 64]
    assert meta["model_name"] == "cwf_deeplabv3plus" and len(meta["palette"]) == len(names)

    assert main(["evaluate", str(run), str(voc), "--split", "val", "--out", str(tmp_path / "ev")]) == 0
    cli = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    api = Segmenter.load(run / "best_model.keras").evaluate(voc, split="val", progress=False)
    assert cli["miou"] == pytest.approx(api.scores["miou"]) and cli["pa"] == pytest.approx(api.scores["pa"])

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run / "best_model.keras", alone / "model.keras")
    assert (
        main(["export", str(alone / "model.keras"), "--out", str(tmp_path / "export"), "--format", "savedmodel"]) == 0
    )
    export = json.loads((tmp_path / "export" / "savedmodel" / "export.json").read_text())
    assert export["class_names"] == names and export["input_size"] == [64, 64]
    assert export["model_name"] == "cwf_deeplabv3plus"  # from the metadata: no config.yaml beside the file
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("\n".join(names[::-1]) + "\n")
    code = main(["export", str(alone / "model.keras"), "--class-names", str(wrong), "--out", str(tmp_path / "x")])
    assert code == 2 and not (tmp_path / "x").exists()  # names that contradict the file's own are refused


def test_same_class_map_from_all_three_sources(sources, docs_run):
    from xray_seg import Segmenter
    from xray_seg.core.images import read_image_rgb

    image = read_image_rgb(sorted((docs_run[1] / "data/voc/JPEGImages").iterdir())[-1])
    segs = {kind: Segmenter.load(path) for kind, path in sources.items()}
    preds = {kind: seg.predict(image) for kind, seg in segs.items()}
    for kind, seg in segs.items():
        assert seg.class_names == segs["run"].class_names, kind
        assert seg.model_name == "cwf_deeplabv3plus" and seg.input_size == (64, 64), kind
        np.testing.assert_array_equal(seg.palette, segs["run"].palette)
    np.testing.assert_array_equal(preds["keras"].probabilities, preds["run"].probabilities)
    np.testing.assert_allclose(preds["savedmodel"].probabilities, preds["run"].probabilities, atol=1e-4)
    agree = (preds["savedmodel"].class_map == preds["run"].class_map).mean()
    assert agree > 0.999, agree  # argmax ties aside, identical
    assert segs["savedmodel"].keras_model is None and segs["run"].keras_model is not None


def test_class_names_file_is_optional_and_metadata_wins(sources, tmp_path):
    from xray_seg import Segmenter

    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(sources["keras"], folder / "model.keras")
    names = Segmenter.load(folder / "model.keras").class_names
    (folder / "class_names.txt").write_text("_background_\nx\ny\nz\nw\nv\n")  # stale: the metadata wins
    assert Segmenter.load(folder / "model.keras").class_names == names


def test_predict_files_and_errors(sources, docs_run, tmp_path):
    from xray_seg import Segmenter
    from xray_seg.core.errors import ModelError

    seg = Segmenter.load(sources["run"])
    scan = sorted((docs_run[1] / "data/voc/JPEGImages").iterdir())[0]
    report = seg.predict_files([scan], tmp_path / "pred", tta="flip", progress=False)
    assert not report.failures and (tmp_path / "pred" / f"{scan.stem}_mask.png").is_file()
    written = json.loads((tmp_path / "pred" / f"{scan.stem}.json").read_text())["items"]
    assert written == seg.predict(scan, tta="flip").items
    with pytest.raises(ModelError, match="not a model"):
        Segmenter.load(tmp_path)
    with pytest.raises(ModelError, match="cannot be exported again"):
        Segmenter.load(sources["savedmodel"]).export(tmp_path / "again", formats="savedmodel", progress=False)
    assert not (tmp_path / "again").exists() or not any((tmp_path / "again").iterdir())
