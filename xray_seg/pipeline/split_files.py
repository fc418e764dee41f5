"""The up-front check of a split's files, before any TF op runs (:mod:`xray_seg.pipeline.dataset`).

Every file of the split is checked: existence, the format's magic
bytes, every PNG chunk CRC and the IEND chunk (truncation and bit rot), the JPEG end
marker, image and mask sizes agreeing, the pixel limit (:mod:`xray_seg.core.pixel_limit`),
a full decode of every image and mask (corrupt compressed data), and every mask value
lying in ``0..K-1`` or 255. Each failure raises a
:class:`~xray_seg.core.errors.DatasetError` naming the file. Results are remembered per
(path, size, mtime) for the process. A file changed after the check still fails inside
the graph with a message carrying the file name, which
:func:`xray_seg.pipeline.dataset.dataset_error_from`
turns back into a DatasetError (``xray-seg train`` does).

Masks are 8-bit grey PNGs holding the labels, or palette PNGs with the VOC colour map
(:data:`MASK_VOC`, decoded by :func:`xray_seg.pipeline.decoding.decode_mask`) or a grey
identity palette; any other mask is refused naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from xray_seg.conversion.voc import read_class_names, read_split
from xray_seg.core.constants import IGNORE_LABEL, JPEG_MAGIC, PNG_MAGIC
from xray_seg.core.errors import ConfigError, DatasetError
from xray_seg.core.images import HEADER_BYTES, decode_fully, png_info, read_image_bytes
from xray_seg.core.layouts import VocLayout
from xray_seg.core.viz import voc_palette

MASK_GREY, MASK_VOC = 0, 1
_CHECKED: dict[tuple, tuple] = {}


@dataclass(frozen=True)
class SplitFiles:
    """The checked files of a split: paths, sizes ``(h, w)`` and mask encodings."""

    stems: list[str]
    images: list[str]
    masks: list[str]
    sizes: list[tuple[int, int]]
    mask_kinds: list[int]
    num_classes: int

    def __len__(self) -> int:
        return len(self.stems)


def _read_bounded(path: Path, what: str) -> bytes:
    """The file through the one image reader (:func:`~xray_seg.core.images.read_image_bytes`); a file
    longer than that by more than :data:`~xray_seg.core.images.HEADER_BYTES` is refused, since
    TensorFlow's reader later reads files whole (a 64x64 PNG with a 6 GiB tail)."""
    data = read_image_bytes(path, what)
    size = os.stat(path).st_size
    if size > len(data) + HEADER_BYTES:
        raise DatasetError(
            f"the file holds {size} bytes, far more than its {what} needs ({len(data)} bytes); "
            "the rest would be read whole by the training pipeline",
            path=path,
            fix="re-save the file without the trailing data (xray-seg convert re-encodes images)",
        )
    return data


def _check_image(path: Path) -> tuple[int, int]:
    """``(h, w)`` of a PNG or JPEG image that decodes completely; DatasetError naming it otherwise."""
    data = _read_bounded(path, "image")
    if data.startswith(PNG_MAGIC):
        size = png_info(path, data)[0]
        decode_fully(path, data, size, "PNG")
        return size
    if data.startswith(JPEG_MAGIC):
        if b"\xff\xd9" not in data[-64:]:
            raise DatasetError(
                "truncated JPEG (no end-of-image marker)",
                path=path,
                fix="replace the file or re-run `xray-seg convert`",
            )
        try:
            with Image.open(path) as img:
                size = img.size[1], img.size[0]
        except (OSError, SyntaxError) as exc:
            raise DatasetError(
                f"corrupt JPEG ({exc})", path=path, fix="replace the file or re-run `xray-seg convert`"
            ) from None
        decode_fully(path, data, size, "JPEG")
        return size
    raise DatasetError(
        "not a PNG or JPEG image", path=path, fix="convert the image to PNG or JPEG (xray-seg convert does)"
    )


