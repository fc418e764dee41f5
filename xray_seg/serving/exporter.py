"""``xray-seg export``: a trained model as a SavedModel for inspection stations, plus TFLite/ONNX.

Input: a run folder (``RUN/best_model.keras`` + ``class_names.txt`` + ``config.yaml``,
see :mod:`xray_seg.training.trainer`) or a bare ``.keras`` file, resolved and loaded by the one
loader, :mod:`xray_seg.inference.loader` (class names from the file's own ``xray_seg.json``
entry, else ``--class-names``, else ``class_names.txt`` beside it). Output layout::

    OUT/savedmodel/                  SavedModel (keras.export.ExportArchive); signatures
                                     serving_default, serve_encoded, model_info
                                     (:mod:`xray_seg.serving.signatures`)
    OUT/savedmodel/export.json       metadata beside saved_model.pb (below)
    OUT/savedmodel_optimized/        the same signatures around the frozen network with batch
                                     norm folded into the convolutions (:mod:`xray_seg.serving.optimize`)
    OUT/model_float32.tflite         fixed-size TFLite variants (:mod:`xray_seg.serving.tflite`)
    OUT/model_float16.tflite
    OUT/model_int8_dynamic.tflite
    OUT/model.onnx                   only with --format onnx, where tf2onnx + onnx are installed
                                     (TFLite and ONNX are one-tile networks: the caller tiles
                                     with export.json "geometry", docs/architecture.md)
    OUT/openvino/model.{xml,bin}     only with --format openvino (implies onnx): the ONNX model
                                     converted to OpenVINO IR (float32 weights)
    OUT/model_int8.tflite            full-integer int8, only with --format tflite_int8 /
    OUT/model_int8.onnx              onnx_int8 and --calibration VOC, and only if the gate
                                     accepts them (:mod:`xray_seg.serving.quantize`)
    OUT/manifest.json                export.json + every artefact: size, parity, latency or error

``export.json`` holds what a station needs without xray-seg: ``class_names``,
``palette`` (VOC colour of each class), ``input_size`` ``[h0, w0]``, ``model_name``,
the alarm rule under ``"alarm"`` (thresholds, min_area, closing, and the PD / PFA of
its calibration: ``RUN/alarm_thresholds.json`` from ``xray-seg calibrate``, else the
documented defaults of :mod:`xray_seg.inference.alarm_rule`), ``geometry`` (the one geometry
rule the serving graph applies: scale, tile, overlap, step, pad;
:meth:`xray_seg.inference.geometry.ScanGeometry.as_dict`), the training ``config_digest`` (:func:`xray_seg.core.config.config_digest` of the run's
config; ``sha256`` of ``config.yaml`` when it no longer parses), ``metrics`` at export
time (``RUN/eval-val/metrics.json`` if present, else the best val mIoU of
``RUN/checkpoints/state.json``), the TensorFlow, Keras and xray-seg versions, a
description of the signatures and, with int8 formats, ``int8``: the calibration, the
accuracy gate and each int8 variant's latency, accuracy and ``accepted``
(:mod:`xray_seg.serving.quantize`). :func:`xray_seg.inference.loader.load_for_inference` loads
``OUT/savedmodel`` (or ``OUT``).

The SavedModel is written to a hidden folder in ``OUT`` and renamed into place when
complete, so a cut-off export never leaves a half SavedModel; an existing non-empty
``OUT`` is refused without ``force``. After writing, the SavedModel is loaded back and
its ``serving_default`` is compared with the Keras model (``manifest.json``
``savedmodel.max_abs_diff``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from xray_seg import __version__
from xray_seg.core.errors import ConfigError, ModelError, XraySegError
from xray_seg.core.layouts import EvalLayout, ExportLayout, RunLayout

FORMATS = ("savedmodel", "savedmodel_optimized", "tflite", "onnx", "openvino")
DEFAULT_FORMATS = ("savedmodel", "savedmodel_optimized", "tflite")
ONNX_PACKAGES = ("tf2onnx", "onnx")
OPENVINO_PACKAGES = ("openvino",)
INT8_PACKAGES = {"tflite_int8": (), "onnx_int8": ("tf2onnx", "onnx", "onnxruntime")}


@dataclass
class ExportSource:
    """A model to export and what is known about it."""

    model: object  # keras.Model
    model_file: Path
    class_names: list[str]
    model_name: str
    input_size: tuple[int, int]
    run_dir: Path | None = None
    config_digest: str | None = None
    config_digest_method: str | None = None
    metrics: dict | None = None
    alarm: dict | None = None  # AlarmRule.to_dict(); None: RUN/alarm_thresholds.json or the defaults

    @property
    def geometry(self):
        """How scans reach the network (:class:`xray_seg.inference.geometry.ScanGeometry`):
        native resolution, tiles of the training size."""
        from xray_seg.inference.geometry import ScanGeometry

        return ScanGeometry(tile=self.input_size)


@dataclass
class ExportResult:
    out_dir: Path
    savedmodel: Path | None
    metadata: dict
    tflite: list = field(default_factory=list)  # TFLiteResult
    onnx: Path | None = None
    optimized: Path | None = None  # OUT/savedmodel_optimized
    openvino: Path | None = None  # OUT/openvino/model.xml
    int8: list = field(default_factory=list)  # quantize.Int8Variant
    manifest: dict = field(default_factory=dict)


def parse_formats(text: str | None) -> tuple[str, ...]:
    """``"savedmodel,tflite"`` -> ``("savedmodel", "tflite")``; ``"all"`` = every float format.

    ``openvino`` converts the ONNX model, so it brings ``onnx`` with it (placed before it).
    The int8 formats (:data:`xray_seg.serving.quantize.INT8_FORMATS`) are named explicitly,
    alone or beside ``all``, because they need ``--calibration``.
    """
    from xray_seg.serving.quantize import INT8_FORMATS

    if not text:
        return DEFAULT_FORMATS
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if "all" in items:
        at = items.index("all")
        items[at : at + 1] = list(FORMATS)
    known = FORMATS + INT8_FORMATS
    bad = [t for t in items if t not in known]
    if bad or not items:
        raise ConfigError(
            f"unknown export format(s) {bad or text!r}", fix=f"use a comma-separated subset of {','.join(known)}"
        )
    if "openvino" in items and "onnx" not in items:
        items.insert(items.index("openvino"), "onnx")
    return tuple(dict.fromkeys(items))


def missing_onnx_packages() -> list[str]:
    """The Python packages ONNX export needs (Keras 3 ``model.export(format="onnx")``) that are missing."""
    import importlib.util

    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


def missing_packages(formats) -> list[str]:
    """The Python packages ``formats`` need (ONNX: tf2onnx, onnx; OpenVINO: openvino) that are missing."""
    import importlib.util

    missing = missing_onnx_packages() if "onnx" in formats else []
    if "openvino" in formats:
        missing += [name for name in OPENVINO_PACKAGES if importlib.util.find_spec(name) is None]
    return missing


def _config_digest(source) -> tuple[str, str] | tuple[None, None]:
    """Digest of the run's config, from the mapping :func:`resolve_source` parsed (no second read)."""
    from xray_seg.core.config import config_digest, load_config
    from xray_seg.training.config import TrainConfig

    if source.config_file is None:
        return None, None
    if source.config is not None:
        try:
            return config_digest(load_config(TrainConfig, None, source.config)), "xray_seg.core.config.config_digest"
        except XraySegError:
            pass
    return hashlib.sha256(source.config_file.read_bytes()).hexdigest(), "sha256(config.yaml)"


