"""The reader interface of ``xray-seg convert``: what every annotation source provides.

:mod:`xray_seg.conversion.convert` runs the same machinery (validation, worker pool,
atomic VOC writing, split, summary; docs/architecture.md, "conversion") for every
source. What differs is only how an annotated image is found and read, and that is a
:class:`Reader` (the readers themselves: :mod:`xray_seg.conversion.sources`).

A reader lists :class:`Item` s (one per image: the name that failures carry, the output
stem and a small picklable reference), scans each for its labels and image file (for
the unknown-label and duplicate checks, before anything is written) and reads each into
the common in-memory record, an :class:`~xray_seg.conversion.annotation.AnnotatedScan`.

Readers are pickled into the worker processes with each job, so they hold only small
settings; the per-image data travel in the items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xray_seg.conversion.annotation import AnnotatedScan
from xray_seg.core.errors import DatasetError


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

    def read(self, item: Item) -> AnnotatedScan:
        """Read and validate ``item`` (DatasetError naming it if it is bad)."""
        raise NotImplementedError

    def input_warnings(self) -> list[tuple[str, str]]:
        """``(path, message)`` about the input as a whole, found by :meth:`items`."""
        return []

    def declared_labels(self) -> set[str] | None:
        """Every label the input declares (COCO's categories), or None if it declares none."""
        return None


def list_json_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """The ``*.json`` files of the input folder, sorted (DatasetError if none)."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(
            "input folder not found", path=root, fix="point at the folder holding the Labelme .json files"
        )
    pattern = "**/*.json" if recursive else "*.json"
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    if not files:
        raise DatasetError(
            "no Labelme .json files found" + ("" if recursive else " (sub-folders not searched)"),
            path=root,
            fix="point at the folder holding the .json files" + ("" if recursive else ", or pass --recursive"),
        )
    return files


__all__ = ["Item", "Reader", "Scan", "list_json_files"]
