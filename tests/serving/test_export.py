"""xray-seg export: SavedModel signatures checked from a fresh TF-only process, TFLite parity,
metadata, output safety, ONNX error, and predict through the exported SavedModel."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from xray_seg.cli import main  # noqa: E402
from xray_seg.core.errors import ConfigError, ModelError, OutputExistsError  # noqa: E402

CLASS_NAMES = ["_background_", "gun", "knife"]
SIZE = (64, 64)


def _make_run(run_dir: Path, input_shape=(64, 64, 3)) -> Path:
    from xray_seg.core.config import save_config
    from xray_seg.core.fileio import write_json_atomic
    from xray_seg.models.registry import build_model
    from xray_seg.training.config import TrainConfig

    run_dir.mkdir(parents=True)
    model = build_model("cwf_deeplabv3plus", len(CLASS_NAMES), input_shape, width=0.125)
    model.save(run_dir / "best_model.keras")
    (run_dir / "class_names.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    cfg = TrainConfig()
    cfg.model.width = 0.125
    cfg.data.image_size = (64, 64)
    save_config(cfg, run_dir / "config.yaml")
    write_json_atomic(run_dir / "checkpoints" / "state.json", {"epochs_done": 3, "best_miou": 0.42, "best_epoch": 2})
    return run_dir


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export of a tiny fake run (SavedModel + all TFLite variants), shared by the tests."""
    from xray_seg.serving.exporter import export_model

    base = tmp_path_factory.mktemp("export")
    run = _make_run(base / "run")
    result = export_model(run, base / "out", formats=("savedmodel", "tflite"), tflite_runs=1, progress=False)
    return run, base / "out", result


def reference_outputs(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The geometry rule in numpy (xray_seg.inference.tta, not the serving graph): native
    resolution, pad to the 64x64 tile with air, overlapping tiles averaged; never squashed."""
    from xray_seg.inference.geometry import ScanGeometry
    from xray_seg.inference.tta import predict_probabilities

    geometry = ScanGeometry(tile=SIZE)
    probs = np.stack([predict_probabilities(model, image, geometry=geometry) for image in images])
    return probs, probs.argmax(-1).astype(np.uint8)


def _load_keras(path: Path):
    import keras

    from xray_seg.models.registry import import_custom_objects

    import_custom_objects()
    return keras.models.load_model(path, compile=False)


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


# The station's side: TensorFlow and numpy only, no xray_seg, no Keras model code.
STATION = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    savedmodel, inputs, out = sys.argv[1], sys.argv[2], sys.argv[3]
    data = np.load(inputs, allow_pickle=False)
    loaded = tf.saved_model.load(savedmodel)
    serve = loaded.signatures["serving_default"]
    encoded_fn = loaded.signatures["serve_encoded"]
    info = {}
    for key, value in loaded.signatures["model_info"]().items():
        value = value.numpy()  # strings come back as bytes (scalars) or object arrays of bytes
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif value.dtype == object:
            value = [b.decode("utf-8") for b in value]
        info[key] = value if isinstance(value, (str, list)) else np.asarray(value).tolist()
    results, errors = {}, {}
    for key in sorted(k for k in data.files if k.startswith("images")):
        for name, value in serve(images=tf.constant(data[key])).items():
            results[f"{key}/{name}"] = value.numpy()
    blobs = [bytes(b) for b in data["encoded"]]
    for name, value in encoded_fn(encoded=tf.constant(blobs)).items():
        results[f"encoded/{name}"] = value.numpy()
    bad = {
        "float": lambda: serve(images=tf.zeros([1, 32, 32, 3], tf.float32)),
        "rank3": lambda: serve(images=tf.zeros([32, 32, 3], tf.uint8)),
        "gray1": lambda: serve(images=tf.zeros([1, 32, 32, 1], tf.uint8)),
        "empty": lambda: serve(images=tf.zeros([1, 0, 32, 3], tf.uint8)),
        "notimage": lambda: encoded_fn(encoded=tf.constant([b"GIF89a not a png at all"])),
        "scalar": lambda: encoded_fn(encoded=tf.constant(blobs[0])),
    }
    for name, call in bad.items():
        try:
            call()
            errors[name] = None
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
    np.savez(out, **results)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] == "xray_seg")
    print(json.dumps({"info": info, "errors": errors, "leaked": leaked}, default=str))
    """
)


