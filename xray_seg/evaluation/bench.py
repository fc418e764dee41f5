"""FPS at batch 1, as in paper 1's Table 3: ``xray-seg bench``.

Two figures, each the median over ``runs`` timed calls after ``warmup`` untimed ones
(mmseg's benchmark also warms up first), with the spread (10th-90th percentile):

- **model-only FPS**: the model's forward pass on one image already in memory at its
  input size (what paper 1 reports);
- **end-to-end FPS**: read the file, decode it, predict (with the same TTA and window
  options as ``predict``), take the argmax and list the items found - what a station
  experiences per scan.

A station engine (``--engine``, :mod:`xray_seg.serving.engines`) is timed the same way: model
only is its ``probabilities`` on one tile (the first image cropped or padded with air to the
tile, no resize), end to end tiles each scan by the export's geometry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xray_seg.core.images import read_image_rgb
from xray_seg.evaluation.timing import time_calls
from xray_seg.inference.alarm_rule import find_items
from xray_seg.inference.loader import load_for_inference
from xray_seg.inference.strips import class_map_of
from xray_seg.inference.tta import predict_probabilities, resize_bilinear
from xray_seg.inference.tta_options import TTAOptions


def benchmark(model_path, image_paths: list[Path], *, runs: int = 30, warmup: int = 5, tta=None) -> dict:
    """Model-only and end-to-end FPS of a run folder, ``.keras`` file or SavedModel."""
    loaded = load_for_inference(model_path)
    tta = tta or TTAOptions()
    first = read_image_rgb(image_paths[0])
    size = loaded.input_size or first.shape[:2]
    engine = getattr(loaded.logits_fn, "probabilities", None)  # a station engine (serving/engines.py)
    image = crop_or_pad(first, size) if engine else predict_resize(first, size)
    batch = np.ascontiguousarray(np.broadcast_to(np.asarray(image, np.float32)[None], (1, *size, 3)))
    forward = engine or loaded.logits_fn
    model_only = time_calls(lambda i: forward(batch), runs, warmup)

    def end_to_end(i):
        image = read_image_rgb(image_paths[i % len(image_paths)])
        probs = predict_probabilities(
            loaded.logits_fn, image, input_size=loaded.input_size, geometry=loaded.geometry, **tta.as_kwargs()
        )
        class_map = class_map_of(probs)
        find_items(class_map, probs, loaded.class_names)

    full = time_calls(end_to_end, runs, warmup)
    print(
        f"model {loaded.name} ({getattr(loaded.logits_fn, 'name', 'keras')} engine, {loaded.source}), "
        f"input {size[0]}x{size[1]}, batch 1, "
        f"{runs} timed runs after {warmup} warm-up"
    )
    print(model_only.line("model only"))
    print(full.line("end to end"))
    return {
        "model": str(loaded.source),
        "engine": getattr(loaded.logits_fn, "name", None) or ("savedmodel" if loaded.keras_model is None else "keras"),
        "input_size": list(size),
        "runs": runs,
        "warmup": warmup,
        "model_only": model_only.as_dict(),
        "end_to_end": full.as_dict(),
    }


def crop_or_pad(image: np.ndarray, size) -> np.ndarray:
    """The top-left ``size`` = (h, w) of the image, padded with 255 (air) where it is smaller:
    one tile for an engine's model-only figure, without resizing (no Keras needed)."""
    h, w = int(size[0]), int(size[1])
    out = np.full((h, w, 3), 255.0, np.float32)
    crop = np.asarray(image, np.float32)[:h, :w]
    out[: crop.shape[0], : crop.shape[1]] = crop
    return out


def predict_resize(image: np.ndarray, size) -> np.ndarray:
    """The image resized (bilinear) to ``size`` = (h, w), as inference would feed it."""
    image = image.astype(np.float32)
    return image if tuple(image.shape[:2]) == tuple(size) else resize_bilinear(image, tuple(size))
