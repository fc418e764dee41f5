"""The bag decision inside the SavedModel graph, so a station with plain TensorFlow gets ``alarm``.

:func:`alarm_outputs` takes the full-resolution probabilities every signature already
computes and returns the extra outputs. It is the host rule of
:mod:`xray_seg.evaluation.alarms` (docs/architecture.md, "screening decisions"), computed
with TensorFlow ops only:

1. ``class_map`` = arg-max of the probabilities; one mask per class.
2. Morphological closing with a ``(2 closing + 1)`` square: max-pool (dilation), then
   min-pool (erosion). ``SAME`` pooling ignores the outside of the image, as OpenCV's
   default border does; pixels beyond an image's ``image_sizes`` (padding in
   ``serve_encoded``) are treated as outside.
3. Connected components (8-connectivity) by label propagation: every mask pixel starts
   with its own index + 1, and a 3x3 max-pool restricted to the mask repeats until
   nothing changes (``tf.while_loop``, :func:`component_labels`), so each component ends
   labelled by its largest index. The background channel is not labelled (it never
   alarms, and its components span the bag). Exact for up to 2**24 pixels per image
   (labels are float32).
4. Per component: pixel area and mean probability of its class (``unsorted_segment_sum``),
   the mean rounded to 4 decimals as ``predict`` reports it.
5. ``alarm_scores[b, c]``: the highest such confidence among components of ``c`` with
   ``area >= min_area[c]`` (0 when none); ``alarm_per_class = alarm_scores >= thresholds``
   (background never alarms); ``alarm`` = any class.

Outputs: ``alarm`` bool ``[B]``, ``alarm_per_class`` bool ``[B, K]``, ``alarm_scores``
float32 ``[B, K]``. ``tests/serving/test_alarm_graph.py`` checks them against
:func:`xray_seg.evaluation.alarms.decide` and against ``predict`` on exported models.
"""

from __future__ import annotations

import tensorflow as tf


def _pool_max(x, size):
    return tf.nn.max_pool2d(x, ksize=size, strides=1, padding="SAME")


def component_labels(mask: tf.Tensor) -> tf.Tensor:
    """8-connected component labels of a float 0/1 mask ``[B, H, W, C]`` (0 outside the mask).

    Rounds of a 3x3 max-pool restricted to the mask, until nothing changes: as many rounds
    as the longest path inside a component (64 on a 512x1024 test scene, 0.5 s on 2 CPU
    cores). Pointer jumping (taking the label of the pixel a label names) was tried and
    was 8x slower on CPU: the gathers cost more than the rounds they save.
    """
    shape = tf.shape(mask)
    index = tf.reshape(tf.range(1, shape[1] * shape[2] + 1, dtype=tf.float32), [1, shape[1], shape[2], 1])
    labels = mask * index

    def body(labels, _changed):
        new = _pool_max(labels, 3) * mask
        return new, tf.reduce_any(tf.not_equal(new, labels))

    labels, _ = tf.while_loop(
        lambda _l, changed: changed, body, (labels, tf.constant(True)), maximum_iterations=shape[1] * shape[2]
    )
    return labels


def alarm_outputs(probs: tf.Tensor, image_sizes: tf.Tensor, *, thresholds, min_area, closing: int) -> dict:
    """``alarm``, ``alarm_per_class``, ``alarm_scores`` from probabilities ``[B, H, W, K]`` (module docstring)."""
    probs = tf.convert_to_tensor(probs, tf.float32)
    k = int(probs.shape[-1])
    shape = tf.shape(probs)
    b, h, w = shape[0], shape[1], shape[2]
    rows = tf.range(h)[None, :, None]
    cols = tf.range(w)[None, None, :]
    sizes = tf.cast(image_sizes, tf.int32)
    valid = tf.logical_and(rows < sizes[:, 0, None, None], cols < sizes[:, 1, None, None])[..., None]
    valid_f = tf.cast(valid, tf.float32)
    mask = tf.one_hot(tf.argmax(probs, axis=-1, output_type=tf.int32), k, dtype=tf.float32) * valid_f
    if closing > 0:
        size = 2 * int(closing) + 1
        dilated = tf.where(valid, _pool_max(mask, size), 1.0)
        mask = -_pool_max(-dilated, size) * valid_f
    # background never alarms: its (huge) components are not labelled
    labels = tf.concat([tf.zeros_like(mask[..., :1]), component_labels(mask[..., 1:])], axis=-1)
    hw1 = h * w + 1
    seg = (tf.range(b)[:, None, None, None] * k + tf.range(k)[None, None, None, :]) * hw1 + tf.cast(labels, tf.int32)
    count = b * k * hw1
    flat = tf.reshape(seg, [-1])
    area = tf.math.unsorted_segment_sum(tf.reshape(mask, [-1]), flat, count)
    mass = tf.math.unsorted_segment_sum(tf.reshape(probs * mask, [-1]), flat, count)
    pixel_area = tf.reshape(tf.gather(area, flat), tf.shape(mask))
    mean = tf.reshape(tf.gather(mass, flat), tf.shape(mask)) / tf.maximum(pixel_area, 1.0)
    confidence = tf.round(mean * 1e4) / 1e4
    min_area = tf.constant([float(a) for a in min_area], tf.float32)
    is_class = tf.constant([0.0] + [1.0] * (k - 1), tf.float32)
    passes = (mask > 0) & (pixel_area >= min_area) & (is_class > 0)
    scores = tf.reduce_max(tf.where(passes, confidence, 0.0), axis=[1, 2])
    per_class = (scores >= tf.constant([float(t) for t in thresholds], tf.float32)) & (scores > 0) & (is_class > 0)
    return {"alarm": tf.reduce_any(per_class, axis=-1), "alarm_per_class": per_class, "alarm_scores": scores}


def rule_constants(rule: dict) -> dict:
    """The ``model_info`` outputs that describe the stored rule."""
    return {
        "alarm_thresholds": tf.constant([float(t) for t in rule["thresholds"]], tf.float32),
        "alarm_min_area": tf.constant([int(a) for a in rule["min_area"]], tf.int32),
        "alarm_closing": tf.constant(int(rule["closing"]), tf.int32),
        "alarm_calibrated": tf.constant(bool(rule.get("calibrated", False))),
    }
