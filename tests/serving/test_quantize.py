"""Full-integer int8 engines (xray_seg.serving.quantize): seeded calibration tiles from the
train split, files that are really int8, the accuracy gate on val against the Keras model,
rejected variants kept out of the export, and the user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from xray_seg.core.errors import ConfigError  # noqa: E402

WIDTH = 0.0625


def _make_run(run_dir: Path, voc: Path) -> Path:
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.core.config import save_config
    from xray_seg.models.registry import build_model
    from xray_seg.training.config import TrainConfig

    names = read_class_names(voc)
    run_dir.mkdir(parents=True)
    model = build_model("cwf_deeplabv3plus", len(names), (64, 64, 3), width=WIDTH)
    model.save(run_dir / "best_model.keras")
    (run_dir / "class_names.txt").write_text("\n".join(names) + "\n")
    cfg = TrainConfig()
    cfg.model.width = WIDTH
    cfg.data.image_size = (64, 64)
    save_config(cfg, run_dir / "config.yaml")
    return run_dir


def _formats():
    import importlib.util

    have_onnx = all(importlib.util.find_spec(p) for p in ("tf2onnx", "onnx", "onnxruntime"))
    return ("savedmodel", "tflite_int8") + (("onnx_int8",) if have_onnx else ())


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, tiny_voc):
    from xray_seg.serving.exporter import export_model
    from xray_seg.serving.quantize import GateSettings

    base = tmp_path_factory.mktemp("quant")
    run = _make_run(base / "run", tiny_voc)
    settings = GateSettings(tiny_voc, num_tiles=6, runs=1)
    result = export_model(run, base / "out", formats=_formats(), calibration=settings, progress=False)
    return run, base / "out", result


def test_calibration_tiles_are_seeded_training_tiles(tiny_voc):
    from xray_seg.conversion.voc import read_split
    from xray_seg.core.images import read_image_rgb
    from xray_seg.core.layouts import VocLayout
    from xray_seg.inference.geometry import ScanGeometry
    from xray_seg.serving.quantize import calibration_tiles

    geometry = ScanGeometry(tile=(64, 64))
    tiles = calibration_tiles(tiny_voc, geometry, num=11, seed=5)
    assert tiles.shape == (11, 64, 64, 3) and tiles.dtype == np.uint8
    np.testing.assert_array_equal(tiles, calibration_tiles(tiny_voc, geometry, num=11, seed=5))
    assert not np.array_equal(tiles, calibration_tiles(tiny_voc, geometry, num=11, seed=6))
    train = [read_image_rgb(VocLayout(tiny_voc).image_path(s)) for s in read_split(tiny_voc, "train")]
    val = [read_image_rgb(VocLayout(tiny_voc).image_path(s)) for s in read_split(tiny_voc, "val")]
    # 64x64 bags and 64x64 tiles: every tile is a whole training image; 11 > 8 images: round again
    for tile in tiles:
        assert any(np.array_equal(tile, image) for image in train)
        assert not any(np.array_equal(tile, image) for image in val)
    assert len({tile.tobytes() for tile in tiles}) == len(train)


def test_calibration_tiles_pad_small_scans_with_air(tiny_voc):
    from xray_seg.inference.geometry import ScanGeometry
    from xray_seg.serving.quantize import calibration_tiles

    tiles = calibration_tiles(tiny_voc, ScanGeometry(tile=(96, 80)), num=3, seed=0)
    assert tiles.shape == (3, 96, 80, 3)
    assert (tiles[:, 64:] == 255).all() and (tiles[:, :, 64:] == 255).all()


def test_tflite_int8_is_full_integer(quantized, tiny_voc):
    import keras

    from xray_seg.inference.geometry import ScanGeometry
    from xray_seg.models.registry import import_custom_objects
    from xray_seg.serving.quantize import calibration_tiles, tflite_full_int8
    from xray_seg.serving.tflite import make_interpreter

    run, _, _ = quantized
    import_custom_objects()
    model = keras.models.load_model(run / "best_model.keras", compile=False)
    tiles = calibration_tiles(tiny_voc, ScanGeometry(tile=(64, 64)), num=4)
    interpreter = make_interpreter(tflite_full_int8(model, (64, 64), tiles), num_threads=1)
    ops = interpreter._get_ops_details()
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= {d["op_name"] for d in ops}
    conv_inputs = {i for d in ops if d["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D") for i in d["inputs"]}
    dtypes = {t["dtype"] for t in interpreter.get_tensor_details() if t["index"] in conv_inputs}
    assert dtypes <= {np.int8, np.int32}, dtypes  # int8 activations and weights, int32 bias
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.float32


def test_gate_figures_are_the_keras_and_engine_accuracy(quantized, tiny_voc):
    from xray_seg.evaluation.evaluator import evaluate

    run, out, result = quantized
    entry = json.loads((out / "savedmodel" / "export.json").read_text())["int8"]
    assert entry == json.loads((out / "manifest.json").read_text())["int8"]
    assert entry["calibration"]["tiles"] == 6 and entry["calibration"]["split"] == "train"
    assert entry["gate"]["max_miou_drop_points"] == 1.0 and entry["gate"]["images"] == 4
    keras = evaluate(run, tiny_voc, progress=False)  # xray-seg evaluate: the same mIoU
    assert entry["keras"]["miou"] == pytest.approx(keras.scores["miou"], abs=1e-9)
    assert entry["keras"]["clean_bags"] + entry["keras"]["threat_bags"] == 4
    for fmt in _formats()[1:]:
        row = entry["variants"][fmt]
        acc = row["accuracy"]
        assert row["error"] is None and row["latency_ms"] > 0
        assert acc["miou_delta_points"] == pytest.approx(100 * (acc["miou"] - keras.scores["miou"]))
        assert row["accepted"] == (acc["miou_delta_points"] >= -1.0)
        assert (out / f"model_int8.{'tflite' if fmt == 'tflite_int8' else 'onnx'}").exists() == row["accepted"]
        assert row["file"] == (Path(row["file"]).name if row["accepted"] else None)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".xray-seg-output"]


def test_accepted_int8_engines_agree_with_keras(quantized, tiny_voc):
    from xray_seg.conversion.voc import read_split
    from xray_seg.core.images import read_image_rgb
    from xray_seg.core.layouts import VocLayout
    from xray_seg.serving.engines import load_engine, scan_probabilities

    run, out, result = quantized
    keras = load_engine(run, "keras")
    image = read_image_rgb(VocLayout(tiny_voc).image_path(read_split(tiny_voc, "val")[0]))
    ref = scan_probabilities(keras, image)
    for variant in result.int8:
        if variant.accepted:
            probs = scan_probabilities(load_engine(out, variant.engine, variant="int8"), image)
            assert probs.shape == ref.shape
            assert np.allclose(probs.sum(-1), 1.0, atol=2e-2)
            assert np.abs(probs - ref).mean() < 0.1


def test_a_rejected_variant_is_not_written_and_the_command_says_so(tmp_path, tiny_voc, capsys, snapshot):
    """Also: the run and the calibration VOC (inputs) survive byte for byte, even when a second
    export replaces the first with --force and deletes its rejected variant again."""
    from xray_seg.cli import main

    run = _make_run(tmp_path / "run", tiny_voc)
    out = tmp_path / "out"
    snap = snapshot(run, tiny_voc)
    argv = ["export", run, "--out", out, "--format", "tflite_int8", "--calibration", tiny_voc]
    argv += ["--calibration-tiles", "4", "--tflite-runs", "1", "--max-miou-drop", "-101"]
    assert main([str(a) for a in argv]) == 0
    capsys.readouterr()
    rc = main([str(a) for a in argv + ["--force"]])
    text = capsys.readouterr().out
    snap.assert_unchanged()
    assert rc == 0, text
    lines = [line for line in text.splitlines() if "tflite_int8" in line]
    assert len(lines) == 1 and "REJECTED" in lines[0] and "not written" in lines[0]
    assert not (out / "model_int8.tflite").exists()
    row = json.loads((out / "manifest.json").read_text())["int8"]["variants"]["tflite_int8"]
    assert row["accepted"] is False and row["file"] is None and row["accuracy"]["miou"] >= 0


def test_int8_without_calibration_is_refused_before_any_output(tmp_path, cli):
    out = tmp_path / "out"
    rc, line = cli(["export", tmp_path / "no_run", "--out", out, "--format", "savedmodel,tflite_int8"])
    assert rc == 2 and "--calibration" in line and not out.exists()


def test_bad_calibration_folder_is_one_line(tmp_path, cli):
    (tmp_path / "notvoc").mkdir()
    rc, line = cli(
        ["export", tmp_path, "--out", tmp_path / "o", "--format", "tflite_int8", "--calibration", tmp_path / "notvoc"]
    )
    assert rc == 2 and "notvoc" in line


def test_parse_formats_knows_the_int8_formats():
    from xray_seg.serving.formats import FORMATS, parse_formats

    assert parse_formats("all") == FORMATS
    assert parse_formats("all,onnx_int8") == (*FORMATS, "onnx_int8")
    assert parse_formats("tflite_int8") == ("tflite_int8",)
    with pytest.raises(ConfigError):
        parse_formats("tflite_int4")
