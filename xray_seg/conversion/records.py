"""The record readers of ``xray-seg convert``: one per annotation format, one record for all.

:mod:`xray_seg.conversion.convert` runs the same machinery (validation, worker pool,
atomic VOC writing, split, summary; docs/architecture.md, "conversion") for every
source. What differs is only how an annotated image is found and read, and that is a
:class:`Reader`:

* :class:`LabelmeReader` (this module): a folder of Labelme ``*.json`` files
  (:mod:`xray_seg.conversion.labelme`).
* ``CocoReader`` (:mod:`xray_seg.conversion.coco`): one COCO instance JSON (PIDray).
* ``PixrayReader`` (:mod:`xray_seg.conversion.pixray`): PIXray's per-image JSON files.

A reader lists :class:`Item` s (one per image: the name that failures carry, the output
stem and a small picklable reference), scans each for its labels and image file (for
the unknown-label and duplicate checks, before anything is written) and reads each into
the common in-memory record, a :class:`~xray_seg.conversion.labelme.LabelmeRecord`:
the decoded ``[H, W, 3]`` uint8 image, its encoded bytes (for ``--image-format copy``)
and its :class:`~xray_seg.conversion.labelme.Shape` s in draw order. Every source maps
onto Labelme's shapes: polygons stay polygons, and decoded COCO masks (polygon or RLE)
become ``mask`` shapes cropped to their box. ``Shape.group_id`` says which shapes form
one instance (:mod:`xray_seg.conversion.instances`). The rasteriser and writer consume
that record and never look at the source format.

Readers are pickled into the worker processes with each job, so they hold only small
settings; the per-image data travel in the items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xray_seg.conversion.labelme import (
    LabelmeRecord,
    image_flags,
    image_reference,
    load_labelme_json,
    read_labelme,
    shape_labels,
)
from xray_seg.core.errors import DatasetError, XraySegError

#: The in-memory record every reader produces (the Labelme record's fields serve all sources).
Record = LabelmeRecord

SOURCES = ("labelme", "coco", "pixray")


@dataclass(frozen=True)
class Item:
    """One annotated image of a source.

    Args:
        key: what failures and warnings name: the JSON file, or ``<coco.json>[file_name]``.
        stem: the output stem (``JPEGImages/<stem>.png`` ...).
        ref: the reader's own picklable reference to the image's annotations.
    """

    key: str
    stem: str
    ref: Any = None


@dataclass(frozen=True)
class Scan:
    """Labels, image file and image-level flags (``(name, bool)`` pairs: Labelme's ``flags``,
    which become the VOC folder's subsets) of one item, or why it could not be scanned."""

    key: str
    labels: tuple[str, ...] = ()
    image: str | None = None
    error: str | None = None
    flags: tuple[tuple[str, bool], ...] = ()


class Reader:
    """The interface :func:`xray_seg.conversion.convert.convert` drives (see the module docstring).

    Attributes:
        source: ``labelme``, ``coco`` or ``pixray``.
        root: the folder that must not lie inside the output folder (the input).
        parallel_scan: scan items in the worker pool (False when the scan is a cheap
            look-up in memory, as for COCO).
    """

    source = ""
    parallel_scan = True

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def input_paths(self) -> list[Path]:
        """Files and folders that must not lie inside the output folder."""
        return [self.root]

    def items(self, progress: bool = False) -> list[Item]:
        """The items, sorted by key (DatasetError if there are none); ``progress``: show a bar if slow."""
        raise NotImplementedError

    def scan(self, item: Item) -> Scan:
        """Labels and image file of ``item``; never raises for a bad item."""
        raise NotImplementedError

    def read(self, item: Item) -> Record:
        """Read and validate ``item`` (DatasetError naming it if it is bad)."""
        raise NotImplementedError

    def input_warnings(self) -> list[tuple[str, str]]:
        """``(path, message)`` about the input as a whole, found by :meth:`items`."""
        return []

    def declared_labels(self) -> set[str] | None:
        """Every label the input declares (COCO's categories), or None if it declares none."""
        return None


class LabelmeReader(Reader):
    """A folder of Labelme ``*.json`` files (and their images); see :mod:`~xray_seg.conversion.labelme`."""

    source = "labelme"

    def __init__(self, root: Path, recursive: bool = False):
        super().__init__(root)
        self.recursive = recursive

    def items(self, progress: bool = False) -> list[Item]:
        from xray_seg.conversion.convert import list_labelme_files

        return [Item(str(f), f.stem, f) for f in list_labelme_files(self.root, self.recursive)]

    def scan(self, item: Item) -> Scan:
        try:
            data = load_labelme_json(item.ref)
            ref = image_reference(data, item.ref, self.root)
            return Scan(item.key, tuple(shape_labels(data)), None if ref is None else str(ref), flags=image_flags(data))
        except XraySegError as exc:
            return Scan(item.key, error=exc.message)

    def read(self, item: Item) -> Record:
        return read_labelme(item.ref, self.root)


def make_reader(
    source: str, input_path: str | Path, *, images: str | Path | None = None, recursive: bool = False
) -> Reader:
    """The reader of ``source`` for ``input_path`` (a folder, or COCO's JSON file)."""
    if source == "labelme":
        return LabelmeReader(Path(input_path), recursive)
    if source == "coco":
        from xray_seg.conversion.coco import CocoReader

        return CocoReader(Path(input_path), images)
    if source == "pixray":
        from xray_seg.conversion.pixray import PixrayReader

        return PixrayReader(Path(input_path), images, recursive)
    raise DatasetError(f"unknown source {source!r}", fix=f"use one of {', '.join(SOURCES)}")


__all__ = ["Item", "LabelmeReader", "Reader", "Record", "SOURCES", "Scan", "make_reader"]