@pytest.fixture(scope="module")
def station_run(exported, tmp_path_factory):
    """Run STATION in a fresh interpreter on images of several sizes; return its outputs."""
    _, out, _ = exported
    work = tmp_path_factory.mktemp("station")
    rng = np.random.default_rng(3)
    images = {
        "images_a": rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8),  # the model size
        "images_b": rng.integers(0, 256, (1, 37, 91, 3), dtype=np.uint8),  # smaller, wide
        "images_c": rng.integers(0, 256, (2, 130, 50, 3), dtype=np.uint8),  # larger, tall
    }
    rgb = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (80, 33), dtype=np.uint8)
    rgba = rng.integers(0, 256, (50, 50, 4), dtype=np.uint8)
    jpeg_src = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    blobs = [_png(rgb), _png(gray), _png(rgba), _jpeg(jpeg_src)]
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    decoded = [
        rgb,
        np.repeat(gray[..., None], 3, axis=-1),
        np.clip(np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)), 0, 255).astype(np.uint8),
        tf.io.decode_jpeg(blobs[3], channels=3).numpy(),
    ]
    np.savez(work / "inputs.npz", encoded=np.array(blobs, dtype=object).astype(bytes), **images)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, "-c", STATION, str(out / "savedmodel"), str(work / "inputs.npz"), str(work / "out.npz")],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return images, decoded, dict(np.load(work / "out.npz")), report


def test_layout_and_metadata(exported):
    from xray_seg.core.config import config_digest, load_config
    from xray_seg.core.viz import voc_palette
    from xray_seg.training.config import TrainConfig

    run, out, result = exported
    assert (out / "savedmodel" / "saved_model.pb").is_file()
    meta = json.loads((out / "savedmodel" / "export.json").read_text())
    assert meta["class_names"] == CLASS_NAMES
    assert meta["input_size"] == [64, 64]
    assert meta["model_name"] == "cwf_deeplabv3plus"
    assert meta["palette"] == voc_palette(3).tolist()
    assert meta["config_digest"] == config_digest(load_config(TrainConfig, run / "config.yaml"))
    assert meta["metrics"]["best_val_miou"] == pytest.approx(0.42)
    assert meta["tensorflow_version"] == tf.__version__
    assert meta["xray_seg_version"]
    # no partial folders left; the only dotfile is the marker that lets --force replace the folder
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".xray-seg-output"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["savedmodel"]["max_abs_diff"] < 1e-4


def test_tflite_variants_match_keras(exported):
    run, out, result = exported
    by_variant = {r.variant: r for r in result.tflite}
    assert set(by_variant) == {"float32", "float16", "int8_dynamic"}
    for r in result.tflite:
        assert r.error is None, r.error
        assert Path(r.path).is_file() and r.size_bytes == Path(r.path).stat().st_size
    assert by_variant["float32"].max_abs_diff < 1e-4
    assert by_variant["float16"].size_bytes < 0.7 * by_variant["float32"].size_bytes
    assert by_variant["int8_dynamic"].size_bytes < by_variant["float16"].size_bytes

    # The file takes uint8 [1, 64, 64, 3] and gives probabilities at that size.
    interpreter = tf.lite.Interpreter(model_path=str(out / "model_float32.tflite"))
    interpreter.allocate_tensors()
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert list(inp["shape"]) == [1, 64, 64, 3] and inp["dtype"] == np.uint8
    image = np.random.default_rng(5).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    interpreter.set_tensor(inp["index"], image)
    interpreter.invoke()
    got = interpreter.get_tensor(outp["index"])
    ref, _ = reference_outputs(_load_keras(run / "best_model.keras"), image)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_fresh_process_serving_default_matches_keras(exported, station_run):
    run, _, _ = exported
    images, _, results, report = station_run
    assert report["leaked"] == []  # the station never imported xray_seg (TensorFlow itself may load keras)
    model = _load_keras(run / "best_model.keras")
    for key, batch in images.items():
        probs, class_map = reference_outputs(model, batch)
        b, h, w = batch.shape[:3]
        assert results[f"{key}/probabilities"].shape == (b, h, w, 3)
        np.testing.assert_allclose(results[f"{key}/probabilities"], probs, atol=1e-4)
        assert results[f"{key}/class_map"].dtype == np.uint8
        np.testing.assert_array_equal(results[f"{key}/class_map"], class_map)
        counts = results[f"{key}/class_pixel_counts"]
        assert counts.dtype == np.int32
        np.testing.assert_array_equal(counts, [np.bincount(m.ravel(), minlength=3) for m in class_map])
        np.testing.assert_array_equal(results[f"{key}/image_sizes"], [[h, w]] * b)


