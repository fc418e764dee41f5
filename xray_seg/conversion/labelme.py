"""Read Labelme JSON annotations and rasterise them exactly as labelme does.

This is the first step of the data path (docs/architecture.md): an annotator's Labelme folder is
read here, and :mod:`xray_seg.conversion.convert` turns it into the VOC layout of
:mod:`xray_seg.conversion.voc`. Labelme itself is not used at run time (it is a GPL, Qt
application); this module re-implements the small part that matters, and a property
test compares it with ``labelme.utils.shapes_to_label`` pixel for pixel.

Reading (labelme 3.x to 7.x JSON)
    * the image is ``imageData`` (base64 bytes of an image file) when present, else
      the file ``imagePath`` relative to the JSON file (Windows separators accepted).
      An ``imagePath`` that leads outside the input folder is refused, unless it leads
      into the one extra images folder given (``convert --images SCANS``: pre-annotations
      from ``predict --labelme`` point at the scans they were made from). The check is
      lexical (``..`` and absolute paths), so a symlink the user put inside the folder
      is still followed.
    * EXIF orientation is applied, as labelme does when it opens an image file, so
      the annotation coordinates match the pixels.
    * the decoded size must equal ``imageHeight``/``imageWidth`` when they are given.
    * shape types: polygon (also a missing ``shape_type``, as labelme 3.x writes),
      rectangle, circle, line, linestrip, point, oriented_rectangle and mask (a base64
      PNG whose two points give the top-left and bottom-right pixel of its bounding box,
      as labelme 5.x writes it).

Image conversion
    The image is decoded by :func:`xray_seg.core.images.decode_image` (16-bit kept by its
    high byte, alpha composited on white, grey replicated to 3 channels; its docstring).

Rasterisation (:func:`shapes_to_label`), as ``labelme.utils.shapes_to_label``
    Shapes are drawn in file order with ``PIL.ImageDraw`` (no anti-aliasing), a later
    shape overwriting an earlier one: polygon and oriented_rectangle with
    ``polygon(outline, fill)``; rectangle with ``rectangle`` on the sorted corners;
    circle as the ellipse of radius |centre - rim point|; line and linestrip with
    ``line(width=10)``; point as a filled circle of radius 5; mask pasted at its
    top-left point. ``__ignore__`` is -1 in the returned array (255 in the PNG).

Points outside the image
    A point outside ``[0, W-1] x [0, H-1]`` (labelme's editor never places one there)
    is reported as a warning, and the shape is clipped to the image: the part that
    falls outside is dropped when drawing. This is region clipping, not clamping the
    vertex coordinates (clamping would change the shape inside the image), and it is
    what labelme's rasteriser produces as well. A mask whose box leaves the image is
    cropped the same way (labelme would fail or wrap around there). A point more than
    one image size (at least 1,024 px) outside the image is refused with one line
    (:func:`~xray_seg.conversion.annotation.far_point`): no annotation tool puts one there,
    and Pillow's 32-bit coordinates would wrap around and draw the wrong shape.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path, PureWindowsPath

import numpy as np

from xray_seg.conversion.annotation import (
    AnnotatedScan,
    Shape,
    build_scan,
    check_declared_size,
    clipped,
    load_annotation_json,
    mask_origin,
    read_image_file,
)
from xray_seg.core.errors import DatasetError
from xray_seg.core.pixel_limit import bomb_error, check_pixels

IGNORE_NAME = "__ignore__"
BACKGROUND_NAME = "_background_"

#: Line width (pixels) of ``line``/``linestrip`` and radius of ``point`` shapes, as labelme.
LINE_WIDTH = 10
POINT_RADIUS = 5

#: Number of points each shape type needs: an int (exactly) or a (min, None) range.
SHAPE_POINTS: dict[str, int | tuple[int, None]] = {
    "polygon": (3, None),
    "rectangle": 2,
    "circle": 2,
    "line": 2,
    "linestrip": (2, None),
    "point": 1,
    "oriented_rectangle": 4,
    "mask": 2,
}

# --------------------------------------------------------------------------- JSON


def load_labelme_json(json_path: str | Path) -> dict:
    """Parse a Labelme JSON file; DatasetError naming the file if it is not one."""
    return load_annotation_json(json_path, fmt="Labelme", list_key="shapes", resave="re-save it from labelme")


def image_flags(data: Mapping) -> tuple[tuple[str, bool], ...]:
    """The image-level ``flags`` of a parsed Labelme JSON as sorted ``(name, value)`` pairs.

    Labelme writes ``"flags": {name: bool}`` (the Flags panel, ``labelme --flags a,b``);
    only string names with boolean values count, and a missing or malformed field is no
    flags (the flags never change a mask, so they never fail a file).
    """
    flags = data.get("flags")
    if not isinstance(flags, Mapping):
        return ()
    return tuple(sorted((k, v) for k, v in flags.items() if isinstance(k, str) and isinstance(v, bool)))


def shape_labels(data: Mapping) -> list[str]:
    """The label of every shape of a parsed Labelme JSON, in order (non-strings skipped)."""
    shapes = data.get("shapes", [])
    if not isinstance(shapes, list):
        return []
    return [s["label"] for s in shapes if isinstance(s, dict) and isinstance(s.get("label"), str)]


def image_reference(
    data: Mapping, json_path: str | Path, input_root: str | Path, images_root: str | Path | None = None
) -> Path | None:
    """The image file a parsed JSON refers to, or None if the image is embedded.

    Raises DatasetError if neither is given or if ``imagePath`` leads outside both
    ``input_root`` and ``images_root`` (when given).
    """
    json_path = Path(json_path)
    if data.get("imageData"):
        return None
    raw = data.get("imagePath")
    if not isinstance(raw, str) or not raw.strip():
        raise DatasetError("no imageData and no imagePath", path=json_path, fix="re-save the annotation from labelme")
    rel = PureWindowsPath(raw).as_posix() if "\\" in raw else raw
    # os.path.join drops the folder for an absolute imagePath, which is then checked as is.
    candidate = Path(os.path.normpath(os.path.join(os.path.abspath(json_path.parent), rel)))
    roots = [Path(os.path.abspath(r)) for r in (input_root, images_root) if r is not None]
    if PureWindowsPath(raw).drive or not any(candidate.is_relative_to(root) for root in roots):
        where = " or ".join(str(root) for root in roots)
        raise DatasetError(
            f"imagePath {raw!r} leads outside the input folder {where}; refused",
            path=json_path,
            fix="move the image into the input folder and set imagePath relative to the JSON file, "
            "or name the folder the images are in with --images",
        )
    return candidate


# ------------------------------------------------------------------------- shapes


def _parse_points(raw, where: str, json_path: Path) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, list) or not raw:
        raise DatasetError(f"{where} has no points", path=json_path, fix="delete or redraw the shape in labelme")
    points = []
    for p in raw:
        if (
            not isinstance(p, (list, tuple))
            or len(p) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p)
        ):
            raise DatasetError(
                f"{where} has a point that is not [x, y] numbers: {p!r}",
                path=json_path,
                fix="delete or redraw the shape in labelme",
            )
        points.append((float(p[0]), float(p[1])))
    return tuple(points)


def _decode_mask(raw, where: str, json_path: Path) -> np.ndarray:
    from PIL import Image

    if not isinstance(raw, str) or not raw:
        raise DatasetError(f"{where} is a mask shape without a 'mask' PNG", path=json_path, fix="redraw the mask")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(base64.b64decode(raw, validate=False))) as img:
                check_pixels(img.size[1], img.size[0], f"{json_path} ({where})")
                arr = np.asarray(img)
    except Image.DecompressionBombError as exc:
        raise bomb_error(exc, f"{json_path} ({where})") from None
    except (binascii.Error, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"{where} has an undecodable mask PNG ({exc})", path=json_path, fix="redraw the mask"
        ) from None
    if arr.ndim == 3:
        arr = arr.any(axis=-1)
    return arr.astype(bool)


def parse_shapes(data: Mapping, json_path: str | Path) -> list[Shape]:
    """Validate and parse the ``shapes`` of a Labelme JSON (DatasetError on a bad one)."""
    json_path = Path(json_path)
    shapes = []
    raw_shapes = data.get("shapes", [])
    if raw_shapes is None:
        raw_shapes = []
    if not isinstance(raw_shapes, list):
        raise DatasetError(
            f"'shapes' is a {type(raw_shapes).__name__}, not a list",
            path=json_path,
            fix="re-save the annotation from labelme",
        )
    for i, raw in enumerate(raw_shapes):
        if not isinstance(raw, dict) or not isinstance(raw.get("label"), str):
            raise DatasetError(f"shape #{i} has no label", path=json_path, fix="give every shape a label in labelme")
        label = raw["label"]
        shape_type = raw.get("shape_type") or "polygon"
        if not isinstance(shape_type, str):
            raise DatasetError(
                f"shape #{i} ({label!r}) has a shape_type that is not a name: {shape_type!r}",
                path=json_path,
                fix=f"use one of {', '.join(SHAPE_POINTS)}",
            )
        where = f"shape #{i} ({shape_type} {label!r})"
        if shape_type not in SHAPE_POINTS:
            raise DatasetError(
                f"{where}: unsupported shape_type {shape_type!r}",
                path=json_path,
                fix=f"use one of {', '.join(SHAPE_POINTS)}",
            )
        points = _parse_points(raw.get("points"), where, json_path)
        need = SHAPE_POINTS[shape_type]
        if isinstance(need, tuple) and len(points) < need[0]:
            what = "a polygon" if shape_type == "polygon" else f"a {shape_type}"
            raise DatasetError(
                f"{where} has {len(points)} point(s); {what} needs at least {need[0]}",
                path=json_path,
                fix="delete the shape or redraw it with more points in labelme",
            )
        if isinstance(need, int) and len(points) != need:
            raise DatasetError(
                f"{where} has {len(points)} point(s); a {shape_type} needs exactly {need}",
                path=json_path,
                fix="redraw the shape in labelme",
            )
        mask = _decode_mask(raw.get("mask"), where, json_path) if shape_type == "mask" else None
        group_id = raw.get("group_id")
        shapes.append(
            Shape(
                label,
                shape_type,
                points,
                mask,
                group_id if isinstance(group_id, int) and not isinstance(group_id, bool) else None,
            )
        )
    return shapes


def read_labelme(json_path: str | Path, input_root: str | Path, images_root: str | Path | None = None) -> AnnotatedScan:
    """Read and validate one Labelme JSON file and its image.

    Args:
        json_path: the ``.json`` file.
        input_root: the input folder; an ``imagePath`` leading outside it is refused,
        images_root: unless it leads into this folder (``convert --images``).

    Returns:
        An :class:`~xray_seg.conversion.annotation.AnnotatedScan` (image as ``[H, W, 3]`` uint8).

    Raises:
        DatasetError: naming the file, for a corrupt JSON, a missing or undecodable
            image, an escaping ``imagePath``, a size that differs from
            ``imageHeight``/``imageWidth``, or a bad shape (e.g. a polygon with fewer
            than 3 points).
    """
    json_path = Path(json_path)
    data = load_labelme_json(json_path)
    image_file = image_reference(data, json_path, input_root, images_root)
    image_bytes, source = _image_bytes(data, json_path, image_file)
    return build_scan(
        json_path,
        image_bytes,
        source=source,
        image_file=image_file,
        check_size=lambda height, width: _check_declared_size(data, json_path, height, width),
        make_shapes=clipped(lambda: parse_shapes(data, json_path), json_path, "correct or redraw the shape in labelme"),
    )


def _image_bytes(data: dict, json_path: Path, image_file: Path | None) -> tuple[bytes, str | Path]:
    """The image's bytes (the embedded ``imageData`` when ``image_file`` is None) and what to
    name it in messages; DatasetError naming the JSON file when it cannot be read."""
    if image_file is None:
        try:
            image_bytes = base64.b64decode(data["imageData"], validate=False)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise DatasetError(
                f"imageData is not valid base64 ({exc})", path=json_path, fix="re-save it from labelme"
            ) from None
        return image_bytes, f"{json_path} (imageData)"
    fix = "put the image beside the JSON file or correct imagePath"
    return read_image_file(image_file, json_path, fix, named=data.get("imagePath")), image_file


def _check_declared_size(data: dict, json_path: Path, height: int, width: int) -> None:
    """``imageHeight``/``imageWidth``, when given, are integers equal to the image's size."""
    declared = (data.get("imageHeight"), data.get("imageWidth"))
    for key, value in zip(("imageHeight", "imageWidth"), declared):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise DatasetError(
                f"{key} is {value!r} ({type(value).__name__}), not an integer number of pixels",
                path=json_path,
                fix=f"write {key} as a number without quotes (the image is {width}x{height}, WxH)",
            )
    check_declared_size(
        (height, width),
        declared,
        where=json_path,
        said="the JSON",
        keys=("imageWidth", "imageHeight"),
        fix="the JSON belongs to another image: point imagePath at the right one, or re-annotate",
    )


