"""Read a COCO instance JSON (PIDray, PIDray-A) for ``xray-seg convert --from coco``.

PIDray (ICCV 2021) ships its 12 classes as COCO instance annotations: one JSON file
with ``images``, ``annotations`` and ``categories``, and the images in a folder. This
reader turns each entry of ``images`` into one record of the common form
(:mod:`xray_seg.conversion.annotation`); the rest of the conversion is the Labelme path's
(docs/architecture.md, "conversion").

Reading the JSON (memory)
    PIDray's JSON files are hundreds of MB; parsed whole into Python objects they would
    take several GB. The file is streamed instead: the top-level object is walked with
    :meth:`json.JSONDecoder.raw_decode` over 4 MiB chunks, and each element of
    ``annotations`` is parsed, reduced to its image id, category id, ``iscrowd`` flag
    and byte span in the file, and dropped. ``images`` entries (file name and size) and
    ``categories`` are kept. So the parent process holds a few numbers per annotation
    and one small record per image, never the polygons; each worker re-reads the byte
    spans of its image's annotations from the file (a seek and a few KB). Peak memory
    therefore grows only with that index, not with the annotation data
    (``scripts/bench_convert_coco.py --scale`` measures it).

Images
    ``file_name`` is looked up under the images folder (``--images DIR``, default: the
    JSON file's folder); a name leading outside that folder is refused, a missing or
    undecodable image fails that image alone. The decoded size must equal the entry's
    ``width`` and ``height``. The output stem is the file name's stem.

Segmentations (decoded with pycocotools, as ``COCO.annToMask`` does)
    * polygons: a list of parts ``[x1, y1, x2, y2, ...]`` (a multi-part object is one
      instance); ``frPyObjects`` then ``merge``. A part with fewer than 3 points is
      dropped with a warning (it has no area; pycocotools would read 4 numbers as a box).
      Coordinates are bounded before pycocotools sees them: a point more than one image
      size (at least 1,024 px) outside the image fails its image
      (:func:`~xray_seg.conversion.annotation.far_point`), and so does an annotation whose
      polygon boundary is longer than :func:`boundary_limit`. pycocotools walks the boundary
      at 5 points per pixel (about 100 bytes per pixel of boundary), so one coordinate of
      4e8 would otherwise cost tens of GB.
    * RLE, uncompressed (``counts`` a list) or compressed (``counts`` a string): the
      ``size`` must be the image's ``[height, width]``, and the run lengths are checked
      to cover the image exactly before pycocotools decodes them (a bad RLE would
      otherwise make its decoder write past the mask). A bad one fails its image.
    * an annotation without a segmentation (a box only) fails its image: drawing nothing
      for a labelled object would teach the model that it is background.

Drawing order and crowds
    Annotations are drawn **largest area first** (ties: file order), so a small item lying
    on a large one stays visible in the class map. ``iscrowd: 1`` regions are drawn as
    ignore (255 in ``SegmentationClass`` and ``SegmentationObject``) whatever their
    category: a crowd region mixes objects and gaps, so no pixel in it is a trustworthy
    label for either. They are not instances. The flag is read by value
    (:func:`crowd_flag`: ``"0"`` is 0); anything but 0 or 1 fails its image.

Categories
    Category names are mapped to the labels file by name, exactly like Labelme labels
    (``--unknown``, ``__ignore__``, ``--classes``/``--others``; see
    :mod:`xray_seg.conversion.convert`). An annotation whose ``category_id`` is not in
    ``categories`` fails its image; a category id listed under two names stops the run.
"""

from __future__ import annotations

import json
import math
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xray_seg.conversion.annotation import (
    AnnotatedScan,
    Shape,
    build_scan,
    check_declared_size,
    far_point,
    far_point_problem,
    read_image_file,
)
from xray_seg.conversion.labelme import IGNORE_NAME
from xray_seg.conversion.readers import Item, Reader, Scan
from xray_seg.core.errors import DatasetError, XraySegError

CHUNK = 1 << 22
_LONGEST_VALUE = 1 << 26  # no annotation string is longer (compressed RLE of a 64-Mpixel scan is far shorter)
_WS = " \t\r\n"


# ---------------------------------------------------------------- streaming JSON


