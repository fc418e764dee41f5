"""In-graph decoding of ``serve_encoded``'s elements: PNG or JPEG bytes to uint8 RGB.

Policy (:mod:`xray_seg.serving.signatures`): PNG is decoded as RGBA and composited over
white (air); grey is replicated to RGB; anything that is neither PNG nor JPEG, and an image
with zero height or width, fails with a message. :func:`decode_rgb_checked` first refuses an
image whose header declares more pixels than the export's limit (:mod:`xray_seg.serving.limits`).
"""

from __future__ import annotations

import tensorflow as tf

from xray_seg.core.constants import JPEG_MAGIC, PNG_MAGIC
from xray_seg.serving.limits import assert_encoded_within_limit


def decode_rgb(encoded: tf.Tensor) -> tf.Tensor:
    """One PNG or JPEG file's bytes -> uint8 ``[H, W, 3]`` (policy: module docstring)."""
    head = tf.strings.substr(encoded, 0, 8)
    is_png = tf.equal(head, PNG_MAGIC)
    is_jpeg = tf.equal(tf.strings.substr(encoded, 0, 3), JPEG_MAGIC)
    check = tf.debugging.Assert(
        tf.logical_or(is_png, is_jpeg),
        ["serve_encoded expects the bytes of PNG or JPEG files; an element is neither. First bytes:", head],
    )

    def from_png():
        rgba = tf.cast(tf.io.decode_png(encoded, channels=4, dtype=tf.uint8), tf.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)  # composite over white (air)
        return tf.cast(tf.clip_by_value(tf.round(rgb), 0.0, 255.0), tf.uint8)

    def from_jpeg():
        return tf.io.decode_jpeg(encoded, channels=3)

    with tf.control_dependencies([check]):
        image = tf.cond(is_png, from_png, from_jpeg)
    image = tf.ensure_shape(image, [None, None, 3])
    size = tf.shape(image)[:2]
    with tf.control_dependencies(
        [tf.debugging.assert_positive(size, message="a decoded image has zero height or width")]
    ):
        return tf.identity(image)


def decode_rgb_checked(encoded: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """One PNG/JPEG file's bytes -> uint8 ``[H, W, 3]``, refusing images over ``max_pixels`` first."""
    is_known = tf.logical_or(
        tf.equal(tf.strings.substr(encoded, 0, 8), PNG_MAGIC), tf.equal(tf.strings.substr(encoded, 0, 3), JPEG_MAGIC)
    )
    head = tf.strings.substr(encoded, 0, 8)
    check = tf.debugging.Assert(
        is_known, ["serve_encoded expects the bytes of PNG or JPEG files; an element is neither. First bytes:", head]
    )
    with tf.control_dependencies([check]):
        encoded = tf.identity(encoded)
    return decode_rgb(assert_encoded_within_limit(encoded, max_pixels))
