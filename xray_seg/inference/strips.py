"""Long scans in strips: the host side of the geometry rule with memory bounded by the tile.

:func:`blend_tiles` is rule 3-4 of :mod:`xray_seg.inference.geometry` (tiles, Gaussian blend,
crop) written so that nothing the size of the padded scan is ever made besides the result:

- tiles are cut from the scan as it is (uint8 stays uint8) and padded with air one tile at a
  time, so the scan is never copied whole into a padded float32 array;
- the weighted sums and weights live in a *band* ``[th, W', K]`` (``W'`` the padded width) that
  holds the rows of the current tile row; before the tiles of the next tile row are added, the
  rows that no later tile reaches (tile rows start in increasing order) are divided by their
  weights and written into the result, and the band moves down. Every pixel receives the same
  additions in the same row-major tile order as a whole-scan sum, so the result is the same to
  the bit (``tests/inference/test_strips.py``).

:func:`class_map_of` takes the arg-max of ``[H, W, K]`` probabilities a strip of rows at a
time, straight into uint8 (numpy's arg-max alone would make an int64 ``[H, W]``, 8 bytes a pixel).

Peak memory of ``predict`` on one ``H x W`` scan with ``K`` classes (no TTA), measured in
docs/benchmarks.md, "Peak memory of predict", and written in :func:`predict_memory_bytes`:
``base + (4K + 14) H W`` bytes - the float32 probabilities (``4K``, the one scan-sized float
array, which the items' confidences read), the uint8 scan (3), class map (1), and the largest
transient, the per-class item search (10: the class's bool and uint8 masks, its closing, and
OpenCV's int32 component labels with its working copy; 38 bytes a pixel were measured for
K = 6 from 1 to 63 M pixels).
``base`` holds the libraries, the model and ``batch_size`` tiles of activations: it grows with
the network's width and the tile, not with the scan. The overlay is drawn after the
probabilities are freed, in strips (:func:`xray_seg.core.viz.overlay`), and PNG-encoded from
uint8 (about 20 bytes a pixel: Pillow holds RGB at 4 bytes a pixel; under ``4K + 14`` for K >= 2). TTA adds,
per variant, its probabilities at the variant's size and one resized copy (``4K (s^2 + 1) H W``).
"""

from __future__ import annotations

import numpy as np

STRIP_ROWS = 256  # rows per strip of the per-strip passes (arg-max, overlay)

# predict's peak RSS model (module docstring), measured: docs/benchmarks.md, "Peak memory of predict"
BASE_BYTES = 1_100_000_000  # Keras model, TensorFlow, cv2, Pillow, 4 tiles of activations (width 0.0625, 512 tiles)
SAVEDMODEL_BASE_BYTES = 1_700_000_000  # the same with a loaded SavedModel (its graph and functions) instead
TFLITE_BASE_BYTES = 1_000_000_000  # the same with the export's model_float32.tflite in TFLite (--engine tflite)
BYTES_PER_SCAN_PIXEL = 14  # uint8 scan 3, class map 1, item search 10; + 4K for the float32 probabilities


def predict_memory_bytes(height: int, width: int, num_classes: int, base: int = BASE_BYTES) -> int:
    """Peak RSS bound of ``predict`` (no TTA) on one ``height x width`` scan: ``base + (4K + 14) H W``
    bytes (module docstring). ``base`` is the fixed part: :data:`BASE_BYTES` for a Keras model,
    :data:`SAVEDMODEL_BASE_BYTES` for a SavedModel, :data:`TFLITE_BASE_BYTES` for an export's
    ``.tflite`` (``--engine tflite``), all measured with a 0.0625-width CWF-DeepLabv3+ and
    512x512 tiles; a wider network or larger tiles add their activations."""
    per_pixel = 4 * int(num_classes) + BYTES_PER_SCAN_PIXEL
    return int(base) + per_pixel * int(height) * int(width)


