"""One annotated scan as every source reads it (:class:`AnnotatedScan`), and the reading steps they share.

Every source of ``xray-seg convert`` (Labelme, COCO, PIXray; :mod:`xray_seg.conversion.sources`)
reads an annotated image into an :class:`AnnotatedScan`: the decoded ``[H, W, 3]`` uint8
image (:func:`xray_seg.core.images.decode_image`), its encoded bytes (for
``--image-format copy``) and its :class:`Shape` s in draw order. Every source maps onto
Labelme's shapes: polygons stay polygons, and decoded COCO masks (polygon or RLE) become
``mask`` shapes cropped to their box. ``Shape.group_id`` says which shapes form one
instance (:mod:`xray_seg.conversion.instances`). The rasteriser and writer consume that
record and never look at the source format.

Shared here: the JSON loader of the per-image formats (:func:`load_annotation_json`,
through the FIFO-safe :func:`~xray_seg.core.fileio.read_regular_file`), the image-file
read, the declared-size check and the record builder (:func:`build_scan`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.core.errors import DatasetError
from xray_seg.core.fileio import read_regular_file
from xray_seg.core.images import PLAIN_MODES, decode_image, read_image_bytes


@dataclass(frozen=True)
class Shape:
    """One Labelme shape.

    Args:
        label: the class name.
        shape_type: one of :data:`xray_seg.conversion.labelme.SHAPE_POINTS` (``polygon`` when the JSON has none).
        points: ``((x, y), ...)`` in pixel coordinates of the (EXIF-oriented) image.
        mask: for ``mask`` shapes, the boolean ``[h, w]`` mask of the bounding box.
        group_id: labelme's instance group, if any (kept, not used for classes).
    """

    label: str
    shape_type: str
    points: tuple[tuple[float, float], ...]
    mask: np.ndarray | None = None
    group_id: int | None = None


@dataclass
class AnnotatedScan:
    """One annotated image, read and validated (from a Labelme, COCO or PIXray source).

    Args:
        json_path: the JSON file (for COCO, ``<coco.json>[file_name]``).
        image: ``[H, W, 3]`` uint8 RGB (:func:`xray_seg.core.images.decode_image`).
        shapes: the shapes in file order (draw order).
        image_bytes: the encoded image exactly as stored (file or ``imageData``).
        image_format: Pillow's name of that encoding (``"PNG"``, ``"JPEG"``, ...).
        image_mode: the Pillow mode before conversion (``"I;16"``, ``"RGBA"``, ...).
        image_file: the image file, or None when the image is embedded in the JSON.
        exif_rotated: True when EXIF orientation turned the stored pixels.
        warnings: problems that did not stop the reading (e.g. points outside the image).
    """

    json_path: Path
    image: np.ndarray
    shapes: list[Shape]
    image_bytes: bytes
    image_format: str
    image_mode: str
    image_file: Path | None = None
    exif_rotated: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def copyable(self) -> str | None:
        """None if the stored bytes can be copied as the output image, else why not."""
        if self.image_format not in ("PNG", "JPEG"):
            return f"the image is {self.image_format}, not PNG or JPEG"
        if self.exif_rotated:
            return "the image needs EXIF rotation, which the training pipeline does not apply"
        if self.image_mode not in PLAIN_MODES:
            return f"the image mode {self.image_mode} (not 8-bit RGB or grey) decodes differently in the pipeline"
        return None


def mask_origin(shape: Shape) -> tuple[int, int]:
    """Top-left pixel ``(x, y)`` of a mask shape: its first point truncated, as labelme."""
    x1, y1 = np.asarray(shape.points[0]).astype(int)
    return int(x1), int(y1)


#: A point may lie at most this far (pixels) beyond the image's edge: one image size, and at
#: least 1,024 px. Annotation tools never place points further out; a coordinate like 4e8 is
#: a corrupt file, and it is refused before rasterising (where it would cost gigabytes in
#: pycocotools or overflow Pillow's 32-bit coordinates and draw the wrong shape).
MIN_POINT_MARGIN = 1024


def point_margin(height: int, width: int) -> int:
    """How far beyond the image's edge a point may lie (:data:`MIN_POINT_MARGIN`)."""
    return max(int(height), int(width), MIN_POINT_MARGIN)


