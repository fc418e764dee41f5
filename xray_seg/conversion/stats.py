"""Per-class pixel statistics of a VOC split and median-frequency class weights.

Median-frequency balancing (Eigen & Fergus, ICCV 2015, section 4.3):
``w_c = median_freq / freq_c`` with ``freq_c = (pixels of class c) / (total pixels of the
images that contain c)``; the median is over the classes that occur. Choices made here:

* ignore pixels (255) count in neither numerator nor denominator;
* a class that never occurs in the split gets weight 0.0 (it gives no training signal, and
  0 makes the absence visible instead of pretending to know its frequency);
* the statistics are computed in numpy from the mask PNGs (:func:`~xray_seg.conversion.voc.load_label_png`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xray_seg.conversion.voc import load_label_png, read_class_names, read_split
from xray_seg.core.constants import IGNORE_LABEL
from xray_seg.core.errors import DatasetError
from xray_seg.core.layouts import VocLayout

ABSENT_CLASS_WEIGHT = 0.0


@dataclass
class ClassStats:
    """Pixel and image counts per class of one split.

    Attributes:
        class_names: names in label order.
        pixels: ``[K]`` labelled pixels of each class.
        images: ``[K]`` number of images containing each class.
        pixels_of_images: ``[K]`` labelled (non-ignore) pixels of the images containing each class.
        ignore_pixels: pixels labelled 255.
        num_images: images in the split.
    """

    class_names: list[str]
    pixels: np.ndarray
    images: np.ndarray
    pixels_of_images: np.ndarray
    ignore_pixels: int
    num_images: int

    @property
    def labelled_pixels(self) -> int:
        return int(self.pixels.sum())

    @property
    def share(self) -> np.ndarray:
        """Fraction of all labelled pixels of the split that belong to each class."""
        return self.pixels / max(self.labelled_pixels, 1)

    @property
    def frequency(self) -> np.ndarray:
        """``freq_c`` of median-frequency balancing (0 for absent classes)."""
        return np.divide(
            self.pixels, self.pixels_of_images, out=np.zeros(len(self.pixels)), where=self.pixels_of_images > 0
        )


def compute_class_stats(voc_dir: str | Path, split: str = "train", *, progress: bool = True) -> ClassStats:
    """Count pixels and images per class over the masks of ``split``; DatasetError on a bad label."""
    from tqdm import tqdm

    names = read_class_names(voc_dir)
    k = len(names)
    layout = VocLayout(voc_dir)
    pixels = np.zeros(k, np.int64)
    images = np.zeros(k, np.int64)
    pixels_of_images = np.zeros(k, np.int64)
    ignore = 0
    stems = read_split(voc_dir, split)
    for stem in tqdm(stems, desc=f"class stats ({split})", unit="mask", disable=not progress):
        path = layout.mask_path(stem)
        if not path.is_file():
            raise DatasetError("mask listed in the split is missing", path=path, fix="re-run `xray-seg convert`")
        counts = np.bincount(load_label_png(path).ravel(), minlength=256)
        bad = [v for v in np.nonzero(counts[k:])[0] + k if v != IGNORE_LABEL]
        if bad:
            raise DatasetError(
                f"mask has labels {bad} but class_names.txt lists {k} classes (0..{k - 1}, 255 = ignore)",
                path=path,
                fix="fix class_names.txt or re-run `xray-seg convert`",
            )
        present = counts[:k] > 0
        pixels += counts[:k]
        images += present
        pixels_of_images += np.where(present, counts[:k].sum(), 0)
        ignore += int(counts[IGNORE_LABEL])
    return ClassStats(names, pixels, images, pixels_of_images, ignore, len(stems))


def median_frequency_weights(stats: ClassStats, absent_weight: float = ABSENT_CLASS_WEIGHT) -> np.ndarray:
    """``w_c = median(freq) / freq_c`` over present classes; ``absent_weight`` for absent ones."""
    freq = stats.frequency
    present = freq > 0
    weights = np.full(len(freq), float(absent_weight))
    if present.any():
        weights[present] = np.median(freq[present]) / freq[present]
    return weights


def weights_document(stats: ClassStats, split: str, weights: np.ndarray) -> dict:
    """The JSON written by ``data-stats --weights-out`` (the trainer reads ``class_weights``)."""
    return {
        "method": "median_frequency_balancing (Eigen & Fergus 2015)",
        "split": split,
        "absent_class_weight": ABSENT_CLASS_WEIGHT,
        "class_names": list(stats.class_names),
        "class_weights": [round(float(w), 6) for w in weights],
        "frequency": [float(f) for f in stats.frequency],
        "pixels": [int(p) for p in stats.pixels],
        "images": [int(i) for i in stats.images],
    }


def format_table(stats: ClassStats, weights: np.ndarray | None = None) -> str:
    """A plain-text table: one row per class, with totals underneath."""
    header = ["id", "class", "pixels", "share %", "images", "freq"] + (["weight"] if weights is not None else [])
    rows = []
    for c, name in enumerate(stats.class_names):
        row = [
            str(c),
            name,
            f"{int(stats.pixels[c]):,}",
            f"{100 * stats.share[c]:.3f}",
            str(int(stats.images[c])),
            f"{stats.frequency[c]:.5f}",
        ]
        if weights is not None:
            row.append(f"{weights[c]:.4f}")
        rows.append(row)
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    left = {1}

    def line(cells):
        return "  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(cells))

    out = [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]
    out.append("")
    out.append(
        f"images: {stats.num_images}   labelled pixels: {stats.labelled_pixels:,}   ignore (255) pixels: {stats.ignore_pixels:,}"
    )
    return "\n".join(out)
