"""The values every stage shares, defined once (docs/architecture.md, "Conventions").

- Labels: 0 is background, 1..K-1 are the classes in ``class_names.txt`` order and
  :data:`IGNORE_LABEL` (255) is ignore: the converter, pipeline, losses, metrics and the
  serving signatures all use this one value.
- Image magic bytes: how the pipeline and the ``serve_encoded`` signature tell an encoded
  PNG from a JPEG.
- Image file suffixes, one tuple per meaning: what a VOC ``JPEGImages/`` folder holds,
  what ``predict`` reads from a folder of scans, and what the CycleGAN photo domains read.
"""

from __future__ import annotations

IGNORE_LABEL = 255
"""Label value of pixels that no loss or metric counts (labelme's -1 is stored as 255)."""

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
"""The eight bytes an encoded PNG starts with."""

JPEG_MAGIC = b"\xff\xd8\xff"
"""The three bytes an encoded JPEG starts with (SOI marker, then the next marker's 0xFF)."""

VOC_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Image files in a VOC ``JPEGImages/`` folder (what ``convert`` writes and the pipeline decodes)."""

SCAN_IMAGE_SUFFIXES = VOC_IMAGE_SUFFIXES + (".bmp", ".tif", ".tiff")
"""Image files ``predict`` takes from a folder of scans."""

PHOTO_IMAGE_SUFFIXES = SCAN_IMAGE_SUFFIXES + (".webp",)
"""Image files of a CycleGAN domain folder (any format Pillow reads)."""