def test_fresh_process_serve_encoded_mixed_sizes(exported, station_run):
    run, _, _ = exported
    _, decoded, results, _ = station_run
    model = _load_keras(run / "best_model.keras")
    sizes = results["encoded/image_sizes"]
    np.testing.assert_array_equal(sizes, [im.shape[:2] for im in decoded])
    max_h, max_w = sizes.max(axis=0)
    assert results["encoded/class_map"].shape == (4, max_h, max_w)
    for i, image in enumerate(decoded):
        h, w = image.shape[:2]
        probs, class_map = reference_outputs(model, image[None])
        np.testing.assert_allclose(results["encoded/probabilities"][i, :h, :w], probs[0], atol=1e-4)
        np.testing.assert_array_equal(results["encoded/class_map"][i, :h, :w], class_map[0])
        assert (results["encoded/class_map"][i, h:] == 255).all() and (
            results["encoded/class_map"][i, :, w:] == 255
        ).all()
        assert (results["encoded/probabilities"][i, h:] == 0).all()
        np.testing.assert_array_equal(
            results["encoded/class_pixel_counts"][i], np.bincount(class_map.ravel(), minlength=3)
        )


def test_fresh_process_model_info_and_errors(station_run):
    _, _, _, report = station_run
    info = report["info"]
    assert info["class_names"] == CLASS_NAMES and info["model_name"] == "cwf_deeplabv3plus"
    assert info["input_size"] == [64, 64] and info["num_classes"] == 3
    errors = report["errors"]
    assert all(errors.values()), errors  # every bad input raised
    assert "expected to be a uint8 tensor but is a float tensor" in errors["float"]
    assert "images must be a uint8 tensor [batch, height, width, 3]" in errors["rank3"]
    assert "got shape] [32 32 3]" in errors["rank3"]
    assert "3 channels" in errors["gray1"] and "got shape] [1 32 32 1]" in errors["gray1"]
    assert "height >= 1" in errors["empty"]
    assert "PNG or JPEG" in errors["notimage"]
    assert "1-D string tensor" in errors["scalar"]


def test_predict_uses_the_export(exported, tmp_path):
    from PIL import Image

    from xray_seg.inference.loader import load_for_inference

    _, out, _ = exported
    image = np.random.default_rng(9).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "scan.png")
    assert main(["predict", str(out / "savedmodel"), str(tmp_path / "scan.png"), "--out", str(tmp_path / "pred")]) == 0
    mask = np.asarray(Image.open(tmp_path / "pred" / "scan_mask.png"))
    loaded = tf.saved_model.load(str(out / "savedmodel"))
    expected = loaded.signatures["serving_default"](images=tf.constant(image[None]))["class_map"].numpy()[0]
    np.testing.assert_array_equal(mask, expected)
    items = json.loads((tmp_path / "pred" / "scan.json").read_text())
    assert items["height"] == 48 and items["width"] == 80
    assert load_for_inference(out).class_names == CLASS_NAMES  # OUT itself works too


