"""The bag decision inside the SavedModel graph, so a station with plain TensorFlow gets ``alarm``.

:func:`alarm_outputs` takes the full-resolution probabilities every signature already
computes and returns the extra outputs. It is the host rule of
:mod:`xray_seg.inference.alarm_rule` (docs/architecture.md, "screening decisions"), computed
with TensorFlow ops only:

1. ``class_map`` = arg-max of the probabilities; one mask per class.
2. Morphological closing with a ``(2 closing + 1)`` square: max-pool (dilation), then
   min-pool (erosion). ``SAME`` pooling ignores the outside of the image, as OpenCV's
   default border does; pixels beyond an image's ``image_sizes`` (padding in
   ``serve_encoded``) are treated as outside.
3. Connected components (8-connectivity) on the mask's pixels only (:func:`component_roots`):
   the pixels are graph nodes, their 8-neighbours in the same class the edges, and FastSV's
   rounds of hooking and shortcutting (``tf.while_loop``) give each pixel its component's
   root. The background channel is not labelled (it never alarms, and its
   components span the bag).
4. Per component: pixel area and mean probability of its class (``unsorted_segment_sum``
   over the roots), the mean rounded to 4 decimals as ``predict`` reports it.
5. ``alarm_scores[b, c]``: the highest such confidence among components of ``c`` with
   ``area >= min_area[c]`` (0 when none); ``alarm_per_class = alarm_scores >= thresholds``
   (background never alarms); ``alarm`` = any class.

Outputs: ``alarm`` bool ``[B]``, ``alarm_per_class`` bool ``[B, K]``, ``alarm_scores``
float32 ``[B, K]``. ``tests/serving/test_alarm_graph.py`` checks them against
:func:`xray_seg.inference.alarm_rule.decide` and against ``predict`` on exported models.
"""

from __future__ import annotations

import tensorflow as tf


def _pool_max(x, size):
    return tf.nn.max_pool2d(x, ksize=size, strides=1, padding="SAME")


# the four forward neighbours of 8-connectivity (right, down, down-right, down-left); with
# their reverses they are all eight
_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _pixel_graph(mask: tf.Tensor):
    """The mask's pixels as graph nodes: ``coords`` ``[N, 4]`` (b, y, x, channel) and the
    8-neighbour edges ``(src, dst)`` between pixels of the same image and channel."""
    coords = tf.where(mask > 0)
    n = tf.shape(coords, out_type=tf.int64)[0]
    # pixel id + 1 at every mask pixel, 0 elsewhere (int32: half the memory of the scan-sized map)
    ids = tf.range(1, tf.cast(n, tf.int32) + 1)
    node_map = tf.scatter_nd(coords, ids, tf.shape(mask, out_type=tf.int64))
    padded = tf.pad(node_map, [[0, 0], [1, 1], [1, 1], [0, 0]])
    src, dst = [], []
    for dy, dx in _NEIGHBOURS:
        ids = tf.cast(tf.gather_nd(padded, coords + tf.constant([0, dy + 1, dx + 1, 0], tf.int64)), tf.int64) - 1
        linked = ids >= 0
        src.append(tf.boolean_mask(tf.range(n), linked))
        dst.append(tf.boolean_mask(ids, linked))
    return coords, tf.concat(src, 0), tf.concat(dst, 0)