def _run_metrics(run_dir: Path) -> dict | None:
    """Metrics at export time: ``eval-val/metrics.json`` if present, else ``checkpoints/state.json``."""
    metrics_file = EvalLayout(RunLayout(run_dir).eval_dir("val")).metrics_json
    if metrics_file.is_file():
        data = json.loads(metrics_file.read_text(encoding="utf-8"))
        keep = ("pa", "mpa", "miou", "iou", "class_pa", "class_names", "absent_class_policy")
        return {"source": str(metrics_file), "split": "val", **{k: data[k] for k in keep if k in data}}
    state_file = RunLayout(run_dir).state_file
    if state_file.is_file():
        state = json.loads(state_file.read_text(encoding="utf-8"))
        return {
            "source": str(state_file),
            "best_val_miou": state.get("best_miou"),
            "best_epoch": state.get("best_epoch"),
        }
    return None


EXPORT_NAMES_FIX = "put class_names.txt beside it or pass --class-names FILE"


def load_export_model(path: str | Path, *, class_names_file: str | Path | None = None):
    """Load a run folder or ``.keras`` file for export (:func:`xray_seg.inference.loader.load_for_inference`).

    ``class_names_file`` gives the names of a ``.keras`` file that carries none; one that
    carries its own (``xray_seg.json``) must agree with it.
    """
    from xray_seg.inference.loader import load_for_inference, read_names_file, resolve_source

    source = resolve_source(path, exportable=True)
    given = read_names_file(class_names_file) if class_names_file else None
    loaded = load_for_inference(source, given, names_fix=EXPORT_NAMES_FIX, names_where=str(class_names_file or ""))
    if given is not None and list(given) != list(loaded.class_names):
        raise ModelError(
            f"the model carries the class names {loaded.class_names}, but {class_names_file} lists {given}",
            path=source.model_path,
            fix="leave --class-names out (the model knows its classes) or give the file it was trained with",
        )
    return loaded