class _Stream:
    """Walk a JSON file value by value without holding it whole.

    The bytes are decoded as Latin-1, which maps each byte to one character, so string
    positions are file offsets; values whose strings matter are re-parsed from their
    bytes as UTF-8 (:meth:`utf8`).
    """

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "rb")  # noqa: SIM115 - a streaming reader keeps it open across reads; close() shuts it
        self.buf = ""
        self.pos = 0
        self.base = 0
        self.eof = False
        self.decoder = json.JSONDecoder()
        head = self.file.read(3)
        if head != b"\xef\xbb\xbf":
            self.buf = head.decode("latin-1")
        self.base = 3 - len(self.buf)

    def close(self) -> None:
        self.file.close()

    def _fill(self) -> bool:
        data = self.file.read(CHUNK)
        if not data:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + data.decode("latin-1")
        self.base += self.pos
        self.pos = 0
        return True

    def _error(self, what: str) -> DatasetError:
        return DatasetError(
            f"corrupt JSON at byte {self.base + self.pos}: {what}",
            path=self.path,
            fix="re-export the COCO file (it must be one object with images, annotations and categories)",
        )

    def peek(self) -> str:
        """The next non-blank character ('' at the end of the file), not consumed."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, chars: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            raise self._error(f"expected one of {chars!r}, found {c or 'the end of the file'!r}")
        self.pos += 1
        return c

    def value(self):
        """The next JSON value and its byte span ``(value, offset, length)``."""
        self.peek()
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    start = self.pos
                    self.pos = end
                    return obj, self.base + start, end - start
            except json.JSONDecodeError as exc:
                # A value cut at the end of the buffer fails near the end (or where its
                # last string starts); a failure far before the end is a real error.
                if self.eof or len(self.buf) - exc.pos > _LONGEST_VALUE:
                    self.pos = exc.pos
                    raise self._error(exc.msg) from None
            if not self._fill():
                self.eof = True

    def utf8(self, offset: int, length: int):
        """Re-parse a span as UTF-8 (for values whose strings are kept)."""
        text = self.buf[offset - self.base : offset - self.base + length]
        try:
            return json.loads(text.encode("latin-1").decode("utf-8"))
        except UnicodeDecodeError:
            self.pos = offset - self.base
            raise self._error("a value that is not UTF-8 text") from None


def iter_top_level(path: Path) -> Iterator[tuple[str, object, int, int, _Stream]]:
    """Yield ``(key, value, offset, length, stream)`` for each value of the top-level object.

    The elements of ``images`` and ``annotations`` are yielded one by one (key
    ``images`` / ``annotations``); every other key's value is yielded whole.
    """
    stream = _Stream(path)
    try:
        stream.expect("{")
        if stream.peek() == "}":
            return
        while True:
            key, _, _ = stream.value()
            if not isinstance(key, str):
                raise stream._error("an object key must be a string")
            stream.expect(":")
            if key in ("images", "annotations") and stream.peek() == "[":
                stream.expect("[")
                if stream.peek() == "]":
                    stream.expect("]")
                else:
                    while True:
                        obj, off, length = stream.value()
                        yield key, obj, off, length, stream
                        if stream.expect(",]") == "]":
                            break
            else:
                obj, off, length = stream.value()
                yield key, obj, off, length, stream
            if stream.expect(",}") == "}":
                return
    finally:
        stream.close()


# ---------------------------------------------------------------- segmentations


def crowd_flag(value) -> int | None:
    """``iscrowd`` by value: absent, false, 0, ``"0"`` -> 0; true, 1, ``"1"`` -> 1; anything else None.

    Some exporters write the flag as a string; ``"0"`` is truthy in Python, so testing the
    raw value would draw every object of such a file as a crowd (ignore).
    """
    if value is None or isinstance(value, bool):
        return int(bool(value))
    if isinstance(value, str):
        value = value.strip()
        return int(value) if value in ("0", "1") else None
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    return None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def rle_string_counts(counts: str) -> list[int]:
    """Run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), validated."""
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("the RLE string ends inside a number")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {counts[p]!r} at position {p} is not COCO RLE")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _check_runs(runs, height: int, width: int) -> None:
    if any(not isinstance(r, int) or isinstance(r, bool) or r < 0 for r in runs):
        raise ValueError("the RLE has a negative or non-integer run length")
    total = sum(runs)
    if total != height * width:
        raise ValueError(f"the RLE covers {total} pixels, the {width}x{height} image has {height * width}")


def boundary_limit(height: int, width: int) -> int:
    """The longest polygon boundary (pixels, all parts of one annotation) rasterised: 64 image
    perimeters' worth plus 1 M px, at most about 210 MB in pycocotools for an 8000x8000 image."""
    return 64 * (height + width) + (1 << 20)


