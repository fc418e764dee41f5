"""``xray-seg export``: a trained model as a SavedModel for inspection stations, plus TFLite/ONNX.

Input: a run folder (``RUN/best_model.keras`` + ``class_names.txt`` + ``config.yaml``) or a bare
``.keras`` file, loaded by :mod:`xray_seg.inference.loader`. Output layout (what each file holds,
for a station: docs/station.md, "Deploying to an inspection station")::

    OUT/savedmodel/                  SavedModel: serving_default, serve_encoded, model_info, serve_tiles
                                     (:mod:`xray_seg.serving.signatures`) + export.json
    OUT/savedmodel_optimized/        the same signatures, batch norm folded (serving.optimize)
    OUT/model_{float32,float16,int8_dynamic}.tflite   one-tile TFLite variants (serving.tflite)
    OUT/model.onnx                   only with --format onnx (tf2onnx + onnx installed)
    OUT/openvino/model.{xml,bin}     only with --format openvino (implies onnx)
    OUT/model_int8.{tflite,onnx}     only with tflite_int8 / onnx_int8 and --calibration, and only
                                     if the accuracy gate accepts them (serving.quantize)
    OUT/manifest.json                export.json + every artefact: size, parity, latency or error

``export.json`` keys: ``class_names``, ``palette``, ``input_size`` ``[h0, w0]``, ``model_name``,
``alarm`` (the calibrated rule, else :mod:`xray_seg.inference.alarm_rule`'s defaults),
``geometry`` (:meth:`xray_seg.inference.geometry.ScanGeometry.as_dict`), ``config_digest``,
``metrics``, the TensorFlow/Keras/xray-seg versions, the signatures, with int8 formats ``int8``, and
``engine_files``: the SHA-256 and size of each TFLite, ONNX and OpenVINO file, which the station
engines check before their runtime reads the file (:mod:`xray_seg.inference.engine_files`).

Invariants: the SavedModel is written to a hidden folder in ``OUT`` and renamed into place when
complete (a cut-off export leaves no half SavedModel); a non-empty ``OUT`` is refused without
``force``; the written SavedModel is loaded back and compared with the Keras model
(``manifest.json`` ``savedmodel.max_abs_diff``); the TFLite variants, ONNX and OpenVINO files are
run on one tile and compared the same way (``tflite[i].max_abs_diff``, ``onnx.max_abs_diff``,
``openvino.max_abs_diff``, :mod:`~xray_seg.serving.engine_parity`).

This module runs the steps in order; each job has its module: formats and pre-load checks
(:mod:`~xray_seg.serving.formats`), the model (:mod:`~xray_seg.serving.export_source`),
``export.json`` (:mod:`~xray_seg.serving.export_metadata`), the SavedModel and its verification
(:mod:`~xray_seg.serving.savedmodel`), ONNX and OpenVINO (:mod:`~xray_seg.serving.onnx_export`),
int8 (:mod:`~xray_seg.serving.quantize`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf
from tqdm import tqdm

from xray_seg.core.errors import ModelError
from xray_seg.core.fileio import prepare_output_dir, swap_into_place, write_json_atomic, write_marker
from xray_seg.core.layouts import ExportLayout
from xray_seg.inference.engine_files import engine_file_digests
from xray_seg.inference.loader import model_folder
from xray_seg.serving.engine_parity import engine_parity
from xray_seg.serving.export_metadata import build_metadata
from xray_seg.serving.export_source import ExportSource, load_source
from xray_seg.serving.formats import DEFAULT_FORMATS, INT8_PACKAGES, check_export_target
from xray_seg.serving.onnx_export import export_onnx, export_openvino
from xray_seg.serving.optimize import signature_specs, write_optimized_savedmodel
from xray_seg.serving.quantize import GateSettings, export_int8
from xray_seg.serving.savedmodel import verify_savedmodel, write_savedmodel
from xray_seg.serving.tflite import export_tflite_variants


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
    voc = getattr(calibration, "voc_dir", calibration)
    formats = check_export_target(out_dir, formats, force=force, calibration=voc)
    out_dir = Path(out_dir)
    overlap = {"inputs": [class_names_file, voc], "may_lie_inside": [model_folder(model_path)]}
    prepare_output_dir(out_dir, force=force, dry_run=True, **overlap)  # before the (slow) model load
    source = load_source(model_path, class_names_file=class_names_file, input_size=input_size)
    target, out_dir = out_dir, _staging(out_dir, force, overlap)
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
        _record_engine_files(out_dir, result)
    except BaseException:
        if out_dir != target:  # the old export stays whole; the new half-made one goes
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    finally:
        bar.close()
        result.manifest = manifest
        if out_dir.is_dir():
            write_json_atomic(ExportLayout(out_dir).manifest, manifest)
    return result if out_dir == target else _swap_in(result, out_dir, target)


def _staging(out_dir: Path, force: bool, overlap: dict) -> Path:
    """Where to write: ``out_dir`` itself when it is new; with ``--force`` over an existing export, a
    hidden folder beside it, swapped in whole once complete, so a station reading the old export
    meanwhile never meets a half-deleted or half-written one (docs/data_safety.md)."""
    if not (out_dir.is_dir() and any(out_dir.iterdir())):
        return prepare_output_dir(out_dir, force=force, owner="export", **overlap)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export.", suffix=".tmp", dir=out_dir.parent))
    write_marker(staging, "export")
    return staging


def _swap_in(result: ExportResult, staging: Path, target: Path) -> ExportResult:
    """Put the complete export ``staging`` at ``target``; the paths it records are rewritten to ``target``."""
    old, new = str(staging), str(target)
    for file in [ExportLayout(staging).manifest, *staging.glob("*/export.json")]:
        text = file.read_text(encoding="utf-8")
        if old in text:
            write_json_atomic(file, json.loads(text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])))
    swap_into_place(staging, target)

    def moved(value):
        return Path(str(value).replace(old, new, 1)) if value is not None else None

    result.manifest = json.loads(json.dumps(result.manifest).replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]))
    result.out_dir, result.savedmodel, result.onnx = target, moved(result.savedmodel), moved(result.onnx)
    result.optimized, result.openvino = moved(result.optimized), moved(result.openvino)
    for item in result.tflite:
        item.path = str(moved(item.path)) if item.path else item.path
    for item in result.int8:
        item.file = str(moved(item.file)) if item.file else item.file
    return result


def _write_tile_models(source, out_dir, formats, result, manifest, bar, tflite_runs) -> None:
    """The float one-tile networks: the TFLite variants, ONNX and OpenVINO IR, as ``formats`` asks."""
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
        manifest["onnx"].update(engine_parity("onnx", result.onnx, source.model, source.input_size))
        bar.update()
    if "openvino" in formats:
        bar.set_postfix_str("openvino")
        result.openvino = export_openvino(result.onnx, out_dir)
        manifest["openvino"] = {"path": str(result.openvino), "size_bytes": _tree_size(result.openvino.parent)}
        manifest["openvino"].update(engine_parity("openvino", result.openvino, source.model, source.input_size))
        bar.update()


def _int8_step(source, out_dir, formats, result, manifest, bar, calibration, runs) -> None:
    """The int8 variants and their gate (:mod:`xray_seg.serving.quantize`), recorded in ``export.json``.

    ``onnx_int8`` quantises ``OUT/model.onnx``; without the ``onnx`` format that file is
    written to a hidden temporary name and removed afterwards.
    """
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


def _record_engine_files(out_dir: Path, result: ExportResult) -> None:
    """``export.json`` ``engine_files`` (module docstring), in every SavedModel's copy and the manifest."""
    result.metadata["engine_files"] = engine_file_digests(out_dir)
    for folder in (result.savedmodel, result.optimized):
        if folder is not None:
            write_json_atomic(ExportLayout.metadata_file(folder), result.metadata)


def _write_savedmodels(source: ExportSource, out_dir: Path, formats, result: ExportResult, manifest: dict, bar):
    """Today's SavedModel and the optimised one (:mod:`xray_seg.serving.optimize`), each verified
    against the Keras model; the optimised one's signatures are compared with today's."""
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
    for key, label, path in (("onnx", "ONNX", result.onnx), ("openvino", "OpenVINO IR", result.openvino)):
        entry = result.manifest.get(key, {})
        if path and "max_abs_diff" in entry:
            lines.append(
                f"{label} {path}  max |p - keras| {entry['max_abs_diff']:.2e}  "
                f"argmax agreement {entry['class_map_agreement']:.4f}"
            )
        elif path:
            lines.append(f"{label} {path}  parity {entry['parity']}" if "parity" in entry else f"{label} {path}")
    gate = result.metadata.get("int8", {}).get("gate", {})
    for variant in result.int8:
        lines.append("int8 " + variant.summary_line(gate.get("max_miou_drop_points", 1.0)))
    lines.append(f"manifest: {result.out_dir / 'manifest.json'}")
    return lines