# ------------------------------------------------------------------ rasterisation


def _draw_shape(canvas, draw, shape: Shape, ink: int) -> None:
    """Draw one shape with ``ink`` the way ``labelme.utils.shape_to_mask`` does."""
    from PIL import Image

    xy = [tuple(p) for p in shape.points]
    kind = shape.shape_type
    if kind == "circle":
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse(((cx - d, cy - d), (cx + d, cy + d)), outline=ink, fill=ink)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = xy
        draw.rectangle(((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))), outline=ink, fill=ink)
    elif kind in ("line", "linestrip"):
        draw.line(xy=xy, fill=ink, width=LINE_WIDTH)
    elif kind == "point":
        cx, cy = xy[0]
        r = POINT_RADIUS
        draw.ellipse(((cx - r, cy - r), (cx + r, cy + r)), outline=ink, fill=ink)
    elif kind in ("polygon", "oriented_rectangle"):
        draw.polygon(xy=xy, outline=ink, fill=ink)
    elif kind == "mask":
        if shape.mask is None:
            raise ValueError("a mask shape needs its mask array")
        x1, y1 = mask_origin(shape)
        mh, mw = shape.mask.shape
        stencil = Image.fromarray(shape.mask.astype(np.uint8) * 255, mode="L")
        canvas.paste(ink, (x1, y1, x1 + mw, y1 + mh), stencil)
    else:
        raise ValueError(f"unsupported shape_type {kind!r}")


