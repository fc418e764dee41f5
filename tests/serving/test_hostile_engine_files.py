"""Corrupt, truncated or foreign engine files are refused before a runtime reads them: exit 2,
one line naming the file and the fix, the export untouched, nothing written, no crash.

The checks (:mod:`xray_seg.inference.engine_files`): the SHA-256 ``export`` records in
``export.json`` ``engine_files``; without it (an older export, a file put there by hand) the
file's structure (TFLite flatbuffer, SavedModel folder) and its shapes against ``export.json``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorflow")

METADATA = ("savedmodel/export.json", "savedmodel_optimized/export.json")


@pytest.fixture
def export_copy(station_export, tmp_path):
    """``copy(digests=True) -> folder``: a copy of the station export, optionally without ``engine_files``."""

    def copy(digests: bool = True) -> Path:
        out = tmp_path / ("export" if digests else "export_old")
        shutil.copytree(station_export[1], out)
        if not digests:
            for name in METADATA:
                meta = json.loads((out / name).read_text())
                meta.pop("engine_files")
                (out / name).write_text(json.dumps(meta))
        return out

    return copy


@pytest.fixture
def scan(tmp_path) -> Path:
    path = tmp_path / "scan.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(path)
    return path


def _predict_refused(refused, export, scan, engine, *texts):
    out = scan.parent / "pred"
    argv = ["predict", export, scan, "--out", out, *(["--engine", engine] if engine else [])]
    line = refused(argv, *texts, "Fix:", untouched=(export,))
    assert not out.exists()
    return line


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:5000])


def _random(file: Path) -> None:
    file.write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes())


CORRUPT = [
    ("onnx", "model.onnx", _truncate),
    ("onnx", "model.onnx", _random),
    ("openvino", "openvino/model.xml", _truncate),
    ("openvino", "openvino/model.bin", _truncate),
    ("tflite", "model_float32.tflite", _truncate),
    ("tflite", "model_float32.tflite", _random),
]


def test_export_records_every_engine_file_by_digest(station_export):
    out = station_export[1]
    meta = json.loads((out / "savedmodel" / "export.json").read_text())
    files = {
        p.relative_to(out).as_posix() for p in out.rglob("model*") if p.suffix in (".tflite", ".onnx", ".xml", ".bin")
    }
    assert set(meta["engine_files"]) == files and "model_float32.tflite" in files
    for name, entry in meta["engine_files"].items():
        assert entry == {
            "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest(),
            "bytes": (out / name).stat().st_size,
        }
    assert json.loads((out / "manifest.json").read_text())["export"]["engine_files"] == meta["engine_files"]


@pytest.mark.parametrize("digests", [True, False], ids=["digest", "no_digest"])
@pytest.mark.parametrize(("engine", "name", "spoil"), CORRUPT, ids=[f"{e}-{n}-{s.__name__[1:]}" for e, n, s in CORRUPT])
def test_a_corrupt_engine_file_is_one_line(export_copy, scan, refused, engine, name, spoil, digests):
    """A truncated .tflite crashed the interpreter (SIGSEGV, rc 139); ONNX Runtime and OpenVINO raised their own types."""
    export = export_copy(digests)
    if not (export / name).is_file():
        pytest.skip(f"this machine's export has no {name}")
    spoil(export / name)
    line = _predict_refused(refused, export, scan, engine, str(export / name))
    assert ("SHA-256" in line or "bytes but export wrote" in line) if digests else "export wrote" not in line


def _foreign_onnx(file: Path, tile: int, classes: int) -> None:
    """A valid ONNX graph from another model: [1, tile, tile, 3] -> [1, tile, tile, classes]."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, tile, tile, 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, tile, tile, classes])
    node = helper.make_node("Concat", ["images"] * (classes // 3), ["logits"], axis=3)
    graph = helper.make_graph([node], "foreign", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(file))


@pytest.mark.parametrize(("tile", "classes", "text"), [(32, 3, "takes 32x32 tiles"), (64, 6, "outputs 6 classes")])
def test_a_model_onnx_from_another_model_is_refused(export_copy, scan, refused, tile, classes, text):
    with_digests, without = export_copy(True), export_copy(False)
    for export in (with_digests, without):
        if not (export / "model.onnx").is_file():
            pytest.skip("this machine's export has no model.onnx")
        _foreign_onnx(export / "model.onnx", tile, classes)
    _predict_refused(refused, with_digests, scan, "onnx", str(with_digests / "model.onnx"), "export wrote")
    _predict_refused(refused, without, scan, "onnx", str(without / "model.onnx"), text, "another model's file")


def test_a_foreign_tflite_names_the_tile_mismatch_not_a_window(export_copy, scan, refused):
    """A .tflite of another tile size once got "use window 64x64" though no --window was given."""
    import keras
    import tensorflow as tf

    inputs = keras.Input((32, 32, 3), batch_size=1)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    export = export_copy(False)
    (export / "model_foreign.tflite").write_bytes(data)
    argv_extra = ["--variant", "model_foreign.tflite"]
    out = scan.parent / "pred"
    line = refused(
        ["predict", export, scan, "--out", out, "--engine", "tflite", *argv_extra],
        str(export / "model_foreign.tflite"),
        "takes 32x32 tiles",
        "64x64",
        "Fix:",
        untouched=(export,),
        absent=("window",),
    )
    assert "another model's file" in line and not out.exists()


@pytest.mark.parametrize("engine", [None, "savedmodel"])
@pytest.mark.parametrize("case", ["corrupt_pb", "no_variables"])
def test_a_broken_savedmodel_is_one_line(export_copy, scan, refused, engine, case):
    export = export_copy(True)
    if case == "corrupt_pb":
        _truncate(export / "savedmodel" / "saved_model.pb")
        text = "saved_model.pb"
    else:
        shutil.rmtree(export / "savedmodel" / "variables")
        text = "variables/variables.index"
    _predict_refused(refused, export / "savedmodel" if engine is None else export, scan, engine, text)


def test_an_unvouched_tflite_is_tried_in_a_child_whose_crash_is_one_error(tmp_path, monkeypatch):
    """The interpreter builds its model without the flatbuffer verifier, so a file no digest vouches
    for is loaded first in a child process: a crash there (here a simulated SIGSEGV) is a ModelError."""
    import xray_seg.inference.engine_files as engine_files
    from xray_seg.core.errors import ModelError

    file = tmp_path / "model.tflite"
    file.write_bytes(b"\0" * 16)
    monkeypatch.setattr(engine_files, "_PROBE", f"import os\nos.kill(os.getpid(), {int(signal.SIGSEGV)})")
    with pytest.raises(ModelError, match=r"crashed \(SIGSEGV\)") as caught:
        engine_files.probe_tflite_in_child(file)
    assert str(file) in caught.value.message and "\n" not in caught.value.message
    monkeypatch.setattr(engine_files, "_PROBE", "raise SystemExit('Model provided has model identifier ...')")
    with pytest.raises(ModelError, match="refused it: Model provided"):
        engine_files.probe_tflite_in_child(file)


def test_only_unvouched_tflite_files_are_probed(export_copy, monkeypatch):
    import xray_seg.serving.engines as engines

    probed = []
    monkeypatch.setattr(engines, "probe_tflite_in_child", probed.append)
    export = export_copy(True)
    shutil.copy(export / "model_float32.tflite", export / "model_copy.tflite")
    engines.load_engine(export, "tflite")
    assert probed == []
    engines.load_engine(export, "tflite", variant="model_copy.tflite")
    assert probed == [export / "model_copy.tflite"]


def test_a_tile_mismatch_without_a_window_does_not_blame_a_window():
    from xray_seg.core.errors import ModelError
    from xray_seg.inference.geometry import ScanGeometry
    from xray_seg.inference.tta import predict_probabilities

    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ModelError) as caught:
        predict_probabilities(lambda x: x, image, input_size=(32, 32), geometry=ScanGeometry(tile=(64, 64)))
    assert "its geometry tiles scans at 64x64" in caught.value.message and "window" not in caught.value.message
    with pytest.raises(ModelError, match="use window 32x32"):
        predict_probabilities(lambda x: x, image, input_size=(32, 32), window=(48, 48))
