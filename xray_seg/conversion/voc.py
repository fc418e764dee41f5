"""Reading and writing the VOC dataset that ``labelme2voc.py`` writes and every later stage reads.

The folder's file names (``JPEGImages/``, ``SegmentationClass/``, ``class_names.txt``,
``ImageSets/Segmentation/<split>.txt``, ...) are :class:`xray_seg.core.layouts.VocLayout`;
its module docstring draws the tree. Labels are 0 for background, 1..K-1 for the classes
in ``class_names.txt`` order and 255 (:data:`xray_seg.core.constants.IGNORE_LABEL`) for
ignore, everywhere in the project.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np

from xray_seg.core.constants import IGNORE_LABEL
from xray_seg.core.errors import DatasetError
from xray_seg.core.fileio import atomic_path, read_lines, write_json_atomic, write_text_atomic
from xray_seg.core.images import read_image_bytes
from xray_seg.core.layouts import VocLayout
from xray_seg.core.viz import voc_palette

SPLITS = ("train", "val", "trainval")


def read_class_names(voc_dir: str | Path) -> list[str]:
    """Class names in label order (index 0 is ``_background_``)."""
    path = VocLayout(voc_dir).class_names_file
    if not path.is_file():
        raise DatasetError(
            "class_names.txt is missing", path=path, fix="point at a folder written by `xray-seg convert`"
        )
    names = read_lines(path)
    if not names:
        raise DatasetError("class_names.txt is empty", path=path, fix="list _background_ then one class per line")
    return names


def read_split(voc_dir: str | Path, split: str) -> list[str]:
    """The stems listed in ``ImageSets/Segmentation/<split>.txt``."""
    path = VocLayout(voc_dir).split_file(split)
    if not path.is_file():
        raise DatasetError(
            f"split {split!r} not found",
            path=path,
            fix=f"use one of {', '.join(SPLITS)}, or re-run `xray-seg convert`",
        )
    stems = read_lines(path)
    if not stems:
        raise DatasetError(f"split {split!r} is empty", path=path, fix="re-run `xray-seg convert` with more images")
    repeated = sorted(stem for stem, n in Counter(stems).items() if n > 1)
    if repeated:  # each would be counted once per listing in every metric
        raise DatasetError(
            f"split {split!r} lists {len(repeated)} stem(s) more than once: {', '.join(repeated[:5])}",
            path=path,
            fix="list each stem once (e.g. `sort -u`), or re-run `xray-seg convert`",
        )
    return stems


def write_class_names(voc_dir: str | Path, names: list[str]) -> None:
    write_text_atomic(VocLayout(voc_dir).class_names_file, "\n".join(names) + "\n")


def write_split(voc_dir: str | Path, split: str, stems: list[str]) -> None:
    write_text_atomic(VocLayout(voc_dir).split_file(split), "".join(f"{s}\n" for s in stems))


SUBSETS_SOURCE = "the image-level flags of the annotations (Labelme's flags)"


def write_subsets(voc_dir: str | Path, subsets: dict[str, list[str]]) -> None:
    """``subsets.json``: for each image flag, the sorted stems whose annotation sets it true."""
    document = {"source": SUBSETS_SOURCE, "subsets": {name: sorted(stems) for name, stems in sorted(subsets.items())}}
    write_json_atomic(VocLayout(voc_dir).subsets_file, document)


def read_subsets(voc_dir: str | Path) -> dict[str, list[str]]:
    """``{subset: [stems]}`` from ``subsets.json``; ``{}`` when the folder has none."""
    import json

    path = VocLayout(voc_dir).subsets_file
    if not path.is_file():
        return {}
    try:
        subsets = json.loads(path.read_text(encoding="utf-8"))["subsets"]
        if not isinstance(subsets, dict) or not all(isinstance(v, list) for v in subsets.values()):
            raise ValueError("subsets is not a mapping of lists")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(
            f"subsets.json is not readable ({exc})", path=path, fix="re-run `xray-seg convert --resume` to rewrite it"
        ) from None
    return {str(name): [str(s) for s in stems] for name, stems in subsets.items()}


def save_label_png(path: str | Path, label: np.ndarray) -> None:
    """Write a label map as a VOC palette PNG, atomically.

    ``label`` may use -1 for ignore (labelme's npy convention); it is stored as 255.
    Values must lie in 0..254 or be ignore.
    """
    from PIL import Image

    label = np.asarray(label)
    out = np.where(label < 0, IGNORE_LABEL, label)
    if out.min() < 0 or out.max() > 255:
        raise ValueError(f"label values must be in [-1, 255], got [{label.min()}, {label.max()}]")
    img = Image.fromarray(out.astype(np.uint8), mode="P")
    img.putpalette(voc_palette().flatten().tolist())
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def load_label_png(path: str | Path) -> np.ndarray:
    """Read a palette PNG as its indices ``[H, W]`` uint8 (not as colours), through the one
    image reader (:func:`~xray_seg.core.images.read_image_bytes`: regular files only, bounded)."""
    from PIL import Image

    data = read_image_bytes(path, "mask")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode not in ("P", "L"):
                raise DatasetError(
                    f"mask is a {img.mode} image, not a palette/indexed PNG",
                    path=path,
                    fix="write masks as palette PNGs whose pixel values are class indices (xray-seg convert does)",
                )
            return np.asarray(img, dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot read mask ({exc})", path=path, fix="re-run `xray-seg convert`") from None
