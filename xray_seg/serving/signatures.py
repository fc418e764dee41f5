"""The serving graph of an exported SavedModel (docs/architecture.md "station"; tensorflow/models'
``official/vision/serving/semantic_segmentation.py`` is the style anchor).

Everything a station needs runs inside the graph, so a station needs only TensorFlow:

``serving_default(images)``
    ``images``: uint8 ``[B, H, W, 3]``, any ``H`` and ``W`` (RGB, raw 0..255 pixels).
    Each image is resized to the model's input size ``(h0, w0)`` (bilinear, half-pixel
    centres, no antialiasing - the same resize as :mod:`xray_seg.inference.tta`), the model
    gives logits, softmax gives probabilities, and the probabilities are resized back
    to ``H x W`` (bilinear). Outputs:

    - ``class_map``: uint8 ``[B, H, W]``, argmax of the resized probabilities;
    - ``probabilities``: float32 ``[B, H, W, K]`` (sum to 1 over K);
    - ``class_pixel_counts``: **int32** ``[B, K]``, pixels of each class in ``class_map``;
    - ``image_sizes``: int32 ``[B, 2]``, ``(H, W)`` of every image (all equal here).

``serve_encoded(encoded)``
    ``encoded``: string ``[B]``, each element the bytes of a PNG or JPEG file, as read
    from disk. Images in one batch **may differ in size**: each is decoded and resized
    to the model size on its own (``tf.map_fn``), the model runs on the whole batch,
    and each result is resized back to its own size and then padded at the bottom and
    right to the largest ``H`` and ``W`` of the batch. Padding: ``class_map`` 255 (the
    ignore label: "no pixel here"), ``probabilities`` 0; ``class_pixel_counts`` count
    only real pixels; ``image_sizes`` gives each image's ``(H, W)``, so
    ``class_map[i, :H_i, :W_i]`` is image ``i``. Decoding follows the converter's
    policy (:func:`xray_seg.conversion.labelme.decode_image`): grey is replicated to RGB,
    an alpha channel (RGBA, grey+alpha, PNG ``tRNS``) is composited over **white**
    (X-ray air), 16-bit PNGs keep their high byte. JPEG EXIF orientation is *not*
    applied (``tf.io`` ignores it). Same outputs as ``serving_default``.

``model_info()``
    No inputs. ``class_names`` string ``[K]``, ``input_size`` int32 ``[2]`` (h0, w0),
    ``num_classes`` int32 scalar, ``model_name`` and ``xray_seg_version`` string scalars.

Wrong input fails inside the graph with a message saying what was expected (rank,
channel count, empty image, bytes that are neither PNG nor JPEG, an image over the pixel
limit fixed at export: :mod:`xray_seg.serving.limits`). A wrong dtype is
rejected by the signature itself, before the graph runs; TensorFlow then says e.g.
``cannot compute ... as input #0(zero-based) was expected to be a uint8 tensor but is a
float tensor``. The input specs have no fixed rank on purpose: a loaded signature does
not check shapes, and with an unknown rank the in-graph rank check cannot be folded away.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from xray_seg.serving.limits import (
    assert_images_within_limit, decode_rgb_checked, empty_encoded_outputs, export_pixel_limit,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
PAD_CLASS = 255  # class_map value of padding in serve_encoded (the ignore label)


def resize_bilinear(images: tf.Tensor, size) -> tf.Tensor:
    """Bilinear resize of ``[B, H, W, C]`` to ``size`` (half-pixel centres, no antialias), float32."""
    return tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear", antialias=False)


def model_probabilities(model, pixels: tf.Tensor) -> tf.Tensor:
    """Softmax probabilities float32 ``[B, h0, w0, K]`` of a model fed float32 pixels (0..255)."""
    logits = model(pixels, training=False)
    if isinstance(logits, dict):
        logits = logits["logits"]
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)


def _check_images(images: tf.Tensor) -> tf.Tensor:
    """Assert rank 4, 3 channels and a non-empty image; every index used is safe for any rank,
    so the assert (not some later op) is what reports a wrong shape."""
    shape = tf.shape(images)
    rank = tf.size(shape)
    padded = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)  # safe to index [0..3]
    well_formed = tf.logical_and(tf.equal(rank, 4), tf.equal(padded[3], 3))
    checks = [
        tf.debugging.Assert(
            well_formed,
            ["images must be a uint8 tensor [batch, height, width, 3] (RGB, 3 channels); got shape", shape],
            summarize=8,
        ),
    ]
    with tf.control_dependencies(checks):
        nonempty = tf.logical_and(padded[1] > 0, padded[2] > 0)
        checks.append(
            tf.debugging.Assert(nonempty, ["images must have height >= 1 and width >= 1; got shape", shape], summarize=8)
        )
    with tf.control_dependencies(checks):
        return tf.ensure_shape(tf.identity(images), [None, None, None, 3])


def _outputs(probs: tf.Tensor, num_classes: int) -> dict:
    """class_map, class_pixel_counts from probabilities ``[B, H, W, K]`` (no padding)."""
    class_map = tf.argmax(probs, axis=-1, output_type=tf.int32)
    flat = tf.reshape(class_map, [tf.shape(class_map)[0], -1])
    counts = tf.math.bincount(flat, minlength=num_classes, maxlength=num_classes, axis=-1, dtype=tf.int32)
    return {"class_map": tf.cast(class_map, tf.uint8), "probabilities": probs, "class_pixel_counts": counts}


def segment_images(model, images: tf.Tensor, input_size: Sequence[int], num_classes: int) -> dict:
    """The ``serving_default`` computation (module docstring) on a checked uint8 batch."""
    images = assert_images_within_limit(_check_images(images), export_pixel_limit())
    shape = tf.shape(images)
    # At the model size the bilinear resize is the identity (half-pixel centres, scale 1),
    # so skip both resizes there: same numbers, less work (scripts/bench_export.py).
    same = tf.logical_and(tf.equal(shape[1], input_size[0]), tf.equal(shape[2], input_size[1]))
    pixels = tf.cond(same, lambda: tf.cast(images, tf.float32), lambda: resize_bilinear(images, input_size))
    probs = model_probabilities(model, tf.ensure_shape(pixels, [None, input_size[0], input_size[1], 3]))
    probs = tf.cond(same, lambda: probs, lambda: resize_bilinear(probs, shape[1:3]))
    out = _outputs(probs, num_classes)
    out["image_sizes"] = tf.tile(shape[None, 1:3], [shape[0], 1])
    return out


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
    with tf.control_dependencies([tf.debugging.assert_positive(size, message="a decoded image has zero height or width")]):
        return tf.identity(image)


def segment_encoded(model, encoded: tf.Tensor, input_size: Sequence[int], num_classes: int) -> dict:
    """The ``serve_encoded`` computation (module docstring): decode, resize, batch, resize back, pad."""
    with tf.control_dependencies(
        [tf.debugging.assert_rank(encoded, 1, message="encoded must be a 1-D string tensor [batch] of PNG/JPEG file bytes "
                                  "(wrap a single file as [bytes])")]
    ):
        encoded = tf.identity(encoded)
    # An empty batch gives empty outputs, as serving_default does for [0, H, W, 3].
    return tf.cond(
        tf.size(encoded) > 0,
        lambda: _segment_encoded_batch(model, encoded, input_size, num_classes),
        lambda: empty_encoded_outputs(num_classes),
    )


def _segment_encoded_batch(model, encoded: tf.Tensor, input_size: Sequence[int], num_classes: int) -> dict:
    h0, w0 = int(input_size[0]), int(input_size[1])
    limit = export_pixel_limit()

    def prepare(data):
        image = decode_rgb_checked(data, limit)
        return resize_bilinear(image[None], (h0, w0))[0], tf.shape(image)[:2]

    small, sizes = tf.map_fn(
        prepare,
        encoded,
        fn_output_signature=(tf.TensorSpec([h0, w0, 3], tf.float32), tf.TensorSpec([2], tf.int32)),
    )
    probs_small = model_probabilities(model, small)
    max_h = tf.reduce_max(sizes[:, 0])
    max_w = tf.reduce_max(sizes[:, 1])

    def restore(args):
        p, size = args
        probs = resize_bilinear(p[None], size)
        out = _outputs(probs, num_classes)
        pads = [[0, max_h - size[0]], [0, max_w - size[1]]]
        class_map = tf.pad(out["class_map"][0], pads, constant_values=PAD_CLASS)
        probs = tf.pad(probs[0], pads + [[0, 0]])
        return class_map, probs, out["class_pixel_counts"][0]

    class_map, probs, counts = tf.map_fn(
        restore,
        (probs_small, sizes),
        fn_output_signature=(
            tf.TensorSpec([None, None], tf.uint8),
            tf.TensorSpec([None, None, num_classes], tf.float32),
            tf.TensorSpec([num_classes], tf.int32),
        ),
    )
    return {"class_map": class_map, "probabilities": probs, "class_pixel_counts": counts, "image_sizes": sizes}


IMAGES_SPEC = tf.TensorSpec(shape=None, dtype=tf.uint8, name="images")
ENCODED_SPEC = tf.TensorSpec(shape=None, dtype=tf.string, name="encoded")


def add_serving_endpoints(archive, model, *, input_size, class_names: Sequence[str], model_name: str, version: str) -> None:
    """Register ``serving_default``, ``serve_encoded`` and ``model_info`` on a Keras ``ExportArchive``."""
    num_classes = len(class_names)
    h0, w0 = int(input_size[0]), int(input_size[1])

    def serving_default(images):
        return segment_images(model, images, (h0, w0), num_classes)

    def serve_encoded(encoded):
        return segment_encoded(model, encoded, (h0, w0), num_classes)

    def model_info():
        return {
            "class_names": tf.constant(list(class_names), dtype=tf.string),
            "input_size": tf.constant([h0, w0], dtype=tf.int32),
            "num_classes": tf.constant(num_classes, dtype=tf.int32),
            "model_name": tf.constant(model_name, dtype=tf.string),
            "xray_seg_version": tf.constant(version, dtype=tf.string),
        }

    archive.add_endpoint("serving_default", serving_default, input_signature=[IMAGES_SPEC])
    archive.add_endpoint("serve_encoded", serve_encoded, input_signature=[ENCODED_SPEC])
    archive.add_endpoint("model_info", model_info, input_signature=[])
