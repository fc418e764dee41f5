"""Read PIXray's per-image JSON files for ``xray-seg convert --from pixray``.

PIXray (15 classes, 5,046 images) stores one JSON file per image holding
``objects: [{label, polygon}, ...]``. This reader turns each file into one record of the
common form (:mod:`xray_seg.conversion.annotation`); the rest of the conversion is the
Labelme path's (docs/architecture.md, "conversion").

What is accepted
    * ``objects``: a list of ``{"label": str, "polygon": points}`` where ``points`` is a
      nested list ``[[x, y], ...]`` or a flat list ``[x1, y1, x2, y2, ...]``; at least
      3 points. Each object is one instance.
    * the image: the file named by the first of ``imagePath``, ``image``, ``file_name``,
      ``filename`` or ``image_name`` when the JSON has one, else the file with the JSON
      file's stem and one of the suffixes in :data:`IMAGE_EXTS`. It is looked up beside
      the JSON file, or under ``--images DIR`` when given. A name leading outside that
      folder is refused.
    * ``width``/``height`` (or ``imageWidth``/``imageHeight``), when present, must match
      the decoded image.

Rasterisation
    Polygons are drawn exactly as Labelme polygons (``PIL.ImageDraw.polygon``, file
    order, a later object overwriting an earlier one), so ``SegmentationClass`` means the
    same for PIXray as for a Labelme folder. Points outside the image are clipped with a
    warning, as for Labelme; a point more than one image size (at least 1,024 px) outside
    is refused with one line, as for Labelme.
"""

from __future__ import annotations

import math
import os
from pathlib import Path, PureWindowsPath

from xray_seg.conversion import annotation
from xray_seg.conversion.annotation import AnnotatedScan, Shape
from xray_seg.conversion.readers import Item, Reader, Scan, list_json_files
from xray_seg.core.errors import DatasetError, XraySegError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
IMAGE_KEYS = ("imagePath", "image", "file_name", "filename", "image_name")


def load_pixray_json(path: Path) -> dict:
    """Parse a PIXray JSON file (a regular file only); DatasetError naming the file if it is not one."""
    return annotation.load_annotation_json(path, fmt="PIXray", list_key="objects")


def polygon_points(raw) -> tuple[tuple[float, float], ...]:
    """``[[x, y], ...]`` or ``[x1, y1, x2, y2, ...]`` as ``((x, y), ...)`` (ValueError if neither)."""

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not isinstance(raw, list) or not raw:
        raise ValueError("has no polygon points")
    if all(number(v) for v in raw):
        if len(raw) % 2:
            raise ValueError(f"has a flat point list of odd length {len(raw)}")
        return tuple((float(raw[i]), float(raw[i + 1])) for i in range(0, len(raw), 2))
    if all(isinstance(p, (list, tuple)) and len(p) == 2 and all(number(v) for v in p) for p in raw):
        return tuple((float(p[0]), float(p[1])) for p in raw)
    raise ValueError("has a polygon that is neither [[x, y], ...] nor [x1, y1, x2, y2, ...]")


def object_labels(data: dict) -> list[str]:
    return [o["label"] for o in data.get("objects", []) if isinstance(o, dict) and isinstance(o.get("label"), str)]


class PixrayReader(Reader):
    """A folder of PIXray ``*.json`` files and their images (see the module docstring)."""

    source = "pixray"

    def __init__(self, root: Path, images: str | Path | None = None, recursive: bool = False):
        super().__init__(root)
        self.images_dir = Path(images) if images else None
        self.recursive = recursive

    @property
    def input_paths(self) -> list[Path]:
        return [self.root] + ([self.images_dir] if self.images_dir is not None else [])

    def items(self, progress: bool = False) -> list[Item]:
        if self.images_dir is not None and not self.images_dir.is_dir():
            raise DatasetError(
                "images folder not found", path=self.images_dir, fix="pass --images DIR holding the images"
            )
        return [Item(str(f), f.stem, f) for f in list_json_files(self.root, self.recursive)]

    def _image_file(self, data: dict, json_path: Path) -> Path:
        folder = self.images_dir or json_path.parent
        root = Path(os.path.abspath(self.images_dir or self.root))
        named = next((data[k] for k in IMAGE_KEYS if isinstance(data.get(k), str) and data[k].strip()), None)
        if named is None:
            for ext in IMAGE_EXTS:
                for candidate in (folder / f"{json_path.stem}{ext}", folder / f"{json_path.stem}{ext.upper()}"):
                    if candidate.exists() and not candidate.is_dir():  # a FIFO or device: refused when read
                        return candidate
            raise DatasetError(
                f"no image named in the JSON and none called {json_path.stem}{{{','.join(IMAGE_EXTS)}}} in {folder}",
                path=json_path,
                fix="put the image beside the JSON file with the same stem, or pass --images DIR",
            )
        rel = PureWindowsPath(named).as_posix() if "\\" in named else named
        candidate = Path(os.path.normpath(os.path.join(os.path.abspath(folder), rel)))
        if os.path.isabs(rel) or PureWindowsPath(named).drive or not candidate.is_relative_to(root):
            raise DatasetError(
                f"image {named!r} leads outside the folder {root}; refused",
                path=json_path,
                fix="keep the image in the input folder (or under --images) and name it relative to it",
            )
        return candidate

    def scan(self, item: Item) -> Scan:
        try:
            data = load_pixray_json(item.ref)
            return Scan(item.key, tuple(object_labels(data)), str(self._image_file(data, item.ref)))
        except XraySegError as exc:
            return Scan(item.key, error=exc.message)

    def read(self, item: Item) -> AnnotatedScan:
        json_path: Path = item.ref
        data = load_pixray_json(json_path)
        image_file = self._image_file(data, json_path)
        fix = "put the image beside the JSON file or pass --images"
        declared = (data.get("height", data.get("imageHeight")), data.get("width", data.get("imageWidth")))
        return annotation.build_scan(
            json_path,
            annotation.read_image_file(image_file, json_path, fix),
            source=image_file,
            image_file=image_file,
            check_size=lambda height, width: annotation.check_declared_size(
                (height, width),
                declared,
                where=json_path,
                said="the JSON",
                fix="the JSON belongs to another image: correct the image name or the size",
            ),
            make_shapes=annotation.clipped(
                lambda: object_shapes(data, json_path), json_path, "correct or remove the object"
            ),
        )


def object_shapes(data: dict, json_path: Path) -> list[Shape]:
    """The ``objects`` of a parsed PIXray JSON as polygon shapes, one instance each (DatasetError on a bad one)."""
    shapes = []
    for i, obj in enumerate(data["objects"]):
        if not isinstance(obj, dict) or not isinstance(obj.get("label"), str):
            raise DatasetError(f"object #{i} has no label", path=json_path, fix="give every object a label")
        where = f"object #{i} ({obj['label']!r})"
        try:
            points = polygon_points(obj.get("polygon"))
        except ValueError as exc:
            raise DatasetError(f"{where} {exc}", path=json_path, fix="correct or remove the object") from None
        if len(points) < 3:
            raise DatasetError(
                f"{where} has {len(points)} point(s); a polygon needs at least 3",
                path=json_path,
                fix="correct or remove the object",
            )
        shapes.append(Shape(obj["label"], "polygon", points, None, i))
    return shapes


__all__ = ["IMAGE_EXTS", "PixrayReader", "load_pixray_json", "object_labels", "object_shapes", "polygon_points"]
