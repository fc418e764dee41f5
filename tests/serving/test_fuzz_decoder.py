"""Property-based fuzz target for ``serve_encoded``'s decoder (issue 16).

:func:`xray_seg.serving.graph_decode.decode_rgb_checked` is what the signature runs on every
element; building a SavedModel per example would be slow, so the helper itself is fuzzed,
eagerly. Whatever the bytes (the seed corpus ``tests/fuzz_corpus/images/`` with flipped,
inserted and truncated bytes, declared sizes rewritten, or arbitrary bytes), it returns a
uint8 ``[H, W, 3]`` image within the pixel limit or raises ``InvalidArgumentError``;
never another exception, never a larger image. Bounded: fixed examples, no deadline.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

tf = pytest.importorskip("tensorflow")

from xray_seg.serving.graph_decode import decode_rgb_checked

CORPUS = sorted((Path(__file__).resolve().parents[1] / "fuzz_corpus" / "images").iterdir())
SEEDS = [p.read_bytes() for p in CORPUS]
LIMIT = 4096  # small, so that size rewrites cross it


def _decode(data: bytes):
    try:
        image = decode_rgb_checked(tf.constant(data), LIMIT)
    except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, tf.errors.DataLossError):
        return None
    assert image.dtype == tf.uint8 and image.shape[-1] == 3
    assert 0 < image.shape[0] * image.shape[1] <= LIMIT
    return image


def _with_png_size(data: bytes, height: int, width: int) -> bytes:
    """Rewrite the IHDR size of PNG bytes, fixing the chunk CRC (a plausible bomb header)."""
    ihdr = bytearray(data[8:33])
    ihdr[8:16] = struct.pack(">II", width, height)
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])) & 0xFFFFFFFF)
    return data[:8] + bytes(ihdr) + data[33:]


def test_corpus_decodes():
    assert len(SEEDS) >= 4
    for data in SEEDS:
        assert _decode(data) is not None


@settings(max_examples=150, deadline=None)
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.booleans()), max_size=8),
    truncate=st.integers(1, 2000),
)
def test_mutated_files_decode_or_fail_cleanly(seed, edits, truncate):
    data = bytearray(SEEDS[seed])
    for pos, byte, insert in edits:
        if insert:
            data.insert(pos % (len(data) + 1), byte)
        else:
            data[pos % len(data)] = byte
    _decode(bytes(data[:truncate]) if truncate < len(data) else bytes(data))


@settings(max_examples=60, deadline=None)
@given(height=st.integers(0, 2**31 - 1), width=st.integers(0, 2**31 - 1))
def test_declared_sizes_over_the_limit_are_refused_before_decoding(height, width):
    png = next(d for d, p in zip(SEEDS, CORPUS) if p.name == "rgb.png")
    data = _with_png_size(png, height, width)
    result = _decode(data)
    if height * width > LIMIT:
        assert result is None


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=300)
    | st.binary(max_size=300).map(lambda b: b"\x89PNG\r\n\x1a\n" + b)
    | st.binary(max_size=300).map(lambda b: b"\xff\xd8\xff" + b)
)
def test_arbitrary_bytes_fail_cleanly(data):
    _decode(data)
