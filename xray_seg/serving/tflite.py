"""TFLite variants of a segmentation model, with parity and latency checks.

What a TFLite model takes (all variants): one **tile**, **uint8 ``[1, h0, w0, 3]``** RGB at
the model's fixed input size ``(h0, w0)`` (``model_info``/``export.json`` ``input_size``,
``geometry.tile``). It returns **float32 ``[1, h0, w0, K]`` softmax probabilities** of that
tile. The file does not tile a scan itself (static shapes); **the caller tiles on the host
with the one geometry rule** (:mod:`xray_seg.inference.geometry`, docs/architecture.md
"Geometry: how a scan reaches the network"), as the SavedModel does inside its graph: scale
by ``geometry.scale`` (1.0: none), pad a side shorter than the tile with 255 (air) at the
bottom/right, run the tiles at ``ScanGeometry(tile=(h0, w0)).tile_origins(H, W)``, average
their probabilities weighted by ``ScanGeometry.tile_weights()``, crop the pad, argmax. Resizing a whole scan to
``(h0, w0)`` instead squashes it and loses threats on long scans. The ONNX export is the
same one-tile network (float32 pixels in, logits out) and needs the same host-side tiling.

Variants (``tf.lite.TFLiteConverter.from_concrete_functions``, TFLite builtin ops only):

- ``float32``: no optimisation;
- ``float16``: weights stored as float16 (``Optimize.DEFAULT`` + ``supported_types=[float16]``);
  CPU kernels dequantise them to float32;
- ``int8_dynamic``: dynamic-range quantisation (``Optimize.DEFAULT``, no representative
  data): int8 weights, activations quantised on the fly where kernels support it.

Each variant is checked against the Keras model on the same input with
``tf.lite.Interpreter`` (max absolute probability difference and argmax agreement) and
timed on CPU (median of ``runs`` after ``warmup``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from xray_seg.core.fileio import write_bytes_atomic
from xray_seg.core.layouts import ExportLayout
from xray_seg.evaluation.timing import median_ms
from xray_seg.serving.signatures import model_probabilities

VARIANTS = ("float32", "float16", "int8_dynamic")


@dataclass
class TFLiteResult:
    variant: str
    path: str | None = None
    size_bytes: int | None = None
    max_abs_diff: float | None = None  # probabilities vs the Keras model
    argmax_agreement: float | None = None  # fraction of pixels with the same class
    latency_ms: float | None = None  # median, CPU, batch 1
    num_threads: int | None = None
    error: str | None = None  # the exact conversion/run error, when the variant failed

    def as_dict(self) -> dict:
        return asdict(self)


def fixed_size_function(model, input_size):
    """A frozen concrete function uint8 ``[1, h0, w0, 3]`` -> probabilities ``[1, h0, w0, K]``.

    The model's variables are folded into constants first
    (``convert_variables_to_constants_v2``). Without that, the converter keeps Keras 3's
    resource variables as TFLite ``READ_VARIABLE`` ops that are never initialised, and the
    interpreter returns NaN (seen with TF 2.21: every output NaN, file 5x smaller).
    """
    h0, w0 = int(input_size[0]), int(input_size[1])

    @tf.function(input_signature=[tf.TensorSpec([1, h0, w0, 3], tf.uint8, name="images")])
    def probabilities(images):
        return {"probabilities": model_probabilities(model, tf.cast(images, tf.float32))}

    return convert_variables_to_constants_v2(probabilities.get_concrete_function())


def convert(model, input_size, variant: str, concrete=None) -> bytes:
    """Convert ``model`` to a TFLite flatbuffer of ``variant`` (module docstring)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; use one of {VARIANTS}")
    concrete = concrete or fixed_size_function(model, input_size)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant in ("float16", "int8_dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def make_interpreter(model_bytes: bytes, num_threads: int | None = None):

    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": ai-edge-litert is not installed here
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=model_bytes, num_threads=num_threads or os.cpu_count() or 1)
    interpreter.allocate_tensors()
    return interpreter


def run_interpreter(interpreter, image: np.ndarray) -> np.ndarray:
    """Probabilities ``[1, h0, w0, K]`` for one uint8 image ``[1, h0, w0, 3]``."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


def check_variant(model_bytes: bytes, image: np.ndarray, reference: np.ndarray, *, warmup=2, runs=10, num_threads=None):
    """Parity with ``reference`` probabilities and CPU latency of one TFLite flatbuffer."""
    interpreter = make_interpreter(model_bytes, num_threads)
    probs = run_interpreter(interpreter, image)
    diff = float(np.max(np.abs(probs - reference)))
    agree = float(np.mean(probs.argmax(-1) == reference.argmax(-1)))
    latency = median_ms(lambda: run_interpreter(interpreter, image), warmup=warmup, runs=runs)
    return diff, agree, latency


def export_tflite_variants(model, input_size, out_dir, *, variants=VARIANTS, warmup=2, runs=10, seed=0, progress=None):
    """Write ``OUT/model_<variant>.tflite`` for each variant; a failing variant is recorded, not fatal.

    Returns a list of :class:`TFLiteResult` (``error`` holds the exact message of a failure).
    """
    out_dir = Path(out_dir)
    h0, w0 = int(input_size[0]), int(input_size[1])
    image = np.random.default_rng(seed).integers(0, 256, size=(1, h0, w0, 3), dtype=np.uint8)
    reference = np.asarray(model_probabilities(model, image.astype(np.float32)))
    concrete = fixed_size_function(model, input_size)
    threads = os.cpu_count() or 1
    results = []
    for variant in variants:
        if progress:
            progress(f"tflite {variant}")
        result = TFLiteResult(variant, num_threads=threads)
        try:
            data = convert(model, input_size, variant, concrete)
            path = ExportLayout(out_dir).tflite_model(variant)
            write_bytes_atomic(path, data)
            result.path, result.size_bytes = str(path), len(data)
            result.max_abs_diff, result.argmax_agreement, result.latency_ms = check_variant(
                data, image, reference, warmup=warmup, runs=runs, num_threads=threads
            )
        except Exception as exc:  # record the exact error and go on with the other variants
            result.error = f"{type(exc).__name__}: {exc}"
        results.append(result)
    return results
