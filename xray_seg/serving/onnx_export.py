"""The float one-tile networks beyond TFLite: ``OUT/model.onnx`` (Keras 3 through tf2onnx)
and ``OUT/openvino/model.xml`` converted from it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import tensorflow as tf

from xray_seg.core.fileio import atomic_path
from xray_seg.core.layouts import ExportLayout
from xray_seg.serving.export_source import ExportSource
from xray_seg.serving.formats import missing_onnx_packages, onnx_unavailable_error


def export_onnx(source: ExportSource, out_dir: Path, path: Path | None = None) -> Path:
    """``OUT/model.onnx`` (or ``path``) via Keras 3 ``model.export(format="onnx")`` (needs tf2onnx + onnx).

    The ONNX model is the Keras model as is: float32 ``[B, h0, w0, 3]`` raw pixels ->
    logits ``[B, h0, w0, K]`` (no resize, no softmax) for tiles of the training size; the
    caller tiles scans with the geometry rule (``export.json`` ``geometry``).
    """
    missing = missing_onnx_packages()
    if missing:
        raise onnx_unavailable_error(missing)
    h0, w0 = source.input_size
    # An explicit signature: Keras refuses a loaded model it has not called ("The model
    # provided has never called.") when it has to infer one.
    signature = [tf.TensorSpec([None, h0, w0, 3], tf.float32, name="images")]
    path = Path(path) if path is not None else ExportLayout(out_dir).onnx_model
    with atomic_path(path) as tmp:
        source.model.export(str(tmp), format="onnx", verbose=False, input_signature=signature)
    return path


def export_openvino(onnx_path: Path, out_dir: Path) -> Path:
    """``OUT/openvino/model.xml`` + ``.bin``: the ONNX model converted to OpenVINO IR (float32 weights).

    Written into a hidden folder and renamed into place. The IR takes the ONNX model's
    input (float32 ``[B, h0, w0, 3]`` raw pixels) and returns its logits; the station tiles
    with export.json ``geometry`` (:mod:`xray_seg.serving.engines`).
    """
    import openvino as ov  # lazy: optional package, only for --format openvino

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
