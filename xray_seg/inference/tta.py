"""Inference helpers: softmax probabilities with multi-scale/flip TTA and sliding windows.

``model`` is a Keras model or any callable mapping float32 ``[B, h, w, 3]`` pixels in 0..255 to
logits ``[B, h, w, K]`` (a dict output uses its ``"logits"`` entry), or a station engine
(:class:`xray_seg.serving.engines.TileEngine`) whose ``probabilities(tiles)`` is used as is.
Everything here is numpy plus ``keras.ops`` resizing, so it runs on any Keras backend.

:func:`predict_probabilities` predicts one image ``[H, W, 3]`` by the geometry rule of
:mod:`xray_seg.inference.geometry` (docs/architecture.md, "Geometry: how a scan reaches the
network"); :mod:`xray_seg.serving.signatures` does the same in TensorFlow ops, so class maps agree:

1. For every scale ``s`` in ``scales`` the image is resized (bilinear, half-pixel centres, no
   antialiasing, as mmseg's ``Resize`` + ``cv2``) to ``round(H*s*g) x round(W*s*g)``, ``g``
   the geometry's ``scale``; with ``flip=True`` its horizontal mirror is added.
2. Each variant is predicted at its size: with a tile size (the geometry's ``tile``, an
   explicit ``window=(h, w)``, or the model's fixed input size) by sliding windows every
   ``stride`` pixels (default the geometry's step), the last row/column flush with the border,
   an image smaller than the tile padded bottom/right with ``pad_value`` (default 255, air),
   tile probabilities blended with :meth:`ScanGeometry.tile_weights`, the pad cropped away;
   a model without a fixed input size and no tile given runs on the whole image at once.
3. Probabilities are flipped back, resized back to ``H x W`` (bilinear) and averaged over all
   variants (softmax first, then average, as mmseg's ``aug_test``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from xray_seg.core.errors import ConfigError, DatasetError, ModelError
from xray_seg.core.pixel_limit import MAX_PIXELS_ENV, check_pixels, max_pixels
from xray_seg.inference.geometry import (
    DEFAULT_BLEND_SIGMA,
    DEFAULT_OVERLAP,
    PAD_VALUE,
    ScanGeometry,
    axis_origins,
    size_pair,
)
from xray_seg.inference.strips import blend_tiles
from xray_seg.models.outputs import logits_of


def model_input_size(model) -> tuple[int, int] | None:
    """The fixed ``(height, width)`` a Keras model's first input requires, or None."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]), int(shape[2])


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float32."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def resize_bilinear(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``[H, W, C]`` to ``size=(h, w)`` (half-pixel centres), float32."""
    if tuple(array.shape[:2]) == tuple(size):
        return np.asarray(array, dtype=np.float32)
    from keras import ops  # lazy: station engines (ONNX, OpenVINO) predict through this module without Keras

    out = ops.image.resize(np.asarray(array, dtype=np.float32)[None], size, interpolation="bilinear", antialias=False)
    return np.asarray(ops.convert_to_numpy(out)[0], dtype=np.float32)


def forward_logits(model: Callable, batch: np.ndarray) -> np.ndarray:
    """Run ``model`` on a float32 batch ``[B, h, w, 3]`` and return numpy logits ``[B, h, w, K]``."""
    import keras  # lazy: station engines never reach here, and run without Keras

    batch = np.asarray(batch, dtype=np.float32)
    if isinstance(model, keras.Model):
        out = model.predict_on_batch(batch)
    else:
        out = model(batch)
    out = logits_of(out)
    from keras import ops

    out = np.asarray(ops.convert_to_numpy(out), dtype=np.float32)
    if out.ndim != 4 or out.shape[:3] != batch.shape[:3]:
        raise ModelError(
            f"the model mapped input {batch.shape} to {out.shape}; expected logits [B, h, w, K] at input size",
            fix="use a model that returns logits at input resolution",
        )
    return out


