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
   components span the bag). Steps 1-3 run on strips of ``ALARM_STRIP_ROWS`` rows (with the
   rows the closing reads around them), so their memory follows the strip, not the scan; the
   parts of a component cut by strip edges are joined afterwards (:func:`alarm_outputs`).
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


def fastsv_roots(src: tf.Tensor, dst: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """int64 ``[n]``: for each node of an undirected graph (edges ``src``-``dst``), the index of
    the smallest node of its component.

    The rounds are FastSV's (Zhang, Azad and Hu 2020, a Shiloach-Vishkin variant): with ``f``
    the parent of every node (itself at first) and ``m[u]`` the smallest grandparent
    ``f[f[v]]`` over ``u`` and its neighbours, each round hooks ``f[f[u]]`` and ``f[u]`` down
    to ``m[u]``, then shortcuts ``f[u]`` to ``f[f[u]]``, until the grandparents stop changing.
    A parent always names a node of the same component, so the fixed point is one root per
    component, and the rounds grow with the logarithm of a component's length.
    """
    ends = tf.concat([src, dst], 0)

    def body(parent, grand, _changed):
        via_edges = tf.math.unsorted_segment_min(tf.concat([tf.gather(grand, dst), tf.gather(grand, src)], 0), ends, n)
        smallest = tf.minimum(grand, via_edges)  # a node without edges gets the dtype's max: min keeps its own
        parent = tf.minimum(parent, tf.math.unsorted_segment_min(smallest, parent, n))  # hook the parents
        parent = tf.minimum(parent, smallest)  # hook the nodes
        parent = tf.minimum(parent, tf.gather(parent, parent))  # shortcut
        new_grand = tf.gather(parent, parent)
        return parent, new_grand, tf.reduce_any(tf.not_equal(new_grand, grand))

    start = tf.range(n)
    _, grand, _ = tf.while_loop(lambda _p, _g, changed: changed, body, (start, start, n > 0))
    return grand


def component_roots(mask: tf.Tensor):
    """8-connected components of a float 0/1 mask ``[B, H, W, C]``, on its pixels only.

    Returns ``coords`` ``[N, 4]`` of the mask's pixels and ``roots`` ``[N]``: for each pixel
    the index (into ``coords``) of the first pixel of its component (:func:`fastsv_roots` on
    the graph whose nodes are the pixels and whose edges join 8-neighbours of one channel).

    The work per round is proportional to the mask's pixels, not the scan's.
    ``scripts/bench_alarm_graph.py`` times it; figures against a dense max-pool rule:
    docs/benchmarks.md, "A 1024x3000 belt scan through the SavedModel".
    """
    coords, src, dst = _pixel_graph(mask)
    return coords, fastsv_roots(src, dst, tf.shape(coords, out_type=tf.int64)[0])


ALARM_STRIP_ROWS = 128  # rows of the scan whose components are found at once (memory: strip, not scan)


def _strip_masks(probs, sizes, y0, y1, closing: int):
    """uint8 ``[B, y1 - y0, W, K - 1]``: the closed class masks of rows ``[y0, y1)``, computed on
    a window ``2 closing`` rows taller on each side, which is all the closing at those rows reads
    (dilation reaches ``closing`` rows, erosion ``closing`` more); then cropped to the rows."""
    k = int(probs.shape[-1])
    height, width = tf.shape(probs)[1], tf.shape(probs)[2]
    halo = 2 * int(closing)
    a, b = tf.maximum(y0 - halo, 0), tf.minimum(y1 + halo, height)
    rows = tf.range(a, b)[None, :, None]
    cols = tf.range(width)[None, None, :]
    valid = tf.cast(tf.logical_and(rows < sizes[:, 0, None, None], cols < sizes[:, 1, None, None])[..., None], tf.uint8)
    # background never alarms: its (huge) components are not labelled, so only the K - 1 class
    # masks are made, as uint8 0/1 (K - 1 bytes a pixel, not 4K)
    labels = tf.argmax(probs[:, a:b], axis=-1, output_type=tf.int32)
    mask = tf.one_hot(labels - 1, k - 1, on_value=tf.constant(1, tf.uint8), off_value=tf.constant(0, tf.uint8)) * valid
    if closing > 0:
        size = 2 * int(closing) + 1
        dilated = tf.maximum(_pool_max(mask, size), 1 - valid)  # outside the image counts as set
        mask = (1 - _pool_max(1 - dilated, size)) * valid  # erosion: the min as 1 - max(1 - x)
    return mask[:, y0 - a : y1 - a]


def _edge_row_ids(coords, comp_id, row, shape):
    """int64 ``[B, W, C]``: at the mask pixels of local ``row``, their component's id (-1 elsewhere
    and for components that need no carrying)."""
    on_row = tf.equal(coords[:, 1], row)
    at = tf.boolean_mask(coords, on_row)
    ids = tf.boolean_mask(comp_id, on_row)
    where = tf.stack([at[:, 0], at[:, 2], at[:, 3]], 1)
    return tf.tensor_scatter_nd_update(tf.fill(shape, tf.constant(-1, tf.int64)), where, ids)


def _links(above, below):
    """Edges ``(above id, below id)`` between the last row of one strip and the first of the
    next: 8-neighbours (straight down and the two diagonals) in the same channel."""
    src, dst = [], []
    for dx in (-1, 0, 1):
        shifted = tf.roll(above, shift=dx, axis=1)  # shifted[:, x] = above[:, x - dx]
        width = tf.shape(above, out_type=tf.int64)[1]
        x = tf.range(width)[None, :, None]
        inside = tf.logical_and(x - dx >= 0, x - dx < width)  # no wrap-around
        linked = tf.logical_and(tf.logical_and(shifted >= 0, below >= 0), inside)
        src.append(tf.boolean_mask(shifted, linked))
        dst.append(tf.boolean_mask(below, linked))
    return tf.concat(src, 0), tf.concat(dst, 0)


def _scores(area, mass, cell, k, min_area, count):
    """Per ``(image, class)`` cell, the highest confidence (mean probability rounded to 4
    decimals, as ``predict`` reports it) of a component with ``area >= min_area`` of its class."""
    confidence = tf.cast(tf.round(mass / tf.maximum(area, 1.0) * 1e4) / 1e4, tf.float32)
    score = tf.where(area >= tf.gather(min_area, cell % k), confidence, 0.0)
    return tf.maximum(tf.math.unsorted_segment_max(score, cell, count), 0.0)


def _strip_components(probs, sizes, y0, y1, closing: int):
    """The components of rows ``[y0, y1)``: the pixels' ``coords`` (rows counted from ``y0``) and
    ``roots``, and per root its ``area``, probability ``mass`` (float64), ``cell`` (image x
    ``K`` + class) and whether it is ``carried``, i.e. touches an edge shared with another strip."""
    k = int(probs.shape[-1])
    height = tf.shape(probs)[1]
    coords, roots = component_roots(_strip_masks(probs, sizes, y0, y1, closing))
    n = tf.shape(coords, out_type=tf.int64)[0]
    prob = tf.gather_nd(probs, coords + tf.stack([tf.constant(0, tf.int64), tf.cast(y0, tf.int64), 0, 1]))
    area = tf.math.unsorted_segment_sum(tf.ones([n], tf.float64), roots, n)
    mass = tf.math.unsorted_segment_sum(tf.cast(prob, tf.float64), roots, n)
    cell = tf.math.unsorted_segment_max(coords[:, 0] * k + coords[:, 3] + 1, roots, n)
    top = tf.logical_and(tf.equal(coords[:, 1], 0), y0 > 0)
    bottom = tf.logical_and(tf.equal(coords[:, 1], tf.cast(y1 - y0 - 1, tf.int64)), y1 < height)
    carried = tf.math.unsorted_segment_max(tf.cast(tf.logical_or(top, bottom), tf.int32), roots, n) > 0
    return coords, roots, area, mass, cell, carried


def _joined_scores(parts, links, num_parts, k, min_area, count):
    """Scores of the components whose parts (rows ``(area, mass, cell)``) were carried across
    strip edges: :func:`fastsv_roots` over the ``links`` joins them, then their sums are scored."""
    roots = fastsv_roots(links[:, 0], links[:, 1], num_parts)
    area = tf.math.unsorted_segment_sum(parts[:, 0], roots, num_parts)
    mass = tf.math.unsorted_segment_sum(parts[:, 1], roots, num_parts)
    is_root = tf.equal(roots, tf.range(num_parts))
    cell = tf.cast(tf.boolean_mask(parts[:, 2], is_root), tf.int64)
    return _scores(tf.boolean_mask(area, is_root), tf.boolean_mask(mass, is_root), cell, k, min_area, count)


def alarm_outputs(
    probs: tf.Tensor, image_sizes: tf.Tensor, *, thresholds, min_area, closing: int, strip_rows: int = ALARM_STRIP_ROWS
) -> dict:
    """``alarm``, ``alarm_per_class``, ``alarm_scores`` from probabilities ``[B, H, W, K]`` (module docstring).

    The scan is labelled ``strip_rows`` rows at a time, so the connected components' memory
    follows the strip, not the scan. A component that touches no strip edge is scored there
    and then; one that does is carried as ``(area, probability mass, cell)`` with its ids on
    the strip's first and last rows, the rows that meet across an edge are linked, and after
    the last strip :func:`fastsv_roots` joins the carried parts into whole components, whose
    sums give the same areas and means as one pass over the whole scan.
    """
    probs = tf.convert_to_tensor(probs, tf.float32)
    k = int(probs.shape[-1])
    shape = tf.shape(probs, out_type=tf.int64)
    b, height, width = shape[0], tf.cast(shape[1], tf.int32), shape[2]
    sizes = tf.cast(image_sizes, tf.int32)
    min_area = tf.constant([float(a) for a in min_area], tf.float64)
    count = b * k
    edge_shape = tf.stack([b, width, k - 1])

    def strip(r, scores, above, offset, parts, links):
        y0 = r * strip_rows
        y1 = tf.minimum(y0 + strip_rows, height)
        coords, roots, area, mass, cell, carried = _strip_components(probs, sizes, y0, y1, closing)
        is_root = tf.equal(roots, tf.range(tf.size(roots, out_type=tf.int64)))
        whole, open_roots = tf.logical_and(is_root, tf.logical_not(carried)), tf.logical_and(is_root, carried)
        done = _scores(*[tf.boolean_mask(x, whole) for x in (area, mass, cell)], k, min_area, count)
        scores = tf.ensure_shape(tf.maximum(scores, done), scores.shape)
        new_id = offset + tf.cumsum(tf.cast(open_roots, tf.int64), exclusive=True)  # ids of the carried parts
        comp_id = tf.where(tf.gather(carried, roots), tf.gather(new_id, roots), -1)
        carry = [
            tf.boolean_mask(area, open_roots),
            tf.boolean_mask(mass, open_roots),
            tf.boolean_mask(cell, open_roots),
        ]
        parts = parts.write(r, tf.stack(carry[:2] + [tf.cast(carry[2], tf.float64)], 1))
        links = links.write(r, tf.stack(_links(above, _edge_row_ids(coords, comp_id, 0, edge_shape)), 1))
        last_row = _edge_row_ids(coords, comp_id, tf.cast(y1 - y0 - 1, tf.int64), edge_shape)
        offset += tf.reduce_sum(tf.cast(open_roots, tf.int64))
        return r + 1, scores, tf.ensure_shape(last_row, above.shape), offset, parts, links

    num_strips = (height + strip_rows - 1) // strip_rows
    loop_vars = (
        tf.constant(0),
        tf.zeros([count], tf.float32),
        tf.fill(edge_shape, tf.constant(-1, tf.int64)),
        tf.constant(0, tf.int64),
        tf.TensorArray(tf.float64, size=num_strips, infer_shape=False, element_shape=tf.TensorShape([None, 3])),
        tf.TensorArray(tf.int64, size=num_strips, infer_shape=False, element_shape=tf.TensorShape([None, 2])),
    )
    _, scores, _, num_parts, parts, links = tf.while_loop(
        lambda r, *_: r < num_strips, strip, loop_vars, parallel_iterations=1
    )
    joined = _joined_scores(parts.concat(), links.concat(), num_parts, k, min_area, count)
    scores = tf.reshape(tf.maximum(scores, joined), [b, k])
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