def _labels_present(path: Path, data: bytes, size: tuple[int, int]) -> tuple[int, ...]:
    """The pixel values of a grey or palette mask (palette indices, as Pillow decodes them)."""
    values = decode_fully(path, data, size, "mask PNG")
    if values.ndim != 2:
        raise DatasetError(
            "mask does not decode to one channel", path=path, fix="write masks as palette or 8-bit grey PNGs"
        )
    return tuple(int(v) for v in np.flatnonzero(np.bincount(values.ravel(), minlength=256)))


def _check_mask(path: Path) -> tuple[tuple[int, int], int, tuple[int, ...]]:
    """``((h, w), MASK_GREY | MASK_VOC, label values present)`` of a label PNG; DatasetError naming it otherwise."""
    data = _read_bounded(path, "mask")
    size, depth, colour, palette = png_info(path, data)
    if colour == 0 and depth == 8:
        return size, MASK_GREY, _labels_present(path, data, size)
    if colour == 3:
        entries = np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3)
        if np.array_equal(entries, voc_palette(len(entries))):
            return size, MASK_VOC, _labels_present(path, data, size)
        if np.array_equal(entries, np.repeat(np.arange(len(entries), dtype=np.uint8)[:, None], 3, axis=1)):
            return size, MASK_GREY, _labels_present(path, data, size)
        raise DatasetError(
            "mask uses a palette other than the VOC colour map, so its colours cannot be read back as labels",
            path=path,
            fix="write masks with xray_seg.conversion.voc.save_label_png (xray-seg convert does) or as 8-bit greyscale label PNGs",
        )
    raise DatasetError(
        f"mask is not an indexed PNG (PNG colour type {colour}, bit depth {depth})",
        path=path,
        fix="write masks as palette PNGs whose pixel values are class indices (xray-seg convert does)",
    )


def _cached_check(path: Path, check):
    """``check(path)``, remembered per (path, size, mtime) for the process."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DatasetError(
            "file listed in the split is missing",
            path=path,
            fix="re-run `xray-seg convert`, or remove the stem from the split list",
        ) from None
    key = (str(path), stat.st_size, stat.st_mtime_ns, check.__name__)
    if key not in _CHECKED:
        _CHECKED[key] = check(path)
    return _CHECKED[key]


def scan_split(voc_dir: str | Path, split: str, *, num_shards: int = 1, shard_index: int = 0) -> SplitFiles:
    """Check and list the files of ``split`` (this shard's part); DatasetError naming any bad file."""
    layout = VocLayout(voc_dir)
    num_classes = len(read_class_names(voc_dir))
    stems = read_split(voc_dir, split)[shard_index::num_shards]
    if not stems:
        raise ConfigError(
            f"shard {shard_index} of {num_shards} of split {split!r} is empty",
            path=layout.split_file(split),
            fix="use fewer shards or add images",
        )
    images, masks, sizes, kinds = [], [], [], []
    for stem in stems:
        image_path = layout.image_path(stem)
        mask_path = layout.mask_path(stem)
        image_hw = _cached_check(image_path, _check_image)
        mask_hw, kind, labels = _cached_check(mask_path, _check_mask)
        bad = [v for v in labels if v >= num_classes and v != IGNORE_LABEL]
        if bad:
            raise DatasetError(
                f"mask has label value(s) {', '.join(map(str, bad[:8]))} outside 0..{num_classes - 1} and {IGNORE_LABEL} "
                f"(class_names.txt lists {num_classes} classes)",
                path=mask_path,
                fix="write masks whose pixel values are class indices (xray-seg convert does), or fix class_names.txt",
            )
        if tuple(image_hw) != tuple(mask_hw):
            raise DatasetError(
                f"mask is {mask_hw[0]}x{mask_hw[1]} but its image {image_path.name} is {image_hw[0]}x{image_hw[1]} (HxW)",
                path=mask_path,
                fix="re-run `xray-seg convert` so that image and mask come from the same annotation",
            )
        images.append(str(image_path))
        masks.append(str(mask_path))
        sizes.append(tuple(image_hw))
        kinds.append(kind)
    return SplitFiles(stems, images, masks, sizes, kinds, num_classes)


__all__ = ["MASK_GREY", "MASK_VOC", "SplitFiles", "scan_split"]