def load_source(path, *, class_names_file: str | Path | None = None, input_size=None) -> ExportSource:
    """Resolve and load a run folder or ``.keras`` file (module docstring), or take a loaded one.

    ``path`` may be a :class:`~xray_seg.inference.loader.LoadedModel` from a ``.keras`` file
    (e.g. a :class:`~xray_seg.segmenter.Segmenter`'s), which is not loaded again.
    """
    from xray_seg.inference.loader import LoadedModel

    if isinstance(path, LoadedModel):
        loaded = path
        if loaded.keras_model is None or loaded.origin is None:
            raise ModelError(
                "an exported SavedModel cannot be exported again",
                path=loaded.source,
                fix="export the run folder or the .keras file it came from",
            )
    else:
        loaded = load_export_model(path, class_names_file=class_names_file)
    source, model_file = loaded.origin, loaded.source
    fixed = loaded.input_size
    if input_size is not None:
        size = (int(input_size[0]), int(input_size[1]))
        if fixed and fixed != size:
            raise ModelError(
                f"the model takes {fixed[0]}x{fixed[1]} inputs, not {size[0]}x{size[1]}",
                path=model_file,
                fix="leave --input-size out for a model with a fixed input size",
            )
    else:
        size = fixed or source.trained_size()
        if size is None:
            raise ModelError(
                "the model accepts any input size and no training image size is known",
                path=model_file,
                fix="pass --input-size HxW (the size the model was trained at)",
            )
    digest, method = _config_digest(source)
    metrics = _run_metrics(source.run_dir) if source.run_dir is not None else None
    return ExportSource(
        loaded.keras_model,
        model_file,
        list(loaded.class_names),
        loaded.name,
        size,
        source.run_dir,
        digest,
        method,
        metrics,
    )


ALARM_DOCS = {  # outputs of serving.alarm_graph.alarm_outputs
    "alarm": "bool [B], the bag alarms for some class (thresholds in model_info / export.json 'alarm')",
    "alarm_per_class": "bool [B, K]",
    "alarm_scores": "float32 [B, K], highest confidence of an item of the class with area >= min_area (0: none)",
}

