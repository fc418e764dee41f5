"""The one geometry rule: how a scan of any shape reaches the network, never squashed (the
rule, its users and why the Gaussian blend: docs/architecture.md, "Geometry: how a scan reaches
the network").

Validation during training, ``evaluate``, ``predict`` and both SavedModel signatures bring a
scan ``[H, W, 3]`` to the network the same way:

1. **Scale** by ``scale`` (scanner pixel -> training pixel; default 1.0 = no resize) to
   ``round(H*scale) x round(W*scale)``, bilinear, half-pixel centres, no antialiasing.
2. **Pad** a side shorter than the tile at the bottom/right with ``pad_value`` (255: air) up to
   the tile (the training input size, a multiple of the network's output stride).
3. **Tiles** of ``tile`` ``(h0, w0)`` start every ``step = round(tile * (1 - overlap))`` pixels
   (default overlap 1/3, mmsegmentation's ``slide``); the last row/column is shifted back to
   end flush with the border. A scan of exactly the tile size is one plain forward pass.
4. **Blend.** Tile softmax probabilities are averaged with a Gaussian weight per tile pixel
   (nnU-Net): ``w(y, x) = g(y) g(x)``, ``g(i) = exp(-(i + 0.5 - t/2)^2 / (2 (blend_sigma *
   t)^2))``, ``blend_sigma`` = 1/8; weighted sums and weights are summed in row-major tile
   order, the pad is cropped, probabilities are resized back to ``H x W`` when ``scale != 1``;
   the class map is their argmax. ``blend_sigma = 0`` is the plain count-map average (exports
   without ``blend_sigma`` in their ``geometry``).

Implementations: :func:`xray_seg.inference.tta.predict_probabilities` (numpy, Keras models) and
:mod:`xray_seg.serving.signatures` (TensorFlow ops in the SavedModel). TFLite and ONNX models
are one-tile models: the caller tiles with this rule (:meth:`ScanGeometry.tile_origins`). The
export writes it into ``export.json`` (``geometry``) and ``model_info``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAD_VALUE = 255.0
DEFAULT_OVERLAP = 1.0 / 3.0
DEFAULT_BLEND_SIGMA = 0.125


def size_pair(value, what: str) -> tuple[int, int]:
    """An int or ``(height, width)`` -> ``(height, width)`` of positive ints; ValueError otherwise."""
    if isinstance(value, numbers.Integral):
        value = (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{what} must be a positive int or (height, width), got {value}")
    return value


def axis_origins(size: int, window: int, step: int) -> list[int]:
    """Start offsets of tiles along one axis: every ``step``, the last one flush with the end.

    ``size`` is the padded size (>= ``window``); ``size <= window`` gives ``[0]``.
    """
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, step))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def axis_weights(window: int, blend_sigma: float):
    """float32 ``[window]``: the 1-D Gaussian blend weight ``g`` of rule 4 (module docstring);
    all ones when ``blend_sigma`` is 0."""
    if blend_sigma <= 0:
        return np.ones(window, np.float32)
    centre = np.arange(window, dtype=np.float64) + 0.5 - window / 2.0
    return np.exp(-(centre**2) / (2.0 * (blend_sigma * window) ** 2)).astype(np.float32)


@dataclass(frozen=True)
class ScanGeometry:
    """How a scan reaches the network (module docstring).

    Args:
        tile: ``(height, width)`` of a tile: the model's training input size.
        scale: scanner pixel -> training pixel factor (1.0 = native resolution).
        overlap: fraction of a tile shared by neighbouring tiles, in ``[0, 1)``.
        pad_value: pixel value of the padding (255 = air).
        blend_sigma: the Gaussian blend's sigma as a fraction of the tile side (rule 4);
            0 averages tiles with a plain count map.
    """

    tile: tuple[int, int]
    scale: float = 1.0
    overlap: float = DEFAULT_OVERLAP
    pad_value: float = PAD_VALUE
    blend_sigma: float = DEFAULT_BLEND_SIGMA

    def __post_init__(self):
        object.__setattr__(self, "tile", size_pair(self.tile, "tile"))
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "overlap", float(self.overlap))
        object.__setattr__(self, "blend_sigma", float(self.blend_sigma))
        if self.blend_sigma < 0:
            raise ValueError(f"blend_sigma must be >= 0, got {self.blend_sigma}")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must lie in [0, 1), got {self.overlap}")

    @property
    def step(self) -> tuple[int, int]:
        """Tile step ``(h, w)``: ``round(tile * (1 - overlap))``, at least 1."""
        return tuple(max(1, round(t * (1.0 - self.overlap))) for t in self.tile)

    def tile_weights(self):
        """float32 ``[th, tw]``: the blend weight of each tile pixel (rule 4), ``g(y) g(x)``."""
        return (
            axis_weights(self.tile[0], self.blend_sigma)[:, None]
            * axis_weights(self.tile[1], self.blend_sigma)[None, :]
        )

    def scaled_size(self, height: int, width: int) -> tuple[int, int]:
        """Size of the scan after step 1 (scale)."""
        if self.scale == 1.0:
            return int(height), int(width)
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """Size of an already scaled scan after step 2 (pad to at least the tile)."""
        return max(int(height), self.tile[0]), max(int(width), self.tile[1])

    def tile_origins(self, height: int, width: int) -> list[tuple[int, int]]:
        """Row-major ``(y, x)`` origins of the tiles of an already scaled ``height x width`` scan."""
        ph, pw = self.padded_size(height, width)
        return [
            (y, x)
            for y in axis_origins(ph, self.tile[0], self.step[0])
            for x in axis_origins(pw, self.tile[1], self.step[1])
        ]

    def num_tiles(self, height: int, width: int) -> int:
        """Forward passes (tiles) one scan of ``height x width`` (before scaling) needs."""
        return len(self.tile_origins(*self.scaled_size(height, width)))

    def is_single_tile(self, height: int, width: int) -> bool:
        """True when the scan is exactly one tile with no resize and no pad (the plain forward pass)."""
        return self.scale == 1.0 and (int(height), int(width)) == self.tile

    def as_dict(self) -> dict:
        """The rule as written into ``export.json`` (``geometry``)."""
        return {
            "rule": "scale, pad bottom/right to the tile, overlapping tiles, average softmax weighted by "
            "a Gaussian per tile pixel, crop, resize back; never squash (docs/architecture.md)",
            "scale": self.scale,
            "tile": list(self.tile),
            "overlap": self.overlap,
            "step": list(self.step),
            "pad_value": self.pad_value,
            "blend_sigma": self.blend_sigma,
            "blend": "w(y, x) = g(y) g(x), g(i) = exp(-(i + 0.5 - t/2)^2 / (2 (blend_sigma t)^2)); 0 = count map",
            "pad": "bottom/right, up to the tile size (a multiple of the output stride)",
            "resize": "bilinear, half-pixel centres, no antialias; only when scale != 1",
        }

    @classmethod
    def from_dict(cls, data: dict) -> ScanGeometry:
        """Inverse of :meth:`as_dict` (extra keys ignored). A rule written before the Gaussian
        blend has no ``blend_sigma``: it averaged with a count map (``blend_sigma`` 0)."""
        return cls(
            tile=tuple(data["tile"]),
            scale=data.get("scale", 1.0),
            overlap=data.get("overlap", DEFAULT_OVERLAP),
            pad_value=data.get("pad_value", PAD_VALUE),
            blend_sigma=data.get("blend_sigma", 0.0),
        )


def geometry_for(loaded) -> ScanGeometry | None:
    """The rule for a :class:`xray_seg.inference.loader.LoadedModel`.

    Tiles of its fixed input size; for a Keras model that takes any size (trained on
    ``data.crop_size`` crops), tiles of the training size ``data.image_size`` from the
    ``config.yaml`` beside it - what its validation and its SavedModel use; None when no
    training size is known. A SavedModel carries its export's rule when it runs at native
    resolution (the host tiles, :mod:`xray_seg.inference.loader`), else None (the rule runs inside
    its graph); a station engine (:mod:`xray_seg.serving.engines`) carries the rule its export wrote.
    """
    if getattr(loaded, "geometry", None) is not None:
        return loaded.geometry
    if loaded.input_size:
        return ScanGeometry(tile=tuple(loaded.input_size))
    if loaded.keras_model is None:
        return None
    config = Path(loaded.source).parent / "config.yaml"
    if not config.is_file():
        return None
    import yaml  # lazy: only a Keras model without a fixed input size reads its config.yaml

    size = ((yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("data") or {}).get("image_size")
    return ScanGeometry(tile=(int(size[0]), int(size[1]))) if size else None
