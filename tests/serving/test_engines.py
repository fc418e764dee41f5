"""Station engines (xray_seg.serving.engines): every engine's class map on a non-square scan
against the Keras model, ONNX Runtime and OpenVINO without TensorFlow, predict/bench --engine,
and the one-line errors for a missing file or package."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from xray_seg.cli import main  # noqa: E402

SCAN = (64, 160)  # non-square: three overlapping 64x64 tiles along the width

# engine, variant, the agreement with the Keras model asserted
CASES = [
    ("keras", None, 1.0),
    ("savedmodel", None, 0.999),
    ("savedmodel_optimized", None, 0.999),
    ("tflite", "float32", 0.999),
    ("tflite", "float16", 0.999),
    # dynamic-range int8 quantises weights and activations on the fly: 0.99 measured here
    ("tflite", "int8_dynamic", 0.95),
    ("onnx", None, 0.999),
    ("openvino", None, 0.999),
]


def _scan(seed=3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*SCAN, 3), dtype=np.uint8)


@pytest.mark.parametrize(("engine", "variant", "floor"), CASES, ids=[f"{e}-{v}" if v else e for e, v, _ in CASES])
def test_engine_class_map_matches_keras(station_export, keras_reference, engine, variant, floor):
    from xray_seg.serving.engines import load_engine, read_export, scan_probabilities

    run, out, _ = station_export
    pytest.importorskip({"onnx": "onnxruntime", "openvino": "openvino"}.get(engine, "tensorflow"))
    tile_engine = load_engine(run if engine == "keras" else out, engine, variant=variant)
    assert tile_engine.tile == (64, 64)
    image = _scan()
    probs = scan_probabilities(tile_engine, image, read_export(out).geometry)
    ref = keras_reference(image)
    assert probs.shape == (*SCAN, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
    agreement = float(np.mean(probs.argmax(-1) == ref.argmax(-1)))
    assert agreement >= floor, f"{tile_engine.name}: {agreement:.4f} of pixels agree with Keras"


def test_engine_takes_tiles_of_its_size_only(station_export):
    from xray_seg.core.errors import ModelError
    from xray_seg.serving.engines import load_engine

    pytest.importorskip("onnxruntime")
    engine = load_engine(station_export[1], "onnx")
    out = engine.probabilities(np.zeros((2, 64, 64, 3), np.uint8))
    assert out.shape == (2, 64, 64, 3)
    with pytest.raises(ModelError, match="64, 64"):
        engine.probabilities(np.zeros((1, 64, 96, 3), np.uint8))


STATION = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from xray_seg.serving.engines import load_engine, read_export, scan_class_map

    out = sys.argv[1]
    image = np.random.default_rng(3).integers(0, 256, (64, 160, 3), dtype=np.uint8)
    maps = {}
    for name in ("onnx", "openvino"):
        engine = load_engine(out, name)
        maps[name] = scan_class_map(engine, image, read_export(out).geometry).tolist()
    heavy = sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules)
    print(json.dumps({"maps": maps, "heavy": heavy}))
    """
)


def test_onnx_and_openvino_run_without_tensorflow(station_export, keras_reference):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    _, out, _ = station_export
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", STATION, str(out)],
        capture_output=True,
        text=True,
        cwd=repo,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert data["heavy"] == []  # 'tensorflow' not in sys.modules, nor keras
    ref = keras_reference(_scan()).argmax(-1)
    for name, class_map in data["maps"].items():
        assert float(np.mean(np.asarray(class_map) == ref)) >= 0.999, name


def test_predict_and_bench_with_engine(station_export, tmp_path):
    """predict --engine onnx writes what predict through the run writes; bench --engine times it."""
    from PIL import Image

    pytest.importorskip("onnxruntime")
    run, out, _ = station_export
    scans = tmp_path / "scans"
    scans.mkdir()
    Image.fromarray(_scan()).save(scans / "bag.png")
    assert main(["predict", str(run), str(scans), "--out", str(tmp_path / "keras")]) == 0
    assert main(["predict", str(out), str(scans), "--out", str(tmp_path / "onnx"), "--engine", "onnx"]) == 0
    a, b = (np.asarray(Image.open(tmp_path / d / "bag_mask.png")) for d in ("keras", "onnx"))
    assert a.shape == SCAN and float(np.mean(a == b)) >= 0.999
    ja, jb = (json.loads((tmp_path / d / "bag.json").read_text()) for d in ("keras", "onnx"))
    assert jb["model"].endswith("model.onnx") and jb["alarm"] == ja["alarm"]
    assert jb["alarm_rule"] == ja["alarm_rule"]
    assert (tmp_path / "onnx" / "bag_overlay.png").is_file()
    bench = tmp_path / "bench.json"
    args = ["bench", str(out), str(scans), "--engine", "onnx", "--runs", "2", "--warmup", "1", "--out", str(bench)]
    assert main(args) == 0
    figures = json.loads(bench.read_text())
    assert figures["engine"] == "onnx" and figures["model_only"]["median_ms"] > 0


def test_missing_engine_file_is_one_line_naming_the_export(station_export, tmp_path, capsys):
    _, out, _ = station_export
    partial = tmp_path / "only_savedmodel"
    (partial / "savedmodel").mkdir(parents=True)
    (partial / "savedmodel" / "export.json").write_bytes((out / "savedmodel" / "export.json").read_bytes())
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "bag.png").write_bytes(b"")
    for engine, file in (("onnx", "model.onnx"), ("tflite", "model_float32.tflite"), ("openvino", "model.onnx")):
        rc = main(["predict", str(partial), str(scans), "--out", str(tmp_path / "p"), "--engine", engine])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert file in err and f"--format savedmodel,{engine}" in err
    assert not (tmp_path / "p").exists()


def test_missing_package_is_one_line(station_export, monkeypatch):
    from xray_seg.serving.engines import EngineError, load_engine

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(EngineError, match="pip install onnxruntime"):
        load_engine(station_export[1], "onnx")
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(EngineError, match="pip install openvino"):
        load_engine(station_export[1], "openvino")


def test_openvino_ir_is_written_and_preferred(station_export):
    from xray_seg.serving.engines import load_engine

    pytest.importorskip("openvino")
    _, out, result = station_export
    assert (out / "openvino" / "model.xml").is_file() and (out / "openvino" / "model.bin").is_file()
    assert result.manifest["openvino"]["path"].endswith("model.xml")
    assert load_engine(out, "openvino").path.name == "model.xml"
    assert load_engine(out / "model.onnx", "openvino").path.name == "model.onnx"  # a file given is used as is


def test_manifest_records_onnx_and_openvino_parity_with_keras(station_export):
    """manifest.json compares every engine with Keras, as it does the SavedModel and TFLite."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    _, out, result = station_export
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for engine in ("onnx", "openvino"):
        entry = manifest[engine]
        assert entry["test_size"] == [64, 64]  # the station tile (tests/serving/conftest.py)
        assert 0.0 <= entry["max_abs_diff"] < 1e-3, (engine, entry)
        assert entry["class_map_agreement"] >= 0.99, (engine, entry)
        assert entry == result.manifest[engine]