def tile_probabilities(model: Callable, batch: np.ndarray) -> np.ndarray:
    """Softmax probabilities ``[B, h, w, K]`` of a batch of tiles ``[B, h, w, 3]`` (0..255).

    ``model`` is a station engine (:class:`xray_seg.serving.engines.TileEngine`: anything
    with a ``probabilities(tiles)`` method, used as is, so no Keras is imported), or a
    logits model or callable (:func:`forward_logits`, then :func:`softmax`).
    """
    engine = getattr(model, "probabilities", None)
    if not callable(engine):
        return softmax(forward_logits(model, batch))
    batch = np.asarray(batch, dtype=np.float32)
    out = np.asarray(engine(batch), dtype=np.float32)
    if out.ndim != 4 or out.shape[:3] != batch.shape[:3]:
        raise ModelError(
            f"the engine {getattr(model, 'name', model)!r} mapped tiles {batch.shape} to {out.shape}; "
            "expected probabilities [B, h, w, K] at tile size",
            fix="use an engine whose tile size is the export's geometry tile",
        )
    return out


def _sliding_window(model, image, window, stride, batch_size, pad_value, blend_sigma) -> np.ndarray:
    """Rules 2-4 of the geometry in strips (:func:`xray_seg.inference.strips.blend_tiles`): the
    scan is never padded or copied whole, and only a band of tile rows of sums is alive."""
    h, w = image.shape[:2]
    wh, ww = window
    weights = ScanGeometry(tile=window, blend_sigma=blend_sigma).tile_weights()[..., None]
    H, W = max(h, wh), max(w, ww)
    origins = [(y, x) for y in axis_origins(H, wh, stride[0]) for x in axis_origins(W, ww, stride[1])]
    if len(origins) == 1:
        weights = np.ones_like(weights)  # one tile: its probabilities as they are
    return blend_tiles(
        lambda tiles: tile_probabilities(model, tiles), image, origins, window, weights, batch_size, pad_value
    )


def _predict_at_size(model, image, *, window, stride, batch_size, pad_value, blend_sigma) -> np.ndarray:
    """Probabilities ``[h, w, K]`` for one (already scaled/flipped) image."""
    if window is not None:
        return _sliding_window(model, image, window, stride, batch_size, pad_value, blend_sigma)
    return tile_probabilities(model, image[None])[0]


def check_image_array(image) -> np.ndarray:
    """An API image array as ``[H, W, 3]`` float32 pixels in 0..255, or one DatasetError with the fix.

    Grey ``[H, W]`` or ``[H, W, 1]`` is replicated to 3 channels, as the file reader does
    (:mod:`xray_seg.core.images`). Refused: non-numeric dtypes, other shapes or channel
    counts, empty images, NaN/inf, values outside 0..255 (16-bit data: scale to 8 bits as the
    file reader does, ``v >> 8``), float images in 0..1 (multiply by 255), and images over
    the pixel limit.
    """
    array = np.asarray(image)
    where = f"image array {array.dtype} {tuple(array.shape)}"
    fix_shape = "pass an [H, W, 3] (or grey [H, W]) array of 0..255 pixels, or an image file path"
    if array.dtype.kind not in "uif":
        raise DatasetError(f"{where}: pixels must be numbers, not {array.dtype}", fix=fix_shape)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        fix = "drop the alpha channel (image[..., :3])" if array.ndim == 3 and array.shape[-1] == 4 else fix_shape
        raise DatasetError(f"{where}: expected [H, W, 3] or grey [H, W]", fix=fix)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DatasetError(f"{where}: the image is empty", fix=fix_shape)
    check_pixels(array.shape[0], array.shape[1], "image array")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DatasetError(
            f"{where}: holds NaN or infinite pixels", fix="replace them (np.nan_to_num) before predicting"
        )
    low, high = float(array.min()), float(array.max())
    if array.dtype.kind in "ui" and (high > 255 or low < 0):
        raise DatasetError(
            f"{where}: pixels span {low:g}..{high:g}, outside 0..255",
            fix="scale 16-bit data to 8 bits ((image >> 8).astype(np.uint8), as the file reader does) or pass the file path",
        )
    if low < 0 or high > 255:
        raise DatasetError(f"{where}: pixels span {low:g}..{high:g}, outside 0..255", fix="pass 0..255 pixels")
    if array.dtype.kind == "f" and 0 < high <= 1.0:
        raise DatasetError(
            f"float image with max {high:g}: the model takes 0..255 pixels", fix="pass 0..255 pixels (multiply by 255)"
        )
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array.astype(np.float32)