def component_roots(mask: tf.Tensor):
    """8-connected components of a float 0/1 mask ``[B, H, W, C]``, on its pixels only.

    Returns ``coords`` ``[N, 4]`` of the mask's pixels and ``roots`` ``[N]``: for each pixel
    the index (into ``coords``) of the first pixel of its component. The rounds are FastSV's
    (Zhang, Azad and Hu 2020, a Shiloach-Vishkin variant): with ``f`` the parent of every
    pixel (itself at first) and ``m[u]`` the smallest grandparent ``f[f[v]]`` over ``u`` and
    its neighbours, each round hooks ``f[f[u]]`` and ``f[u]`` down to ``m[u]``, then
    shortcuts ``f[u]`` to ``f[f[u]]``, until the grandparents stop changing. A parent always
    names a pixel of the same component, so the fixed point is one root per component.

    The work per round is proportional to the mask's pixels, not the scan's, and the
    rounds grow with the logarithm of a component's length, not the length.
    ``scripts/bench_alarm_graph.py`` times it; figures against a dense max-pool rule:
    docs/benchmarks.md, "A 1024x3000 belt scan through the SavedModel".
    """
    coords, src, dst = _pixel_graph(mask)
    n = tf.shape(coords, out_type=tf.int64)[0]
    ends = tf.concat([src, dst], 0)

    def body(parent, grand, _changed):
        via_edges = tf.math.unsorted_segment_min(tf.concat([tf.gather(grand, dst), tf.gather(grand, src)], 0), ends, n)
        smallest = tf.minimum(grand, via_edges)  # a pixel without edges gets the dtype's max: min keeps its own
        parent = tf.minimum(parent, tf.math.unsorted_segment_min(smallest, parent, n))  # hook the parents
        parent = tf.minimum(parent, smallest)  # hook the pixels
        parent = tf.minimum(parent, tf.gather(parent, parent))  # shortcut
        new_grand = tf.gather(parent, parent)
        return parent, new_grand, tf.reduce_any(tf.not_equal(new_grand, grand))

    start = tf.range(n)
    parent, grand, _ = tf.while_loop(lambda _p, _g, changed: changed, body, (start, start, n > 0))
    return coords, grand


def alarm_outputs(probs: tf.Tensor, image_sizes: tf.Tensor, *, thresholds, min_area, closing: int) -> dict:
    """``alarm``, ``alarm_per_class``, ``alarm_scores`` from probabilities ``[B, H, W, K]`` (module docstring)."""
    probs = tf.convert_to_tensor(probs, tf.float32)
    k = int(probs.shape[-1])
    shape = tf.shape(probs)
    b, h, w = shape[0], shape[1], shape[2]
    rows = tf.range(h)[None, :, None]
    cols = tf.range(w)[None, None, :]
    sizes = tf.cast(image_sizes, tf.int32)
    valid = tf.cast(tf.logical_and(rows < sizes[:, 0, None, None], cols < sizes[:, 1, None, None])[..., None], tf.uint8)
    # background never alarms: its (huge) components are not labelled, so only the K - 1 class
    # masks are made, as uint8 0/1 (K - 1 bytes a pixel, not 4K)
    labels = tf.argmax(probs, axis=-1, output_type=tf.int32)
    mask = tf.one_hot(labels - 1, k - 1, on_value=tf.constant(1, tf.uint8), off_value=tf.constant(0, tf.uint8)) * valid
    if closing > 0:
        size = 2 * int(closing) + 1
        dilated = tf.maximum(_pool_max(mask, size), 1 - valid)  # outside the image counts as set
        mask = (1 - _pool_max(1 - dilated, size)) * valid  # erosion: the min as 1 - max(1 - x)
    coords, roots = component_roots(mask)
    n = tf.shape(coords, out_type=tf.int64)[0]
    # each pixel's probability of its mask's class, read from the full probabilities (no K - 1 copy)
    prob = tf.gather_nd(probs, coords + tf.constant([0, 0, 0, 1], tf.int64))
    area = tf.gather(tf.math.unsorted_segment_sum(tf.ones_like(prob), roots, n), roots)
    mass = tf.gather(tf.math.unsorted_segment_sum(prob, roots, n), roots)
    confidence = tf.round(mass / tf.maximum(area, 1.0) * 1e4) / 1e4
    channel = coords[:, 3] + 1  # the class index
    min_area = tf.constant([float(a) for a in min_area], tf.float32)
    score = tf.where(area >= tf.gather(min_area, channel), confidence, 0.0)
    cell = coords[:, 0] * k + channel
    count = tf.cast(b, tf.int64) * k
    scores = tf.reshape(tf.maximum(tf.math.unsorted_segment_max(score, cell, count), 0.0), [b, k])
    is_class = tf.constant([0.0] + [1.0] * (k - 1), tf.float32)
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