SIGNATURE_DOCS = {
    "serving_default": {
        "inputs": {"images": "uint8 [B, H, W, 3] RGB, any H and W"},
        "outputs": {
            "class_map": "uint8 [B, H, W]",
            "probabilities": "float32 [B, H, W, K]",
            "class_pixel_counts": "int32 [B, K]",
            "image_sizes": "int32 [B, 2] (H, W)",
            **ALARM_DOCS,
        },
    },
    "serve_encoded": {
        "inputs": {"encoded": "string [B], PNG or JPEG file bytes; sizes may differ"},
        "outputs": {
            "class_map": "uint8 [B, Hmax, Wmax], padding 255",
            "probabilities": "float32 [B, Hmax, Wmax, K], padding 0",
            "class_pixel_counts": "int32 [B, K] (real pixels only)",
            "image_sizes": "int32 [B, 2] (H, W) of each image",
            **ALARM_DOCS,
        },
    },
    "model_info": {
        "inputs": {},
        "outputs": {
            "class_names": "string [K]",
            "input_size": "int32 [2]",
            "num_classes": "int32 []",
            "model_name": "string []",
            "xray_seg_version": "string []",
            "scale": "float32 []",
            "tile_size": "int32 [2]",
            "tile_overlap": "float32 []",
            "tile_step": "int32 [2]",
            "pad_value": "float32 []",
            "alarm_thresholds": "float32 [K]",
            "alarm_min_area": "int32 [K]",
            "alarm_closing": "int32 []",
            "alarm_calibrated": "bool []",
        },
    },
}


def build_metadata(source: ExportSource) -> dict:
    """The ``export.json`` dictionary (module docstring)."""
    import keras
    import tensorflow as tf

    from xray_seg.core.viz import voc_palette

    k = len(source.class_names)
    return {
        "format_version": 1,
        "model_name": source.model_name,
        "class_names": list(source.class_names),
        "num_classes": k,
        "palette": voc_palette(k).tolist(),
        "input_size": list(source.input_size),
        "config_digest": source.config_digest,
        "config_digest_method": source.config_digest_method,
        "metrics": source.metrics,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "xray_seg_version": __version__,
        "source": str(source.model_file),
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "signatures": SIGNATURE_DOCS,
        "geometry": source.geometry.as_dict(),
        "rgba_policy": "alpha composited over white; grey replicated to RGB",
        "alarm": source_alarm(source),
    }


def source_alarm(source: ExportSource) -> dict:
    """The alarm rule to export: the source's, ``RUN/alarm_thresholds.json``, or the defaults."""
    from xray_seg.inference.alarm_rule import load_rule

    if source.alarm is None:
        source.alarm = load_rule(source.run_dir or source.model_file.parent, source.class_names).to_dict()
    return source.alarm


def endpoint_arguments(source: ExportSource) -> dict:
    """What both SavedModels' signatures are built from (``add_serving_endpoints`` keywords)."""
    return {
        "input_size": source.input_size,
        "class_names": source.class_names,
        "model_name": source.model_name,
        "version": __version__,
        "geometry": source.geometry,
        "alarm": source_alarm(source),
    }


