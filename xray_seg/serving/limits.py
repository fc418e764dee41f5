"""In-graph input limits of the serving signatures (docs/architecture.md, "station" and "Data safety").

An untrusted 150 KB PNG can declare 6000 x 6000 pixels and cost gigabytes once decoded;
TensorFlow itself accepts up to 536 M pixels. The signatures therefore refuse an image
whose declared size exceeds a pixel limit, with an ``InvalidArgumentError`` that says so,
*before* it is decoded:

- :func:`encoded_image_size` reads ``(H, W)`` from the header of PNG bytes (the IHDR
  chunk, bytes 16..23) or JPEG bytes (``tf.io.extract_jpeg_shape``) without decoding;
- :func:`assert_encoded_within_limit` checks it against the limit;
- :func:`assert_images_within_limit` checks a uint8 ``[B, H, W, 3]`` batch
  (``serving_default``) per image;
- :func:`xray_seg.serving.graph_decode.decode_rgb_checked`, the decoder ``serve_encoded``
  uses on each element, checks the magic bytes and this limit before decoding.

The limit is fixed when the SavedModel is written: :func:`xray_seg.core.pixel_limit.max_pixels`
at export time (64 M pixels by default; ``--max-pixels`` or ``$XRAY_SEG_MAX_PIXELS`` raise it).
These helpers are self-contained so that any serving graph can call them.
"""

from __future__ import annotations

import tensorflow as tf

from xray_seg.core.constants import JPEG_MAGIC, PNG_MAGIC
from xray_seg.core.pixel_limit import max_pixels


def export_pixel_limit() -> int:
    """The pixel limit baked into a SavedModel written now."""
    return max_pixels()


def _big_endian_u32(data: tf.Tensor, offset: int) -> tf.Tensor:
    # substr fails on a position past the end (with the raw bytes in its message), so read
    # from the first 32 bytes padded with zeros: a short file then declares size 0.
    head = tf.strings.join([tf.strings.substr(data, 0, 32), tf.constant(b"\0" * 32)])
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(head, offset, 4), tf.uint8), tf.int64)
    return raw[0] * 16777216 + raw[1] * 65536 + raw[2] * 256 + raw[3]


def encoded_image_size(encoded: tf.Tensor) -> tf.Tensor:
    """``(H, W)`` int64 declared by PNG or JPEG bytes (scalar string), read without decoding.

    Bytes that are neither PNG nor JPEG give ``(0, 0)``; the decoder's own magic check
    reports them. A JPEG whose header cannot be parsed fails in ``extract_jpeg_shape``.
    """
    is_png = tf.equal(tf.strings.substr(encoded, 0, 8), PNG_MAGIC)
    is_jpeg = tf.equal(tf.strings.substr(encoded, 0, 3), JPEG_MAGIC)

    def png_size():
        return tf.stack([_big_endian_u32(encoded, 20), _big_endian_u32(encoded, 16)])

    def jpeg_size():
        return tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64)

    def unknown():
        return tf.zeros([2], tf.int64)

    return tf.cond(is_png, png_size, lambda: tf.cond(is_jpeg, jpeg_size, unknown))


def assert_encoded_within_limit(encoded: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """``encoded`` unchanged, after asserting its declared ``H x W <= max_pixels``."""
    size = encoded_image_size(encoded)
    message = f"image declares more pixels than the export's limit of {max_pixels} (set --max-pixels at export); "
    return _asserted(encoded, size[0] * size[1] <= max_pixels, message + "declared height, width:", size, 2)


def assert_images_within_limit(images: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """``images`` ``[B, H, W, 3]`` unchanged, after asserting ``H x W <= max_pixels``."""
    shape = tf.cast(tf.shape(images), tf.int64)
    message = f"images are larger than the export's limit of {max_pixels} pixels each (set --max-pixels at export); "
    return _asserted(images, shape[1] * shape[2] <= max_pixels, message + "got shape", shape, 4)


def _asserted(value: tf.Tensor, condition: tf.Tensor, message: str, shown: tf.Tensor, summarize: int) -> tf.Tensor:
    """``value`` unchanged, after asserting ``condition`` (else ``message`` and ``shown``)."""
    check = tf.debugging.Assert(condition, [message, shown], summarize=summarize)
    with tf.control_dependencies([check]):
        return tf.identity(value)


def empty_encoded_outputs(num_classes: int) -> dict:
    """``serve_encoded``'s outputs for an empty batch ``encoded=[]`` (zero-sized, right dtypes)."""
    return {
        "class_map": tf.zeros([0, 0, 0], tf.uint8),
        "probabilities": tf.zeros([0, 0, 0, num_classes], tf.float32),
        "class_pixel_counts": tf.zeros([0, num_classes], tf.int32),
        "image_sizes": tf.zeros([0, 2], tf.int32),
    }