def shapes_to_label(
    shapes: Sequence[Shape], image_shape: Sequence[int], label_to_index: Mapping[str, int]
) -> np.ndarray:
    """Rasterise shapes into a class map, like ``labelme.utils.shapes_to_label``.

    Args:
        shapes: :class:`Shape` objects (or labelme-style dicts) in draw order; a later
            shape overwrites an earlier one.
        image_shape: ``(H, W, ...)`` of the image.
        label_to_index: class name -> index; ``__ignore__`` -> -1. Indices must lie in
            -1..254 (the PNG stores 255 for ignore).

    Returns:
        ``[H, W]`` int32 with -1 for ignore and 0 where no shape was drawn.

    Raises:
        KeyError: a shape label missing from ``label_to_index``.
    """
    from PIL import Image, ImageDraw

    height, width = int(image_shape[0]), int(image_shape[1])
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        if isinstance(shape, Mapping):
            shape = Shape(
                shape["label"],
                shape.get("shape_type") or "polygon",
                tuple(tuple(map(float, p)) for p in shape["points"]),
                shape.get("mask"),
            )
        value = int(label_to_index[shape.label])
        if not -1 <= value <= 254:
            raise ValueError(f"class index {value} of {shape.label!r} is outside -1..254")
        # Drawing the value directly touches exactly the pixels labelme's per-shape
        # boolean mask would: Pillow draws without anti-aliasing, whatever the ink.
        _draw_shape(canvas, draw, shape, value & 0xFF)
    label = np.asarray(canvas).astype(np.int32)
    label[label == 255] = -1
    return label