def far_point(points, height: int, width: int) -> tuple[float, float] | None:
    """The first ``(x, y)`` of ``points`` lying more than :func:`point_margin` beyond the image, or None."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    m = point_margin(height, width)
    bad = (pts[:, 0] < -m) | (pts[:, 0] > width + m) | (pts[:, 1] < -m) | (pts[:, 1] > height + m)
    if not bad.any():
        return None
    x, y = pts[int(np.argmax(bad))]
    return float(x), float(y)


def far_point_problem(where: str, point: tuple[float, float], height: int, width: int) -> str:
    """The one-line problem for a :func:`far_point`."""
    return (
        f"{where} has the point ({point[0]:g}, {point[1]:g}), more than {point_margin(height, width)} px "
        f"outside the {width}x{height} image; the coordinates are corrupt"
    )


def check_near_image(shapes: Sequence[Shape], height: int, width: int, where: str | Path, fix: str) -> None:
    """DatasetError naming ``where`` for the first shape with a :func:`far_point` (before rasterising)."""
    for i, s in enumerate(shapes):
        point = far_point(s.points, height, width)
        if point is not None:
            label = f"shape #{i} ({s.shape_type} {s.label!r})"
            raise DatasetError(far_point_problem(label, point, height, width), path=where, fix=fix)


def outside_warnings(shapes: Sequence[Shape], height: int, width: int) -> list[str]:
    """One warning per shape with a point (or mask box) outside the image (it gets clipped)."""
    warnings = []
    for i, s in enumerate(shapes):
        if s.shape_type == "mask" and s.mask is not None:
            x1, y1 = mask_origin(s)
            mh, mw = s.mask.shape
            x2, y2 = int(s.points[1][0]), int(s.points[1][1])
            if (x2 - x1 + 1, y2 - y1 + 1) != (mw, mh):
                warnings.append(
                    f"shape #{i} (mask {s.label!r}): the mask is {mw}x{mh} but its box points span "
                    f"{x2 - x1 + 1}x{y2 - y1 + 1}; pasted at its top-left point with its own size"
                )
            if x1 < 0 or y1 < 0 or x1 + mw > width or y1 + mh > height:
                warnings.append(f"shape #{i} (mask {s.label!r}) extends outside the {width}x{height} image; clipped")
            continue
        pts = np.asarray(s.points)
        out = (pts[:, 0] < 0) | (pts[:, 0] > width - 1) | (pts[:, 1] < 0) | (pts[:, 1] > height - 1)
        if out.any():
            warnings.append(
                f"shape #{i} ({s.shape_type} {s.label!r}): {int(out.sum())} of {len(pts)} point(s) lie outside "
                f"the {width}x{height} image; the shape is clipped to the image"
            )
    return warnings


def load_annotation_json(json_path: str | Path, *, fmt: str, list_key: str, resave: str | None = None) -> dict:
    """Parse a per-image annotation JSON file (a regular file only) holding a ``list_key`` list.

    DatasetError naming the file if it cannot be read, is not UTF-8 JSON or is not a
    ``fmt`` annotation; ``resave`` (e.g. ``"re-save it from labelme"``) goes into the fix.
    """
    json_path = Path(json_path)
    try:
        data = json.loads(read_regular_file(json_path, "JSON file").decode("utf-8-sig"))
    except OSError as exc:
        raise DatasetError(f"cannot read the JSON file ({exc.strerror or exc})", path=json_path) from None
    except UnicodeDecodeError:
        raise DatasetError("corrupt JSON: the file is not UTF-8 text", path=json_path, fix=resave) from None
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"corrupt JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            path=json_path,
            fix=f"{resave}, or remove it from the folder" if resave else "remove it from the folder",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get(list_key), list):
        raise DatasetError(
            f"not a {fmt} annotation (no {list_key!r} list)",
            path=json_path,
            fix=f"keep only {fmt} .json files in the input folder",
        )
    return data


def read_image_file(image_file: Path, where: str | Path, fix: str, named: str | None = None) -> bytes:
    """The bytes of an annotation's image file, through the one image reader
    (:func:`~xray_seg.core.images.read_image_bytes`: regular files only, header first, never more
    than the header implies); DatasetError naming ``where`` (the annotation) and the image file.
    ``named`` is how the annotation names the image (for the not-found message); ``fix`` is the
    advice for a missing image."""
    try:
        return read_image_bytes(image_file)
    except DatasetError as exc:
        if exc.problem == "image not found":
            what = f"image {named!r}" if named is not None else "image"
            raise DatasetError(f"{what} not found (looked for {image_file})", path=where, fix=fix) from None
        raise DatasetError(f"image {image_file}: {exc.problem}", path=where, fix=exc.fix) from None


def check_declared_size(
    size: tuple[int, int], declared: tuple, *, where: str | Path, said: str, keys=("width", "height"), fix: str
) -> None:
    """DatasetError when the ``declared`` ``(height, width)`` (both given) differ from the decoded ``size``."""
    (height, width), (declared_h, declared_w) = size, declared
    if declared_h is None or declared_w is None or (declared_h, declared_w) == (height, width):
        return
    raise DatasetError(
        f"the image is {width}x{height} (WxH) but {said} says {keys[0]}={declared_w}, {keys[1]}={declared_h}",
        path=where,
        fix=fix,
    )


def build_scan(
    json_path: Path,
    image_bytes: bytes,
    *,
    source: str | Path,
    image_file: Path | None,
    check_size: Callable[[int, int], None],
    make_shapes: Callable[[int, int], tuple[list[Shape], list[str]]],
) -> AnnotatedScan:
    """Decode ``image_bytes`` (``source`` names them in errors), check its size and build the record.

    ``check_size(height, width)`` raises for a size the annotation contradicts;
    ``make_shapes(height, width)`` gives the shapes and their warnings.
    """
    image, fmt, mode, rotated = decode_image(image_bytes, source=source)
    height, width = image.shape[:2]
    check_size(height, width)
    shapes, warnings = make_shapes(height, width)
    return AnnotatedScan(
        json_path=json_path,
        image=image,
        shapes=shapes,
        image_bytes=image_bytes,
        image_format=fmt,
        image_mode=mode,
        image_file=image_file,
        exif_rotated=rotated,
        warnings=warnings,
    )


def clipped(
    parse: Callable[[], list[Shape]], where: str | Path, fix: str
) -> Callable[[int, int], tuple[list[Shape], list[str]]]:
    """``make_shapes`` for :func:`build_scan`: the shapes ``parse()`` gives (after the image is
    decoded and its size checked), with a warning for each one the image clips. A point far
    outside the image (:func:`far_point`) is refused: DatasetError naming ``where``, with ``fix``."""

    def make_shapes(height: int, width: int) -> tuple[list[Shape], list[str]]:
        shapes = parse()
        check_near_image(shapes, height, width, where, fix)
        return shapes, outside_warnings(shapes, height, width)

    return make_shapes


__all__ = [
    "AnnotatedScan",
    "Shape",
    "MIN_POINT_MARGIN",
    "build_scan",
    "check_declared_size",
    "check_near_image",
    "clipped",
    "far_point",
    "far_point_problem",
    "load_annotation_json",
    "mask_origin",
    "outside_warnings",
    "point_margin",
    "read_image_file",
]
