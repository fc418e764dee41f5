"""The annotation sources of ``xray-seg convert``: one reader per format, one record for all.

* :class:`LabelmeReader` (this module): a folder of Labelme ``*.json`` files
  (:mod:`xray_seg.conversion.labelme`).
* :class:`~xray_seg.conversion.coco.CocoReader`: one COCO instance JSON (PIDray).
* :class:`~xray_seg.conversion.pixray.PixrayReader`: PIXray's per-image JSON files.

Each is a :class:`~xray_seg.conversion.readers.Reader` and reads every annotated image
into an :class:`~xray_seg.conversion.annotation.AnnotatedScan`; :func:`make_reader`
picks the one of a source name.
"""

from __future__ import annotations

from pathlib import Path

from xray_seg.conversion.annotation import AnnotatedScan
from xray_seg.conversion.coco import CocoReader
from xray_seg.conversion.labelme import image_flags, image_reference, load_labelme_json, read_labelme, shape_labels
from xray_seg.conversion.pixray import PixrayReader
from xray_seg.conversion.readers import Item, Reader, Scan, list_json_files
from xray_seg.core.errors import DatasetError, XraySegError

SOURCES = ("labelme", "coco", "pixray")


class LabelmeReader(Reader):
    """A folder of Labelme ``*.json`` files (and their images); see :mod:`~xray_seg.conversion.labelme`."""

    source = "labelme"

    def __init__(self, root: Path, recursive: bool = False, images: Path | None = None):
        super().__init__(root)
        self.recursive = recursive
        self.images = images  # a second folder imagePath may lead into (pre-annotations' scans)

    @property
    def input_paths(self) -> list[Path]:
        return [self.root] + ([self.images] if self.images is not None else [])

    def items(self, progress: bool = False) -> list[Item]:
        if self.images is not None and not self.images.is_dir():
            raise DatasetError("images folder not found", path=self.images, fix="pass --images DIR holding the scans")
        return [Item(str(f), f.stem, f) for f in list_json_files(self.root, self.recursive)]

    def scan(self, item: Item) -> Scan:
        try:
            data = load_labelme_json(item.ref)
            ref = image_reference(data, item.ref, self.root, self.images)
            return Scan(item.key, tuple(shape_labels(data)), None if ref is None else str(ref), flags=image_flags(data))
        except XraySegError as exc:
            return Scan(item.key, error=exc.message)

    def read(self, item: Item) -> AnnotatedScan:
        return read_labelme(item.ref, self.root, self.images)


def make_reader(
    source: str, input_path: str | Path, *, images: str | Path | None = None, recursive: bool = False
) -> Reader:
    """The reader of ``source`` for ``input_path`` (a folder, or COCO's JSON file)."""
    if source == "labelme":
        return LabelmeReader(Path(input_path), recursive, Path(images) if images else None)
    if source == "coco":
        return CocoReader(Path(input_path), images)
    if source == "pixray":
        return PixrayReader(Path(input_path), images, recursive)
    raise DatasetError(f"unknown source {source!r}", fix=f"use one of {', '.join(SOURCES)}")


__all__ = ["LabelmeReader", "SOURCES", "make_reader"]