def test_refuses_existing_output(exported, tmp_path):
    from xray_seg.serving.exporter import export_model

    run, out, _ = exported
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(OutputExistsError):
        export_model(run, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == before
    assert main(["export", str(run), "--out", str(out)]) == 2


def test_bare_keras_file_with_class_names_option(exported, tmp_path):
    run, _, _ = exported
    model_dir = tmp_path / "bare"
    model_dir.mkdir()
    keras_file = model_dir / "model.keras"
    keras_file.write_bytes((run / "best_model.keras").read_bytes())
    # No class_names.txt beside it: a clear error, exit code 2, nothing written.
    assert main(["export", str(keras_file), "--out", str(tmp_path / "x"), "--format", "savedmodel"]) == 2
    assert not (tmp_path / "x").exists()
    names = tmp_path / "names.txt"
    names.write_text("\n".join(CLASS_NAMES) + "\n")
    rc = main(
        [
            "export",
            str(keras_file),
            "--class-names",
            str(names),
            "--out",
            str(tmp_path / "exp"),
            "--format",
            "savedmodel",
        ]
    )
    assert rc == 0
    meta = json.loads((tmp_path / "exp" / "savedmodel" / "export.json").read_text())
    assert meta["class_names"] == CLASS_NAMES and meta["config_digest"] is None and meta["metrics"] is None
    assert not list((tmp_path / "exp").glob("*.tflite"))
    # Wrong number of class names is refused.
    names.write_text("_background_\ngun\n")
    with pytest.raises(ModelError, match="3 output classes"):
        from xray_seg.serving.export_source import load_source

        load_source(keras_file, class_names_file=names)


def test_any_size_model_takes_the_training_size(tmp_path):
    from xray_seg.serving.export_source import load_source

    run = _make_run(tmp_path / "run", input_shape=(None, None, 3))
    assert load_source(run).input_size == (64, 64)  # from config.yaml data.image_size
    assert load_source(run, input_size=(96, 128)).input_size == (96, 128)
    (run / "config.yaml").unlink()
    with pytest.raises(ModelError, match="--input-size"):
        load_source(run)


def test_onnx_missing_gives_a_clear_error(exported, tmp_path, capsys, monkeypatch):
    import xray_seg.serving.formats

    monkeypatch.setattr(xray_seg.serving.formats, "missing_onnx_packages", lambda: ["tf2onnx", "onnx"])
    run, _, _ = exported
    assert main(["export", str(run), "--out", str(tmp_path / "o"), "--format", "savedmodel,onnx"]) == 2
    err = capsys.readouterr().err
    assert "ONNX export needs" in err and "tf2onnx" in err and "--format" in err
    assert not (tmp_path / "o").exists()


def test_parse_formats():
    from xray_seg.serving.formats import DEFAULT_FORMATS, FORMATS, parse_formats

    assert parse_formats(None) == DEFAULT_FORMATS
    assert parse_formats("tflite, savedmodel,tflite") == ("tflite", "savedmodel")
    assert parse_formats("all") == FORMATS
    with pytest.raises(ConfigError, match="coreml"):
        parse_formats("savedmodel,coreml")


def test_onnx_export_matches_keras_in_onnxruntime(exported, tmp_path):
    """Keras 3 `model.export(format="onnx")` (tf2onnx) runs in onnxruntime like the Keras model."""
    from xray_seg.serving.formats import missing_onnx_packages

    if missing_onnx_packages():
        pytest.skip(f"not installed: {missing_onnx_packages()}")
    import onnxruntime as ort

    run, _, _ = exported
    assert main(["export", str(run), "--out", str(tmp_path / "o"), "--format", "onnx"]) == 0
    session = ort.InferenceSession(str(tmp_path / "o" / "model.onnx"), providers=["CPUExecutionProvider"])
    model = _load_keras(run / "best_model.keras")
    x = np.random.default_rng(1).uniform(0, 255, (2, *SIZE, 3)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model(x, training=False).numpy(), atol=1e-4)


def test_signatures_have_known_input_ranks(exported):
    """saved_model_cli and TF Serving's metadata show serving_default's images as uint8 [-1, -1, -1, 3]."""
    _, out, _ = exported
    loaded = tf.saved_model.load(str(out / "savedmodel"))
    specs = {
        name: loaded.signatures[name].structured_input_signature[1] for name in ("serving_default", "serve_encoded")
    }
    assert specs["serving_default"]["images"].shape.as_list() == [None, None, None, 3]
    assert specs["serving_default"]["images"].dtype == tf.uint8
    assert (
        specs["serve_encoded"]["encoded"].dtype == tf.string
    )  # unknown rank: the graph names a scalar (signatures.py)