def write_savedmodel(source: ExportSource, out_dir: Path, metadata: dict) -> Path:
    """Write ``OUT/savedmodel`` (with ``export.json``) atomically; returns its path."""
    import keras

    from xray_seg.core.fileio import write_json_atomic
    from xray_seg.serving.signatures import add_serving_endpoints

    final = ExportLayout(out_dir).savedmodel_dir
    partial = ExportLayout(out_dir).savedmodel_partial
    shutil.rmtree(partial, ignore_errors=True)
    try:
        archive = keras.export.ExportArchive()
        archive.track(source.model)
        add_serving_endpoints(archive, source.model, **endpoint_arguments(source))
        archive.write_out(str(partial), verbose=False)
        write_json_atomic(ExportLayout.metadata_file(partial), metadata)
        os.replace(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def verify_savedmodel(path: Path, source: ExportSource, seed: int = 0) -> dict:
    """Load the SavedModel back and compare ``serving_default`` with the Keras model.

    The test image is deliberately not at the model size (taller: two tiles; narrower:
    padded), so the geometry rule is exercised; the reference is the same rule in numpy
    (:func:`xray_seg.inference.tta.predict_probabilities`).
    """
    import tensorflow as tf

    from xray_seg.inference.tta import predict_probabilities

    h0, w0 = source.input_size
    size = (h0 + 13, max(8, w0 // 2 + 5))
    image = np.random.default_rng(seed).integers(0, 256, size=(1, *size, 3), dtype=np.uint8)
    loaded = tf.saved_model.load(str(path))
    got = loaded.signatures["serving_default"](images=tf.constant(image))
    ref = predict_probabilities(source.model, image[0], geometry=source.geometry, input_size=source.input_size)[None]
    diff = float(np.max(np.abs(got["probabilities"].numpy() - ref)))
    agree = float(np.mean(got["class_map"].numpy() == ref.argmax(-1)))
    return {"test_size": list(size), "max_abs_diff": diff, "class_map_agreement": agree}


def export_onnx(source: ExportSource, out_dir: Path, path: Path | None = None) -> Path:
    """``OUT/model.onnx`` (or ``path``) via Keras 3 ``model.export(format="onnx")`` (needs tf2onnx + onnx).

    The ONNX model is the Keras model as is: float32 ``[B, h0, w0, 3]`` raw pixels ->
    logits ``[B, h0, w0, K]`` (no resize, no softmax) for tiles of the training size; the
    caller tiles scans with the geometry rule (``export.json`` ``geometry``).
    """
    from xray_seg.core.fileio import atomic_path

    missing = missing_onnx_packages()
    if missing:
        raise onnx_unavailable_error(missing)
    import tensorflow as tf

    h0, w0 = source.input_size
    # An explicit signature: Keras refuses a loaded model it has not called ("The model
    # provided has never called.") when it has to infer one.
    signature = [tf.TensorSpec([None, h0, w0, 3], tf.float32, name="images")]
    path = Path(path) if path is not None else ExportLayout(out_dir).onnx_model
    with atomic_path(path) as tmp:
        source.model.export(str(tmp), format="onnx", verbose=False, input_signature=signature)
    return path


def onnx_unavailable_error(missing: list[str]) -> XraySegError:
    what = "OpenVINO export" if missing == ["openvino"] else "ONNX export"
    return XraySegError(
        f"{what} needs the Python package(s) {', '.join(missing)}, which are not installed "
        "(Keras 3 model.export(format='onnx') converts through tf2onnx; OpenVINO IR is converted from the ONNX file)",
        fix=f"install {' and '.join(missing)} in this environment, or leave onnx/openvino out of --format "
        f"(e.g. --format savedmodel,tflite)",
    )


def export_openvino(onnx_path: Path, out_dir: Path) -> Path:
    """``OUT/openvino/model.xml`` + ``.bin``: the ONNX model converted to OpenVINO IR (float32 weights).

    Written into a hidden folder and renamed into place. The IR takes the ONNX model's
    input (float32 ``[B, h0, w0, 3]`` raw pixels) and returns its logits; the station tiles
    with export.json ``geometry`` (:mod:`xray_seg.serving.engines`).
    """
    import openvino as ov

    final = ExportLayout(out_dir).openvino_dir
    partial = final.parent / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir()
        model = ov.convert_model(str(onnx_path))
        ov.save_model(model, str(partial / "model.xml"), compress_to_fp16=False)
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final / "model.xml"


def int8_unavailable_error(fmt: str, missing: list[str]) -> XraySegError:
    return XraySegError(
        f"the {fmt} format needs the Python package(s) {', '.join(missing)}, which are not installed "
        "(it quantises the ONNX model with onnxruntime)",
        fix=f"install {' and '.join(missing)} in this environment, or leave {fmt} out of --format",
    )


def check_export_target(
    out_dir: str | Path, formats=DEFAULT_FORMATS, *, force: bool = False, calibration=None
) -> tuple[str, ...]:
    """The checks made before the (slow) model load: the formats, their packages, the
    calibration folder of int8 formats, an existing ``out_dir``."""
    import importlib.util

    from xray_seg.core.fileio import prepare_output_dir
    from xray_seg.serving.quantize import check_calibration

    formats = parse_formats(",".join(formats)) if not isinstance(formats, str) else parse_formats(formats)
    if missing_packages(formats):
        raise onnx_unavailable_error(missing_packages(formats))  # before any work or any output
    for fmt, packages in INT8_PACKAGES.items():
        missing = [name for name in packages if importlib.util.find_spec(name) is None]
        if fmt in formats and missing:
            raise int8_unavailable_error(fmt, missing)
    check_calibration(calibration, formats)
    out_dir = Path(out_dir)
    if not force and out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        prepare_output_dir(out_dir)  # raises OutputExistsError
    return formats


def export_model(
    model_path,
    out_dir: str | Path,
    *,
    formats=DEFAULT_FORMATS,
    force: bool = False,
    class_names_file: str | Path | None = None,
    input_size=None,
    tflite_runs: int = 10,
    progress: bool = True,
    calibration=None,
) -> ExportResult:
    """Export ``model_path`` (run folder, ``.keras`` or a loaded one, see :func:`load_source`) to ``out_dir``.

    ``calibration``: a VOC folder, or a :class:`xray_seg.serving.quantize.GateSettings`, for
    the int8 formats (calibration tiles from its train split, the gate on its val split).
    """
    from tqdm import tqdm

    from xray_seg.core.fileio import prepare_output_dir, write_json_atomic
    from xray_seg.inference.loader import model_folder

    voc = getattr(calibration, "voc_dir", calibration)
    formats = check_export_target(out_dir, formats, force=force, calibration=voc)
    out_dir = Path(out_dir)
    overlap = {"inputs": [class_names_file, voc], "may_lie_inside": [model_folder(model_path)]}
    prepare_output_dir(out_dir, force=force, dry_run=True, **overlap)  # before the (slow) model load
    source = load_source(model_path, class_names_file=class_names_file, input_size=input_size)
    out_dir = prepare_output_dir(out_dir, force=force, owner="export", **overlap)
    metadata = build_metadata(source)
    result = ExportResult(out_dir, None, metadata)
    manifest = {"export": metadata, "formats": list(formats)}
    steps = [f for f in formats] + [f"verify {f}" for f in formats if f.startswith("savedmodel")]
    bar = tqdm(total=len(steps), desc="export", unit="step", disable=not progress)
    try:
        _write_savedmodels(source, out_dir, formats, result, manifest, bar)
        _write_tile_models(source, out_dir, formats, result, manifest, bar, tflite_runs)
        if any(f in INT8_PACKAGES for f in formats):
            _int8_step(source, out_dir, formats, result, manifest, bar, calibration, tflite_runs)
    finally:
        bar.close()
        result.manifest = manifest
        write_json_atomic(ExportLayout(out_dir).manifest, manifest)
    return result


def _write_tile_models(source, out_dir, formats, result, manifest, bar, tflite_runs) -> None:
    """The float one-tile networks: the TFLite variants, ONNX and OpenVINO IR, as ``formats`` asks."""
    from xray_seg.serving.tflite import export_tflite_variants

    if "tflite" in formats:
        result.tflite = export_tflite_variants(
            source.model,
            source.input_size,
            out_dir,
            runs=tflite_runs,
            progress=lambda text: bar.set_postfix_str(text),
        )
        manifest["tflite"] = [r.as_dict() for r in result.tflite]
        bar.update()
    if "onnx" in formats:
        bar.set_postfix_str("onnx")
        result.onnx = export_onnx(source, out_dir)
        manifest["onnx"] = {"path": str(result.onnx), "size_bytes": result.onnx.stat().st_size}
        bar.update()
    if "openvino" in formats:
        bar.set_postfix_str("openvino")
        result.openvino = export_openvino(result.onnx, out_dir)
        manifest["openvino"] = {"path": str(result.openvino), "size_bytes": _tree_size(result.openvino.parent)}
        bar.update()


def _int8_step(source, out_dir, formats, result, manifest, bar, calibration, runs) -> None:
    """The int8 variants and their gate (:mod:`xray_seg.serving.quantize`), recorded in ``export.json``.

    ``onnx_int8`` quantises ``OUT/model.onnx``; without the ``onnx`` format that file is
    written to a hidden temporary name and removed afterwards.
    """
    from xray_seg.core.fileio import write_json_atomic
    from xray_seg.serving.quantize import GateSettings, export_int8

    settings = calibration if isinstance(calibration, GateSettings) else GateSettings(Path(calibration), runs=runs)
    scratch = out_dir / ".model_float.onnx"
    write_json_atomic(ExportLayout(out_dir).manifest, manifest)  # the engines read the export's metadata

    def float_onnx():
        return result.onnx if result.onnx is not None else export_onnx(source, out_dir, scratch)

    try:
        entry, result.int8 = export_int8(
            source, out_dir, formats, settings, float_onnx=float_onnx, progress=bar.set_postfix_str
        )
    finally:
        scratch.unlink(missing_ok=True)
    result.metadata["int8"] = entry
    manifest["int8"] = entry
    for folder in (result.savedmodel, result.optimized):
        if folder is not None:
            write_json_atomic(ExportLayout.metadata_file(folder), result.metadata)
    bar.update(sum(f in INT8_PACKAGES for f in formats))


def _write_savedmodels(source: ExportSource, out_dir: Path, formats, result: ExportResult, manifest: dict, bar):
    """Today's SavedModel and the optimised one (:mod:`xray_seg.serving.optimize`), each verified
    against the Keras model; the optimised one's signatures are compared with today's."""
    from xray_seg.serving.optimize import signature_specs, write_optimized_savedmodel

    if "savedmodel" in formats:
        bar.set_postfix_str("savedmodel")
        result.savedmodel = write_savedmodel(source, out_dir, result.metadata)
        bar.update()
        bar.set_postfix_str("verify savedmodel")
        manifest["savedmodel"] = {
            "path": str(result.savedmodel),
            "size_bytes": _tree_size(result.savedmodel),
            **verify_savedmodel(result.savedmodel, source),
        }
        bar.update()
    if "savedmodel_optimized" in formats:
        bar.set_postfix_str("savedmodel_optimized")
        result.optimized, info = write_optimized_savedmodel(source, out_dir, result.metadata)
        bar.update()
        bar.set_postfix_str("verify savedmodel_optimized")
        entry = {"path": str(result.optimized), "size_bytes": _tree_size(result.optimized), **info}
        entry.update(verify_savedmodel(result.optimized, source))
        if result.savedmodel is not None:
            import tensorflow as tf

            same = signature_specs(tf.saved_model.load(str(result.savedmodel))) == signature_specs(
                tf.saved_model.load(str(result.optimized))
            )
            if not same:
                raise ModelError(
                    "the optimised SavedModel's signatures differ from the SavedModel's",
                    path=result.optimized,
                    fix="export without savedmodel_optimized and report this",
                )
            entry["signatures_match_savedmodel"] = True
        manifest["savedmodel_optimized"] = entry
        bar.update()


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def summary_lines(result: ExportResult) -> list[str]:
    """Human-readable lines about what was written (the CLI prints them)."""
    lines = []
    for key, label in (("savedmodel", "SavedModel"), ("savedmodel_optimized", "SavedModel (optimised)")):
        sm = result.manifest.get(key)
        if sm:
            folded = f"  {sm['batch_norms_folded']} batch norms folded" if "batch_norms_folded" in sm else ""
            lines.append(
                f"{label}  {sm['path']}  {sm['size_bytes'] / 1e6:.1f} MB  "
                f"max |p - keras| {sm['max_abs_diff']:.2e} at {sm['test_size'][0]}x{sm['test_size'][1]}{folded}"
            )
    for r in result.tflite:
        if r.error:
            lines.append(f"TFLite {r.variant:<13} FAILED: {r.error.splitlines()[0][:300]}")
        else:
            lines.append(
                f"TFLite {r.variant:<13} {r.path}  {r.size_bytes / 1e6:.2f} MB  max |p - keras| {r.max_abs_diff:.2e}  "
                f"argmax agreement {r.argmax_agreement:.4f}  {r.latency_ms:.1f} ms (CPU, {r.num_threads} threads)"
            )
    if result.onnx:
        lines.append(f"ONNX {result.onnx}")
    if result.openvino:
        lines.append(f"OpenVINO IR {result.openvino}")
    gate = result.metadata.get("int8", {}).get("gate", {})
    for variant in result.int8:
        lines.append("int8 " + variant.summary_line(gate.get("max_miou_drop_points", 1.0)))
    lines.append(f"manifest: {result.out_dir / 'manifest.json'}")
    return lines
