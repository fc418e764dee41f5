"""Reading and decoding image files: the one image reader of convert, pipeline, predict and evaluate.

Decoding policy (:func:`decode_image`; the pipeline and the models take 3-channel uint8, 0..255)
    * 8-bit RGB: unchanged.
    * grayscale (``L``, ``1``): replicated to 3 identical channels.
    * 16-bit (``I;16``, ``I``; X-ray scanners often write 16-bit PNG): fixed scaling that
      keeps the high byte, ``v >> 8`` (65535 -> 255), so a grey level (an attenuation)
      means the same in every image and at the inspection station. It is also what
      Pillow and TensorFlow do with 16-bit colour PNGs. 12-bit data stored in 16-bit
      files gives dark images (0..15): rescale such data to the full range first.
    * with alpha (``RGBA``, ``LA``, ``PA``, palette with transparency): composited on
      white, because in an X-ray image "nothing there" is white (air transmits fully).
    * palette, CMYK, YCbCr and other 8-bit modes: converted to RGB by Pillow.
    * float images (``F``) are refused: there is no single sensible scale for them.
    * EXIF orientation is applied, as labelme does when it opens an image file.

Reading (:func:`read_image_bytes`, the one way an image file is read)
    * regular files only: the file is opened non-blocking and checked with ``fstat``, so a
      FIFO is refused at once instead of hanging, and ``/dev/zero`` (or a symlink to it) is
      refused instead of read until memory runs out;
    * the header is read first (at most :data:`HEADER_BYTES`) and the pixel limit
      (:func:`xray_seg.core.pixel_limit.check_pixels`) checked from it, before the payload;
    * never more than the header implies: a PNG is read chunk by chunk up to its ``IEND``
      chunk, any other format up to :func:`payload_bytes` (twice the raw pixel data, plus
      :data:`HEADER_BYTES` for metadata). Bytes past that (a 64x64 PNG with a 6 GiB sparse
      tail) are never read; a decoder that needed them reports a truncated image.

The pixel limit is checked from the header before anything is decoded. :func:`png_info` walks a PNG's chunks (CRCs, IEND,
size, bit depth, colour type, palette) without decoding it.
"""

from __future__ import annotations

import io
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from xray_seg.core.constants import PNG_MAGIC
from xray_seg.core.errors import DatasetError
from xray_seg.core.fileio import open_regular
from xray_seg.core.pixel_limit import bomb_error, check_pixels, max_pixels

#: Pillow modes whose stored bytes the training pipeline's own decoder turns into the same
#: pixels as :func:`decode_image` (no alpha, no colour space): ``--image-format copy`` copies them.
PLAIN_MODES = frozenset({"1", "L", "P", "RGB", "I;16", "I;16B", "I;16L", "I;16N", "I"})
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_REDO = "replace the file or re-run `xray-seg convert`"
#: Bytes read before an image's size is known (EXIF blocks, ICC profiles, text), and the
#: slack for such metadata on top of the pixel data (:func:`payload_bytes`).
HEADER_BYTES = 16 << 20
_BYTES_PER_BAND = {"1": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "I": 4, "F": 4}


