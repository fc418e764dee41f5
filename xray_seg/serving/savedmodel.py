"""``OUT/savedmodel``: written atomically (a hidden folder renamed into place when complete),
then loaded back and compared with the Keras model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from xray_seg.core.fileio import write_json_atomic
from xray_seg.core.layouts import ExportLayout
from xray_seg.inference.tta import predict_probabilities
from xray_seg.serving.export_metadata import endpoint_arguments
from xray_seg.serving.export_source import ExportSource
from xray_seg.serving.signatures import add_serving_endpoints


def write_savedmodel(source: ExportSource, out_dir: Path, metadata: dict) -> Path:
    """Write ``OUT/savedmodel`` (with ``export.json``) atomically; returns its path."""
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
    h0, w0 = source.input_size
    size = (h0 + 13, max(8, w0 // 2 + 5))
    image = np.random.default_rng(seed).integers(0, 256, size=(1, *size, 3), dtype=np.uint8)
    loaded = tf.saved_model.load(str(path))
    got = loaded.signatures["serving_default"](images=tf.constant(image))
    ref = predict_probabilities(source.model, image[0], geometry=source.geometry, input_size=source.input_size)[None]
    diff = float(np.max(np.abs(got["probabilities"].numpy() - ref)))
    agree = float(np.mean(got["class_map"].numpy() == ref.argmax(-1)))
    return {"test_size": list(size), "max_abs_diff": diff, "class_map_agreement": agree}