def _as_rgb(image) -> np.ndarray:
    """``[H, W, 3]`` pixels: uint8 kept as it is (tiles are made float32 one at a time), else float32."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"expected an image [H, W, 3] (or grey [H, W]), got shape {image.shape}")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image if image.dtype == np.uint8 else image.astype(np.float32)


def _tiling(model, input_size, geometry, window, stride, pad_value):
    """``(window, stride, pad_value, base_scale, blend_sigma)`` from the geometry rule, an
    explicit window overriding its tiles; a model with a fixed input size takes only windows
    of that size."""
    fixed = tuple(input_size) if input_size is not None else model_input_size(model)
    if geometry is None and window is None and fixed is not None:
        geometry = ScanGeometry(tile=fixed)
    base_scale = 1.0 if geometry is None else geometry.scale
    blend_sigma = DEFAULT_BLEND_SIGMA if geometry is None else geometry.blend_sigma
    if pad_value is None:
        pad_value = PAD_VALUE if geometry is None else geometry.pad_value
    explicit = window is not None
    if window is None and geometry is not None:
        window = geometry.tile
        stride = geometry.step if stride is None else stride
    if window is not None:
        window = size_pair(window, "window")
        default_stride = tuple(max(1, round(v * (1.0 - DEFAULT_OVERLAP))) for v in window)
        stride = size_pair(stride, "stride") if stride is not None else default_stride
        if stride[0] > window[0] or stride[1] > window[1]:
            raise ConfigError(
                f"a sliding-window stride of {stride[0]}x{stride[1]} is larger than the window "
                f"{window[0]}x{window[1]} and would leave pixels unpredicted",
                fix="use a stride no larger than the window (default: 2/3 of it)",
            )
        if fixed is not None and fixed != window and not explicit:  # no --window: the model and its geometry disagree
            raise ModelError(
                f"the model takes {fixed[0]}x{fixed[1]} inputs but its geometry tiles scans at {window[0]}x{window[1]}",
                fix="use the model file its export wrote, or export the model again",
            )
        if fixed is not None and fixed != window:
            raise ModelError(
                f"the model takes {fixed[0]}x{fixed[1]} inputs but the sliding window is {window[0]}x{window[1]}",
                fix=f"use window {fixed[0]}x{fixed[1]}, or leave the window out to tile with the model size",
            )
    return window, stride, pad_value, base_scale, blend_sigma


def predict_probabilities(
    model: Callable,
    image: np.ndarray,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    window: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    batch_size: int = 4,
    input_size: tuple[int, int] | None = None,
    pad_value: float | None = None,
    geometry: ScanGeometry | None = None,
) -> np.ndarray:
    """Softmax probabilities ``[H, W, K]`` (float32) for one image ``[H, W, 3]``.

    See the module docstring for the procedure (mmseg-style multi-scale + flip TTA,
    sliding window, fixed-size models).

    Args:
        model: Keras model or callable, float32 ``[B, h, w, 3]`` in 0..255 -> logits.
        image: ``[H, W, 3]`` (or grey ``[H, W]``) uint8 or float pixels in 0..255.
        scales: image scale factors to average over (IFBFNet sec. 4.3.4 "MS" uses
            0.5..1.75); ``(1.0,)`` means no multi-scale.
        flip: also average the horizontally flipped image.
        window: sliding-window tile ``(h, w)`` (or an int); None for whole-image inference.
        stride: tile step ``(h, w)``; default 2/3 of the window (the geometry's overlap 1/3).
        batch_size: tiles per forward pass.
        input_size: the model's fixed input ``(h, w)``; read from a Keras model's input
            shape when None. A window must equal it. With no ``window`` and no
            ``geometry`` it is the tile (default :class:`ScanGeometry`).
        pad_value: pixel value used to pad images smaller than the window (default: the
            geometry's, 255 = air).
        geometry: the :class:`~xray_seg.inference.geometry.ScanGeometry` (scale, tile,
            overlap, pad value); an explicit ``window``/``stride`` overrides its tiles.
    """
    image = _as_rgb(image)
    window, stride, pad_value, base_scale, blend_sigma = _tiling(model, input_size, geometry, window, stride, pad_value)
    if not scales or any(float(s) <= 0 for s in scales):
        raise ValueError(f"scales must be positive numbers, got {scales}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    tiling = dict(window=window, stride=stride, batch_size=batch_size, pad_value=pad_value, blend_sigma=blend_sigma)
    check_scaled_pixels(image.shape[:2], scales, base_scale)
    return _average_variants(model, image, [float(s) * base_scale for s in scales], flip, tiling)


def check_scaled_pixels(size, scales, base_scale: float = 1.0) -> None:
    """ConfigError naming the TTA scale whose scaled scan ``round(H*s*g) x round(W*s*g)`` is over
    the pixel limit (:mod:`xray_seg.core.pixel_limit`), before anything is resized."""
    height, width = int(size[0]), int(size[1])
    limit = max_pixels()
    for scale in scales:
        factor = float(scale) * base_scale
        h, w = max(1, round(height * factor)), max(1, round(width * factor))
        if h * w > limit:
            raise ConfigError(
                f"--tta scale {float(scale):g} makes this {height}x{width} scan {h}x{w} = {h * w / 1e6:.1f} M pixels, "
                f"over the pixel limit of {limit / 1e6:.1f} M pixels",
                fix=f"use smaller --tta scales, or raise the limit with --max-pixels N (or {MAX_PIXELS_ENV}=N)",
            )


def _average_variants(model, image, factors, flip: bool, tiling: dict) -> np.ndarray:
    """Steps 1-3 of the module docstring: each scale factor (and its mirror with ``flip``)
    predicted at its size, brought back to ``H x W`` and averaged. One variant at native size
    is predicted from the scan as it is and returned as it is: no copy of the scan or the result."""
    height, width = image.shape[:2]
    total = None
    variants = 0
    for factor in factors:
        size = (max(1, round(height * factor)), max(1, round(width * factor)))
        scaled = image if size == (height, width) else resize_bilinear(image, size)
        for mirrored in (False, True) if flip else (False,):
            inp = np.ascontiguousarray(scaled[:, ::-1]) if mirrored else scaled
            probs = _predict_at_size(model, inp, **tiling)
            if mirrored:
                probs = probs[:, ::-1]
            probs = resize_bilinear(probs, (height, width))
            if total is None:
                total = probs
            else:
                total += probs
            variants += 1
    if variants > 1:
        total /= variants
    return total


def predict_class_map(model: Callable, image: np.ndarray, **kwargs) -> np.ndarray:
    """Class map ``[H, W]`` uint8: argmax of :func:`predict_probabilities` (same keyword args)."""
    return predict_probabilities(model, image, **kwargs).argmax(axis=-1).astype(np.uint8)


def batch_class_maps(model: Callable, images: np.ndarray, geometry: ScanGeometry | None, **kwargs) -> np.ndarray:
    """Class maps ``[B, H, W]`` for a batch ``[B, H, W, 3]`` under ``geometry``.

    A batch whose images are exactly one tile (or ``geometry`` None) is one forward pass
    and the argmax of its logits - the numbers validation gave before tiling existed;
    otherwise each image goes through :func:`predict_probabilities` (same keyword args).
    """
    images = np.asarray(images, dtype=np.float32)
    if geometry is None or geometry.is_single_tile(*images.shape[1:3]):
        return forward_logits(model, images).argmax(axis=-1)
    return np.stack(
        [
            predict_probabilities(model, image, geometry=geometry, input_size=geometry.tile, **kwargs).argmax(axis=-1)
            for image in images
        ]
    )