def _to_rgb_uint8(img) -> np.ndarray:
    """Convert a decoded Pillow image to ``[H, W, 3]`` uint8 (policy: module docstring)."""
    from PIL import Image

    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img)
        if arr.dtype != np.uint16:
            arr = np.clip(arr, 0, 65535).astype(np.uint16)
        gray = (arr >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "F":
        raise ValueError("floating-point images are not supported")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode in ("P", "L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        out = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if mode in ("1", "L"):
        gray = np.asarray(img.convert("L"))
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode != "RGB":
        img = img.convert("RGB")
    assert isinstance(img, Image.Image)
    return np.asarray(img, dtype=np.uint8).copy()


def _open(data: bytes, source):
    """A Pillow image of ``data`` (not yet decoded), its size within the pixel limit."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Our own pixel limit is checked from the header before decoding (below).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise DatasetError(
            "cannot decode the image (not a known image format, or corrupt)",
            path=source,
            fix="re-export the image as PNG or JPEG",
        ) from None
    except Image.DecompressionBombError as exc:  # over twice Pillow's limit (aligned with ours)
        raise bomb_error(exc, source) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"cannot decode the image ({exc})", path=source, fix="re-export the image as PNG or JPEG"
        ) from None
    check_pixels(img.size[1], img.size[0], source)
    return img


def decode_image(data: bytes, *, source: str | Path) -> tuple[np.ndarray, str, str, bool]:
    """Decode encoded image bytes to ``(rgb uint8 [H,W,3], format, mode, exif_rotated)``.

    ``source`` names the file in the DatasetError raised for undecodable data.
    """
    from PIL import Image, ImageOps

    img = _open(data, source)
    try:
        with img, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
            fmt, mode = img.format or "unknown", img.mode
            try:
                orientation = int(img.getexif().get(0x0112, 1) or 1)
            except Exception:  # a broken EXIF block must not fail the image
                orientation = 1
            rotated = orientation in range(2, 9)
            if rotated:
                img = ImageOps.exif_transpose(img)
            rgb = _to_rgb_uint8(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(
            f"cannot decode the image ({exc})",
            path=source,
            fix="re-export the image as PNG or JPEG",
        ) from None
    return rgb, fmt, mode, rotated


def payload_bytes(height: int, width: int, mode: str) -> int:
    """The most bytes an encoded ``height x width`` image of Pillow ``mode`` may take: twice its
    raw pixel data plus :data:`HEADER_BYTES` of metadata (no real encoder comes near it)."""
    bands = len(mode) if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "LA", "PA", "RGBX") else 1
    return 2 * height * width * bands * _BYTES_PER_BAND.get(mode, 1) + 2 * height + HEADER_BYTES


class _Budget(io.RawIOBase):
    """A read-only view of a file that fails once more than ``limit`` bytes were read (header parsing)."""

    def __init__(self, f: BinaryIO, limit: int):
        self.f, self.left = f, limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            raise OSError(f"no image size within the first {HEADER_BYTES >> 20} MiB")
        data = self.f.read(min(len(buffer), self.left))
        self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def _check_declared(height: int, width: int, path) -> None:
    """The pixel limit on the size a header declares, with the message of a Pillow bomb (one text for both)."""
    if height * width > max_pixels():
        raise bomb_error(ValueError(f"({height * width} pixels)"), path)


def _header(f: BinaryIO, path) -> tuple[int, int, str]:
    """``(height, width, mode)`` from the header of the open image file (within :data:`HEADER_BYTES`)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
            with Image.open(io.BufferedReader(_Budget(f, HEADER_BYTES))) as img:
                width, height = img.size
                return int(height), int(width), img.mode
    except UnidentifiedImageError:
        raise DatasetError(
            "cannot decode the image (not a known image format, or corrupt)",
            path=path,
            fix="re-export the image as PNG or JPEG",
        ) from None
    except Image.DecompressionBombError as exc:
        raise bomb_error(exc, path) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DatasetError(
            f"cannot read the image header ({exc})", path=path, fix="re-export the image as PNG or JPEG"
        ) from None


def _read_png(f: BinaryIO, path) -> bytes:
    """A PNG's bytes from its signature through ``IEND`` (what follows is never read), bounded
    by :func:`payload_bytes` of the size in ``IHDR``, which is checked against the pixel limit first."""
    parts, total, limit = [f.read(8)], 8, HEADER_BYTES
    while True:
        head = f.read(8)
        if len(head) < 8:  # truncated: the decoder reports it
            parts.append(head)
            break
        length, kind = int.from_bytes(head[:4], "big"), head[4:8]
        total += 12 + length
        if total > limit:
            raise DatasetError(
                f"the PNG holds more data before IEND than a {limit - HEADER_BYTES}-byte image needs"
                f" (a {kind.decode('latin-1')!r} chunk of {length} bytes)",
                path=path,
                fix=_REDO,
            )
        body = f.read(length + 4)
        parts += [head, body]
        if kind == b"IHDR" and length == 13:
            width, height = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big")
            _check_declared(height, width, path)
            channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(body[9], 4)
            limit = 2 * height * (1 + (width * channels * max(body[8], 1) + 7) // 8) + HEADER_BYTES
        if kind == b"IEND" or len(body) < length + 4:
            break
    return b"".join(parts)


def read_image_bytes(path: str | Path, what: str = "image") -> bytes:
    """The encoded bytes of an image file, read as the module docstring says (regular files
    only, header first, never more than the header implies); DatasetError naming ``path``."""
    with open_regular(path, what) as f:
        if f.read(8) == PNG_MAGIC:
            f.seek(0)
            return _read_png(f, path)
        f.seek(0)
        height, width, mode = _header(f, path)
        _check_declared(height, width, path)
        f.seek(0)
        return f.read(payload_bytes(height, width, mode))


def read_image_header(path: str | Path, what: str = "image") -> tuple[int, int]:
    """``(height, width)`` from an image file's header alone (regular files only, the pixel limit
    checked): a cheap check of many files before slow work; DatasetError naming ``path``."""
    with open_regular(path, what) as f:
        height, width, _mode = _header(f, path)
    _check_declared(height, width, path)
    return height, width


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file (:func:`read_image_bytes`) as ``[H, W, 3]`` RGB uint8 (:func:`decode_image`)."""
    return decode_image(read_image_bytes(path), source=path)[0]


def png_info(path: str | Path, data: bytes) -> tuple[tuple[int, int], int, int, bytes]:
    """Walk the chunks of a PNG, checking every CRC; return ``((h, w), bit depth, colour type, PLTE)``.

    DatasetError naming ``path`` for a bad signature, a CRC mismatch or a missing IEND chunk.
    """
    if not data.startswith(PNG_MAGIC):
        raise DatasetError(
            "not a PNG file (bad signature)", path=path, fix="re-export the file as PNG or re-run `xray-seg convert`"
        )
    pos, size, depth, colour, palette = 8, None, 0, 0, b""
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            break
        body = data[pos + 8 : pos + 8 + length]
        if zlib.crc32(data[pos + 4 : pos + 8 + length]) != int.from_bytes(data[end - 4 : end], "big"):
            raise DatasetError(f"corrupt PNG (CRC mismatch in {kind.decode('latin-1')} chunk)", path=path, fix=_REDO)
        if kind == b"IHDR":
            size = (int.from_bytes(body[4:8], "big"), int.from_bytes(body[0:4], "big"))
            depth, colour = body[8], body[9]
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IEND":
            if size is None:
                break
            return size, depth, colour, palette
        pos = end
    raise DatasetError("truncated or corrupt PNG (no complete IEND chunk)", path=path, fix=_REDO)


def decode_fully(path: str | Path, data: bytes, size: tuple[int, int], kind: str) -> np.ndarray:
    """Decode ``data`` (of ``size`` ``(h, w)``) completely to Pillow's array, as stored (no conversion).

    Corrupt compressed data fails here with a DatasetError naming ``path`` and ``kind``.
    """
    from PIL import Image

    check_pixels(size[0], size[1], path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                return np.asarray(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"corrupt {kind} data ({exc})", path=path, fix=_REDO) from None


__all__ = [
    "HEADER_BYTES",
    "PLAIN_MODES",
    "decode_fully",
    "decode_image",
    "payload_bytes",
    "png_info",
    "read_image_bytes",
    "read_image_rgb",
]
