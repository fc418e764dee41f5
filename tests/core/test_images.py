"""The one image reader (:func:`xray_seg.core.images.read_image_bytes`, issue 28): regular files
only, header and pixel limit before the payload, never more bytes than the header implies."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from xray_seg.core.errors import DatasetError
from xray_seg.core.images import HEADER_BYTES, decode_image, read_image_bytes, read_image_rgb


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "missing"])
def test_only_regular_files_are_read(tmp_path, kind):
    path = tmp_path / "x.png"
    if kind == "fifo":
        os.mkfifo(path)  # an O_NONBLOCK open: no writer needed, no hang
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    with pytest.raises(DatasetError) as caught:
        read_image_bytes(path)
    expect = {"fifo": "is a FIFO", "device": "is a device", "folder": "is a folder", "missing": "not found"}[kind]
    assert expect in caught.value.message and str(path) in caught.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF"])
def test_a_sparse_tail_is_never_read(tmp_path, fmt):
    path = tmp_path / f"x.{fmt.lower()}"
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(40 << 30)  # 40 GiB, sparse
    data = read_image_bytes(path)
    assert len(data) == size if fmt == "PNG" else len(data) <= 2 * 64 * 64 * 3 + 128 + HEADER_BYTES
    assert read_image_rgb(path).shape == (64, 64, 3)


def test_png_bomb_is_refused_from_ihdr_before_its_payload(tmp_path, monkeypatch):
    monkeypatch.setenv("XRAY_SEG_MAX_PIXELS", "1000000")
    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"\0" * 10) + _chunk(b"IEND", b""))
    with pytest.raises(DatasetError, match="over the limit of 1.0 M pixels"):
        read_image_bytes(path)


def test_png_chunk_larger_than_the_header_implies_is_refused_unread(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)
    path = tmp_path / "huge_chunk.png"
    # a chunk header declaring 2 GiB of data (the bytes are not even there): refused from the length
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + struct.pack(">I", 2**31 - 1) + b"zTXt")
    with pytest.raises(DatasetError, match="more data before IEND"):
        read_image_bytes(path)


def test_sixteen_bit_grey_keeps_its_high_byte(tmp_path):
    path = tmp_path / "g16.png"
    Image.fromarray(np.full((4, 5), 170 * 257, np.uint16)).save(path)
    assert (read_image_rgb(path) == 170).all()
    rgb, fmt, mode, _ = decode_image(read_image_bytes(path), source=path)
    assert fmt == "PNG" and mode.startswith("I")


def test_garbage_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "junk.jpg"
    path.write_bytes(b"not an image at all" * 10)
    with pytest.raises(DatasetError) as caught:
        read_image_bytes(path)
    assert str(path) in caught.value.message and "\n" not in caught.value.message
