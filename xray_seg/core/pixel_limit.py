"""The pixel limit on every decoded image (converter, training pipeline, ``predict``, both
serving signatures; docs/data_safety.md).

The default is :data:`DEFAULT_MAX_PIXELS` (64 M pixels, e.g. 8000 x 8000); raise it with the
environment variable ``XRAY_SEG_MAX_PIXELS`` or the ``--max-pixels`` option that every
command takes. An image declaring more pixels is refused from its header, before it is
decoded, so a 200 KB PNG cannot cost gigabytes of memory.
"""

from __future__ import annotations

import os
import re

from xray_seg.core.errors import ConfigError, DatasetError

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image (height x width) any command decodes, unless raised (module docstring)."""
MAX_PIXELS_ENV = "XRAY_SEG_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel limit in force: ``$XRAY_SEG_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(
            f"{MAX_PIXELS_ENV}={raw!r} is not a positive number of pixels", fix=f"e.g. {MAX_PIXELS_ENV}=100000000"
        )
    return value


def pixel_limit_error(height: int, width: int, source, limit: int | None = None) -> DatasetError:
    limit = max_pixels() if limit is None else limit
    return DatasetError(
        f"image is {height}x{width} = {height * width / 1e6:.1f} M pixels, over the limit of {limit / 1e6:.1f} M pixels",
        path=source,
        fix=f"shrink or tile the image, or raise the limit with --max-pixels N (or {MAX_PIXELS_ENV}=N)",
    )


def bomb_error(exc: Exception, source) -> DatasetError:
    """Our pixel-limit message for Pillow's DecompressionBombError (its text holds the pixel count)."""
    match = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(match[1]) / 1e6:.1f} M pixels" if match else "too many pixels"
    limit = max_pixels()
    return DatasetError(
        f"image declares {size}, over the limit of {limit / 1e6:.1f} M pixels",
        path=source,
        fix=f"shrink or tile the image, or raise the limit with --max-pixels N (or {MAX_PIXELS_ENV}=N)",
    )


def check_pixels(height: int, width: int, source, limit: int | None = None) -> None:
    """DatasetError naming ``source`` if ``height x width`` exceeds the pixel limit."""
    limit = max_pixels() if limit is None else limit
    if int(height) * int(width) > limit:
        raise pixel_limit_error(int(height), int(width), source, limit)
