"""Parity of the ONNX and OpenVINO exports with the Keras model, recorded in ``manifest.json``
beside the SavedModel's and the TFLite variants' (``max_abs_diff``, ``class_map_agreement``).

Each file is loaded as the station loads it (:mod:`xray_seg.serving.engines`) and given one
random uint8 tile of the model's input size; the reference is the Keras model's softmax on the
same pixels (:func:`xray_seg.serving.signatures.model_probabilities`), as for TFLite.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from xray_seg.serving.engines import OnnxEngine, OpenVINOEngine
from xray_seg.serving.signatures import model_probabilities

ENGINES = {"onnx": OnnxEngine, "openvino": OpenVINOEngine}
RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino"}  # the package that runs each file


def engine_parity(engine: str, file: Path, model, input_size, seed: int = 0) -> dict:
    """``{"test_size", "max_abs_diff", "class_map_agreement"}`` of ``file`` run by ``engine`` against ``model``.

    Writing ONNX needs tf2onnx and onnx, not ONNX Runtime; without the runtime the check is
    recorded as ``{"parity": "not checked: onnxruntime is not installed"}`` instead.
    """
    if importlib.util.find_spec(RUNTIMES[engine]) is None:
        return {"parity": f"not checked: {RUNTIMES[engine]} is not installed"}
    h0, w0 = int(input_size[0]), int(input_size[1])
    tile = np.random.default_rng(seed).integers(0, 256, size=(1, h0, w0, 3), dtype=np.uint8)
    reference = np.asarray(model_probabilities(model, tile.astype(np.float32)))
    got = ENGINES[engine](Path(file), (h0, w0)).probabilities(tile)
    return {
        "test_size": [h0, w0],
        "max_abs_diff": float(np.max(np.abs(got - reference))),
        "class_map_agreement": float(np.mean(got.argmax(-1) == reference.argmax(-1))),
    }