def _check_parts(parts: list[list[float]], height: int, width: int) -> None:
    """ValueError for a polygon part with a point far outside the image, or boundaries too long to rasterise."""
    length = 0.0
    for i, part in enumerate(parts):
        xy = np.asarray(part, dtype=np.float64).reshape(-1, 2)
        point = far_point(xy, height, width)
        if point is not None:
            raise ValueError(far_point_problem(f"polygon part #{i}", point, height, width))
        steps = np.abs(np.diff(xy, axis=0, append=xy[:1]))
        length += float(steps.max(axis=1).sum())
    if length > boundary_limit(height, width):
        raise ValueError(
            f"the polygon boundary is {length:.0f} px long, more than {boundary_limit(height, width)} px "
            f"for a {width}x{height} image; the polygon is corrupt"
        )


def segmentation_mask(segmentation, height: int, width: int) -> tuple[np.ndarray, list[str]]:
    """Decode a COCO ``segmentation`` into a ``[H, W]`` bool mask, as ``annToMask``.

    Returns ``(mask, warnings)``; raises ValueError with the reason for a bad one.
    """
    from pycocotools import mask as mask_utils

    warnings: list[str] = []
    if isinstance(segmentation, list):
        if not segmentation:
            raise ValueError("no segmentation (a box only)")
        parts = []
        for i, part in enumerate(segmentation):
            if not isinstance(part, list) or not all(_is_number(v) for v in part) or len(part) % 2:
                raise ValueError(f"polygon part #{i} is not a flat list of x, y numbers")
            if len(part) < 6:
                warnings.append(f"polygon part #{i} has {len(part) // 2} point(s) (fewer than 3) and no area; dropped")
                continue
            parts.append([float(v) for v in part])
        if not parts:
            return np.zeros((height, width), bool), warnings
        _check_parts(parts, height, width)
        rle = mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
    elif isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if not isinstance(size, list) or len(size) != 2 or [height, width] != size:
            raise ValueError(f"RLE size {size!r} is not the image's [height, width] = [{height}, {width}]")
        if isinstance(counts, list):
            _check_runs(counts, height, width)
            rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        elif isinstance(counts, str):
            _check_runs(rle_string_counts(counts), height, width)
            rle = {"size": [height, width], "counts": counts.encode("ascii")}
        else:
            raise ValueError("RLE counts must be a list of run lengths or a compressed string")
    else:
        raise ValueError("segmentation must be a list of polygons or an RLE object")
    return mask_utils.decode(rle).astype(bool), warnings


