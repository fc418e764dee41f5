"""The per-file job of a conversion: read one item, rasterise it, write its VOC outputs atomically.

Run in the worker processes (:mod:`xray_seg.conversion.pool`); a bad item fails alone,
with the reason in its :class:`Result`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from xray_seg.conversion.instances import shapes_to_instances
from xray_seg.conversion.labelme import shapes_to_label
from xray_seg.conversion.labels import resolve_labels
from xray_seg.conversion.readers import Item, Reader
from xray_seg.conversion.voc import save_label_png
from xray_seg.core.constants import IGNORE_LABEL
from xray_seg.core.errors import DatasetError, XraySegError
from xray_seg.core.fileio import atomic_path
from xray_seg.core.layouts import VocLayout
from xray_seg.core.viz import overlay


@dataclass(frozen=True)
class Job:
    """One item to convert and how (picklable: it travels to a worker process)."""

    item: Item
    reader: Reader
    voc_dir: Path
    label_to_index: Mapping[str, int]
    unknown: str
    image_format: str
    npy: bool
    vis: bool
    others: str | None = None  # with --classes: what every other label becomes
    objects: bool = False


@dataclass(frozen=True)
class Result:
    """What became of one item: converted (``ok``), or why not."""

    json_path: str
    stem: str
    ok: bool
    reason: str = ""
    warnings: tuple[str, ...] = ()


def _save_image(path: Path, rgb: np.ndarray, fmt: str, quality: int | None = None) -> None:
    """Write an RGB image as JPEG (Pillow's default quality 75, as labelme2voc, unless ``quality``) or PNG.

    PNG goes through OpenCV's encoder at its default (fast) compression: on 512 x 512
    X-ray images it is about 6x faster than Pillow's default level 6 for files about 9 %
    larger, and the conversion is dominated by this encode.
    """
    if fmt == "JPEG":
        with atomic_path(path) as tmp:
            Image.fromarray(rgb).save(tmp, format="JPEG", **({} if quality is None else {"quality": quality}))
        return
    import cv2  # lazy: importing OpenCV starts threads, after which the pool no longer forks (core.processes)

    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"OpenCV could not encode {path.name} as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


def _write_npy(path: Path, label: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, label.astype(np.int32))


def _write_image(layout: VocLayout, stem: str, record, image_format: str, warnings: list[str]) -> None:
    """``JPEGImages/<stem>``: a lossless PNG, labelme2voc's JPEG, or the original bytes (``copy``)."""
    if image_format == "copy":
        why_not = record.copyable
        if why_not is None:
            suffix = ".png" if record.image_format == "PNG" else ".jpg"
            with atomic_path(layout.images_dir / f"{stem}{suffix}") as tmp:
                tmp.write_bytes(record.image_bytes)
        else:
            warnings.append(f"image not copied ({why_not}); wrote a lossless PNG instead")
            _save_image(layout.images_dir / f"{stem}.png", record.image, "PNG")
    elif image_format == "jpeg":
        _save_image(layout.images_dir / f"{stem}.jpg", record.image, "JPEG")
    else:
        _save_image(layout.images_dir / f"{stem}.png", record.image, "PNG")


def convert_one(job: Job) -> Result:
    """Convert one item (a JSON file, a COCO image); never raises for a bad one (returns the reason)."""
    warnings: list[str] = []
    key, stem = job.item.key, job.item.stem
    try:
        record = job.reader.read(job.item)
        warnings += record.warnings
        shapes, mapping = resolve_labels(
            record.shapes, job.label_to_index, others=job.others, unknown_mode=job.unknown, key=key, warnings=warnings
        )
        label = shapes_to_label(shapes, record.image.shape, mapping)
        instances = None
        if job.objects:
            try:
                instances = shapes_to_instances(shapes, record.image.shape, mapping)
            except ValueError as exc:
                raise DatasetError(str(exc), path=key, fix="convert with --no-object, or split the image") from None

        layout = VocLayout(job.voc_dir)
        _write_image(layout, stem, record, job.image_format, warnings)
        if job.npy:
            _write_npy(layout.npy_dir / f"{stem}.npy", label)
        if job.vis:
            mask = np.where(label < 0, IGNORE_LABEL, label).astype(np.uint8)
            _save_image(layout.vis_dir / f"{stem}.jpg", overlay(record.image, mask), "JPEG", quality=90)
        if instances is not None:
            save_label_png(layout.object_path(stem), instances)
        # The class PNG is written last: its presence marks a finished stem.
        save_label_png(layout.mask_path(stem), label)
    except XraySegError as exc:
        reason = exc.problem if exc.path == key else exc.message
        if exc.fix and exc.path == key:
            reason = f"{reason.rstrip('.')}. Fix: {exc.fix}"
        return Result(key, stem, False, reason, tuple(warnings))
    except Exception as exc:  # one bad file must not stop the run; say what happened
        return Result(key, stem, False, f"{type(exc).__name__}: {exc}", tuple(warnings))
    return Result(key, stem, True, "", tuple(warnings))


__all__ = ["Job", "Result", "convert_one"]