def strip_ranges(height: int, rows: int = STRIP_ROWS):
    """``(y0, y1)`` of consecutive strips of ``rows`` rows covering ``height``."""
    return [(y, min(y + rows, height)) for y in range(0, height, max(1, int(rows)))]


def class_map_of(probs: np.ndarray, rows: int = STRIP_ROWS) -> np.ndarray:
    """uint8 ``[H, W]`` arg-max of ``[H, W, K]`` probabilities, a strip of rows at a time."""
    out = np.empty(probs.shape[:2], np.uint8)
    for y0, y1 in strip_ranges(probs.shape[0], rows):
        out[y0:y1] = probs[y0:y1].argmax(axis=-1)
    return out


def cut_tiles(image: np.ndarray, origins, window, pad_value: float) -> np.ndarray:
    """float32 ``[n, th, tw, 3]``: the tiles at ``origins`` of the unpadded ``image``, the part
    past its bottom/right border filled with ``pad_value`` (geometry rule 2, one tile at a time)."""
    wh, ww = window
    tiles = np.full((len(origins), wh, ww, image.shape[-1]), pad_value, np.float32)
    for i, (y, x) in enumerate(origins):
        part = image[y : y + wh, x : x + ww]
        tiles[i, : part.shape[0], : part.shape[1]] = part
    return tiles


class _Band:
    """The running weighted sums and weights of the rows ``[top, top + th)`` (module docstring)."""

    def __init__(self, window, padded_width: int, num_classes: int, out: np.ndarray):
        self.rows = window[0]
        self.total = np.zeros((self.rows, padded_width, num_classes), np.float32)
        self.count = np.zeros((self.rows, padded_width, 1), np.float32)
        self.top = 0
        self.out = out

    def move_to(self, y: int) -> None:
        """Write the rows above ``y`` (no later tile reaches them) into ``out``; the band starts at ``y``."""
        done = y - self.top
        if done <= 0:
            return
        self._emit(min(done, self.rows))
        keep = self.rows - done
        if keep > 0:
            self.total[:keep] = self.total[done:]
            self.count[:keep] = self.count[done:]
        self.total[max(keep, 0) :] = 0.0
        self.count[max(keep, 0) :] = 0.0
        self.top = y

    def _emit(self, rows: int) -> None:
        height, width = self.out.shape[:2]
        end = min(self.top + rows, height)
        if end > self.top:
            n = end - self.top
            self.out[self.top : end] = (self.total[:n] / self.count[:n])[:, :width]

    def add(self, y: int, x: int, weighted: np.ndarray, weights: np.ndarray) -> None:
        wh, ww = weights.shape[:2]
        self.total[y - self.top : y - self.top + wh, x : x + ww] += weighted
        self.count[y - self.top : y - self.top + wh, x : x + ww] += weights

    def finish(self) -> np.ndarray:
        self._emit(self.rows)
        return self.out


def blend_tiles(tile_probabilities, image, origins, window, weights, batch_size: int, pad_value: float):
    """float32 ``[h, w, K]``: the blended tile probabilities of ``image`` ``[h, w, C]`` (module docstring).

    ``origins`` are the row-major tile origins of the padded scan, ``weights`` ``[th, tw, 1]``
    the blend weight of each tile pixel, ``tile_probabilities(tiles)`` the model on a batch.
    """
    h, w = image.shape[:2]
    padded_width = max(w, window[1])
    band = None
    for i in range(0, len(origins), batch_size):
        chunk = origins[i : i + batch_size]
        probs = tile_probabilities(cut_tiles(image, chunk, window, pad_value))
        if band is None:
            band = _Band(window, padded_width, probs.shape[-1], np.empty((h, w, probs.shape[-1]), np.float32))
        for (y, x), p in zip(chunk, probs):
            band.move_to(y)
            band.add(y, x, p * weights, weights)
    return band.finish()


__all__ = ["blend_tiles", "class_map_of", "cut_tiles", "predict_memory_bytes", "strip_ranges"]