def mask_shape(label: str, mask: np.ndarray, group_id: int) -> Shape | None:
    """A Labelme ``mask`` shape holding ``mask`` cropped to its box (None if it is empty)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    crop = np.ascontiguousarray(mask[y0 : y1 + 1, x0 : x1 + 1])
    return Shape(label, "mask", ((float(x0), float(y0)), (float(x1), float(y1))), crop, group_id)


# ---------------------------------------------------------------------- reader


@dataclass(frozen=True)
class CocoImage:
    """One ``images`` entry and the byte spans of its annotations in the JSON file."""

    image_id: int = -1
    file_name: str = ""
    width: int = 0
    height: int = 0
    spans: tuple[tuple[int, int], ...] = ()
    labels: tuple[str, ...] = ()
    error: str | None = None


def _index_bar(json_path: Path):
    """A tqdm bar over the JSON's bytes, without tqdm's monitor thread.

    The monitor thread would still run when the worker pool starts, and a process with
    threads starts its workers with the slower ``forkserver`` (:func:`xray_seg.core.processes.start_method`).
    """
    import sys

    from tqdm import tqdm

    class _Bar(tqdm):
        monitor_interval = 0

    return _Bar(total=json_path.stat().st_size, desc="index", unit="B", unit_scale=True, file=sys.stderr)


def _image_key(json_path: Path, name: str) -> str:
    return f"{json_path}[{name}]"


class CocoReader(Reader):
    """A COCO instance JSON and its images folder (see the module docstring)."""

    source = "coco"
    parallel_scan = False

    def __init__(self, json_path: Path, images: str | Path | None = None):
        self.json_path = Path(json_path)
        self.images_dir = Path(images) if images else self.json_path.parent
        super().__init__(self.images_dir)
        self.categories: dict[int, str] = {}
        self._warnings: list[tuple[str, str]] = []

    @property
    def input_paths(self) -> list[Path]:
        return [self.json_path, self.images_dir]

    def declared_labels(self) -> set[str]:
        return set(self.categories.values())

    def input_warnings(self) -> list[tuple[str, str]]:
        return list(self._warnings)

    def _check_input(self) -> None:
        if not self.json_path.is_file():
            raise DatasetError(
                "COCO JSON file not found", path=self.json_path, fix="pass the instances .json file of the dataset"
            )
        if not self.images_dir.is_dir():
            raise DatasetError(
                "images folder not found",
                path=self.images_dir,
                fix="pass --images DIR (the folder the file_name entries are relative to)",
            )

    def items(self, progress: bool = False) -> list[Item]:
        self._check_input()
        bar = _index_bar(self.json_path) if progress else None
        images: list[dict] = []
        raw_categories = None
        ann = {k: array("q") for k in ("image", "category", "crowd", "offset", "length")}
        bad_annotations = 0
        for key, obj, off, length, stream in iter_top_level(self.json_path):
            if bar is not None and off - bar.n > CHUNK:
                bar.update(off - bar.n)
            if key == "annotations":
                image_id = obj.get("image_id") if isinstance(obj, dict) else None
                if not isinstance(image_id, int) or isinstance(image_id, bool):
                    bad_annotations += 1
                    continue
                category = obj.get("category_id")
                ann["image"].append(image_id)
                ann["category"].append(
                    category if isinstance(category, int) and not isinstance(category, bool) else -(2**62)
                )
                crowd = crowd_flag(obj.get("iscrowd"))
                ann["crowd"].append(-1 if crowd is None else crowd)
                ann["offset"].append(off)
                ann["length"].append(length)
            elif key == "images":
                images.append(stream.utf8(off, length) if isinstance(obj, dict) else obj)
            elif key == "categories":
                raw_categories = stream.utf8(off, length)
        if bar is not None:
            bar.update(bar.total - bar.n)
            bar.close()
        if not isinstance(raw_categories, list) or not images:
            raise DatasetError(
                "not a COCO instance file (it needs non-empty 'images' and a 'categories' list)",
                path=self.json_path,
                fix="pass the instances_*.json file of the dataset",
            )
        self._read_categories(raw_categories)
        if bad_annotations:
            self._warnings.append(
                (str(self.json_path), f"{bad_annotations} annotation(s) without an integer image_id; ignored")
            )
        return self._group(images, ann)

    def _read_categories(self, raw_categories: list) -> None:
        """``categories`` into ``{id: name}``; one id under two names is refused (which would win?)."""
        for c in raw_categories:
            if isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str):
                earlier = self.categories.setdefault(c["id"], c["name"])
                if earlier != c["name"]:
                    raise DatasetError(
                        f"category id {c['id']} is listed twice, as {earlier!r} and as {c['name']!r}",
                        path=self.json_path,
                        fix="give each category its own id (and check which name its annotations mean)",
                    )

    def _group(self, images: list, ann: dict) -> list[Item]:
        image_of = np.frombuffer(ann["image"], np.int64) if len(ann["image"]) else np.zeros(0, np.int64)
        order = np.argsort(image_of, kind="stable")
        sorted_ids = image_of[order]
        items, seen = [], set()
        for i, entry in enumerate(images):
            where = f"images #{i}"
            if not isinstance(entry, dict):
                items.append(
                    Item(_image_key(self.json_path, where), f"<{where}>", CocoImage(error=f"{where} is not an object"))
                )
                continue
            image_id, name = entry.get("id"), entry.get("file_name")
            width, height = entry.get("width"), entry.get("height")
            if not isinstance(name, str) or not name.strip():
                items.append(
                    Item(_image_key(self.json_path, where), f"<{where}>", CocoImage(error=f"{where} has no file_name"))
                )
                continue
            key = _image_key(self.json_path, name)
            stem = Path(name.replace("\\", "/")).stem
            if not isinstance(image_id, int) or image_id in seen:
                why = (
                    "no integer id" if not isinstance(image_id, int) else f"the image id {image_id} of an earlier entry"
                )
                items.append(Item(key, stem, CocoImage(file_name=name, error=f"{where} has {why}")))
                continue
            seen.add(image_id)
            lo, hi = np.searchsorted(sorted_ids, image_id, "left"), np.searchsorted(sorted_ids, image_id, "right")
            idx = order[lo:hi]
            spans = tuple((int(ann["offset"][j]), int(ann["length"][j])) for j in idx)
            labels = tuple(
                sorted(
                    {
                        self.categories[c]
                        for j in idx
                        if ann["crowd"][j] != 1 and (c := ann["category"][j]) in self.categories
                    }
                )
            )
            error = None
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
                error = f"{where} ({name}) needs positive integer width and height"
            items.append(Item(key, stem, CocoImage(image_id, name, width or 0, height or 0, spans, labels, error)))
        known = set(seen)
        orphans = sum(1 for v in np.unique(image_of) if int(v) not in known) if image_of.size else 0
        if orphans:
            self._warnings.append(
                (str(self.json_path), f"annotations refer to {orphans} image id(s) not in 'images'; ignored")
            )
        return sorted(items, key=lambda it: it.key)

    def _image_file(self, item: Item) -> Path:
        name = item.ref.file_name
        rel = name.replace("\\", "/")
        root = Path(os.path.abspath(self.images_dir))
        candidate = Path(os.path.normpath(os.path.join(root, rel)))
        if os.path.isabs(rel) or not candidate.is_relative_to(root):
            raise DatasetError(
                f"file_name {name!r} leads outside the images folder {root}; refused",
                path=item.key,
                fix="keep the images under --images and file_name relative to it",
            )
        return candidate

    def scan(self, item: Item) -> Scan:
        ref: CocoImage = item.ref
        if ref.error:
            return Scan(item.key, error=ref.error)
        try:
            return Scan(item.key, ref.labels, str(self._image_file(item)))
        except XraySegError as exc:
            return Scan(item.key, error=exc.message)

    def _annotations(self, item: Item) -> list:
        """The annotations of ``item``, re-read from their byte spans (DatasetError naming it if they
        are not UTF-8 JSON objects any more, e.g. the file changed since it was indexed)."""
        out = []
        with open(self.json_path, "rb") as f:
            for off, length in item.ref.spans:
                f.seek(off)
                try:
                    value = json.loads(f.read(length).decode("utf-8"))
                except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
                    value = None
                if not isinstance(value, dict):
                    raise DatasetError(
                        f"the annotation at byte {off} is not a UTF-8 JSON object",
                        path=item.key,
                        fix="re-export the COCO file (and do not edit it during the conversion)",
                    )
                out.append(value)
        return out

    def read(self, item: Item) -> AnnotatedScan:
        ref: CocoImage = item.ref
        if ref.error:
            raise DatasetError(ref.error, path=item.key, fix="correct the entry in the COCO file")
        image_file = self._image_file(item)
        return build_scan(
            Path(item.key),
            read_image_file(image_file, item.key, "pass --images DIR holding the file_name paths"),
            source=image_file,
            image_file=image_file,
            check_size=lambda height, width: check_declared_size(
                (height, width),
                (ref.height, ref.width),
                where=item.key,
                said="the COCO entry",
                fix="the entry belongs to another image: correct file_name or the size",
            ),
            make_shapes=lambda height, width: self._shapes(item, self._annotations(item), height, width),
        )

    def _shapes(self, item: Item, annotations: list, height: int, width: int) -> tuple[list[Shape], list[str]]:
        drawn: list[tuple[int, int, Shape]] = []
        warnings: list[str] = []
        for pos, a in enumerate(annotations):
            ident = a.get("id", f"#{pos}")
            category = a.get("category_id")
            if not isinstance(category, int) or isinstance(category, bool) or category not in self.categories:
                raise DatasetError(
                    f"annotation {ident}: category_id {category!r} is not in 'categories'",
                    path=item.key,
                    fix="add the category or remove the annotation",
                )
            try:
                mask, notes = segmentation_mask(a.get("segmentation"), height, width)
            except ValueError as exc:
                raise DatasetError(
                    f"annotation {ident} ({self.categories[category]!r}): {exc}",
                    path=item.key,
                    fix="correct or remove the annotation, or re-export it (pycocotools must be able to decode it)",
                ) from None
            warnings += [f"annotation {ident}: {n}" for n in notes]
            crowd = crowd_flag(a.get("iscrowd"))
            if crowd is None:
                raise DatasetError(
                    f"annotation {ident}: iscrowd is {a.get('iscrowd')!r}, not 0 or 1",
                    path=item.key,
                    fix="write iscrowd as 0 (one object) or 1 (a crowd region)",
                )
            label = IGNORE_NAME if crowd else self.categories[category]
            shape = mask_shape(label, mask, pos)
            if shape is None:
                warnings.append(f"annotation {ident} ({self.categories[category]!r}) has an empty mask; nothing drawn")
                continue
            drawn.append((-int(mask.sum()), pos, shape))
        drawn.sort(key=lambda t: (t[0], t[1]))
        return [s for _, _, s in drawn], warnings


__all__ = [
    "CocoImage",
    "CocoReader",
    "boundary_limit",
    "iter_top_level",
    "mask_shape",
    "rle_string_counts",
    "segmentation_mask",
]
