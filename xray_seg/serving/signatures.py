"""The serving graph of an exported SavedModel: everything a station needs, in TensorFlow ops.

Style anchor: tensorflow/models ``official/vision/serving/semantic_segmentation.py``.
Signatures, outputs and errors for callers: docs/station.md, "Signatures"; the tiling rule:
docs/architecture.md, "Geometry: how a scan reaches the network".

Every scan goes through the one geometry rule (:mod:`xray_seg.inference.geometry`) with the
same steps and summation order as :mod:`xray_seg.inference.tta`, so class maps agree with
``evaluate`` and ``predict``: scale by ``scale``, pad a side shorter than the tile ``(h0, w0)``
with 255 (air), run overlapping tiles ``TILE_BATCH`` at a time, blend their softmax
probabilities with the rule's Gaussian weight, crop the pad, resize back when ``scale != 1``.

``serving_default(images)``: uint8 ``[B, H, W, 3]`` RGB, any ``H``, ``W``; scans segmented one
after the other. ``serve_encoded(encoded)``: string ``[B]`` of PNG/JPEG bytes, sizes may differ;
decoded by the converter's policy (:func:`xray_seg.core.images.decode_image`; EXIF orientation
not applied), results padded bottom/right to the batch's largest ``H``, ``W`` (``class_map``
255, ``probabilities`` 0). Both return ``class_map`` uint8 ``[B, H, W]``, ``probabilities``
float32 ``[B, H, W, K]``, ``class_pixel_counts`` int32 ``[B, K]`` (real pixels only),
``image_sizes`` int32 ``[B, 2]``, and the bag decision ``alarm`` bool ``[B]``,
``alarm_per_class`` bool ``[B, K]``, ``alarm_scores`` float32 ``[B, K]``
(:func:`xray_seg.serving.alarm_graph.alarm_outputs`). ``model_info()``: class names, input
size, model name, version, the geometry rule and the stored alarm rule.

Peak memory of one ``serving_default`` call on ``[1, H, W, 3]`` at native resolution, ``K``
classes (:func:`serving_memory_bytes`; measured in docs/benchmarks.md, "Peak memory of predict"):
``base + (8K + 20) H W + (12 (K - 1) + 344) S W`` bytes. The scan's pixels pay for the outputs
and what makes them: the probability blocks and their concatenation into the output (``8K``),
and 20 bytes for the decoded uint8 scan and its padded copy, the class map, its strips and
its transposed copy (fitted to the 1 and 16 M pixel runs). Everything else follows a strip of
``S = ALARM_STRIP_ROWS + 4 closing`` rows (the alarm's rows and the halo its closing reads):
the alarm's uint8 class masks, their closing and the int32 component map with its padded copy
(``12 (K - 1)``), and, per pixel of the strip, the coordinates, neighbour edges and FastSV's
arrays (344 bytes, the most a pixel costs when every pixel is in a class mask; fitted before
the alarm worked in strips, when it cost 330 bytes per mask pixel of the whole scan).
``base`` holds TensorFlow, the loaded graph and ``TILE_BATCH`` tiles of activations. The tile
rows themselves cost only ``[th, W', K]`` of running sums, whatever the scan's length. A batch
of ``B`` scans holds ``B`` outputs; ``serve_encoded`` also holds every decoded image (``3 H W``
each). ``xray-seg predict`` stays lower on large scans (:mod:`xray_seg.inference.strips`): it
keeps one probability map, not two.

Errors: wrong rank, channel count, an empty image, bytes neither PNG nor JPEG, or an image over
the pixel limit (:mod:`xray_seg.serving.limits`) fail inside the graph with
``InvalidArgumentError``; a wrong dtype is rejected by the signature before the graph runs.

``serve_tiles(images)``: uint8 ``[B, th, tw, 3]``, exactly the export's tile; returns only
``probabilities`` float32 ``[B, th, tw, K]``, one plain forward pass (:func:`tile_probabilities`):
no tiling, class map or alarm. It is for hosts that tile and blend scans themselves
(``xray-seg predict`` and the ``savedmodel`` engines), which would otherwise pay for
``serving_default``'s alarm on every batch of tiles. Another shape or an empty batch fails in
the graph with ``InvalidArgumentError`` naming the tile size.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from xray_seg.core.constants import IGNORE_LABEL
from xray_seg.inference.alarm_rule import AlarmRule
from xray_seg.inference.geometry import ScanGeometry, axis_weights
from xray_seg.models.outputs import logits_of
from xray_seg.serving.alarm_graph import ALARM_STRIP_ROWS, alarm_outputs, rule_constants
from xray_seg.serving.graph_decode import decode_rgb_checked
from xray_seg.serving.limits import assert_images_within_limit, empty_encoded_outputs, export_pixel_limit

TILE_BATCH = 4  # tiles per forward pass: bounds the activations alive at once
OUTPUT_STRIP_ROWS = 512  # rows of the class map taken from the probabilities at once
PAD_CLASS = IGNORE_LABEL  # class_map value of padding in serve_encoded


# serving_default's peak RSS model (module docstring, "Peak memory"), docs/benchmarks.md, "Peak memory"
SERVING_BASE_BYTES = 1_300_000_000  # TensorFlow, the loaded SavedModel, four tiles of activations (width 0.0625, 512)
SCAN_PIXEL_BYTES = 20  # besides the 8K of probabilities: the uint8 scan, its padded copy, the class map and its copies
STRIP_PIXEL_BYTES = 344  # the in-graph connected components, per pixel of the alarm's strip


def serving_memory_bytes(height: int, width: int, num_classes: int, closing: int = 2) -> int:
    """Peak RSS bound of one ``serving_default`` call on a ``[1, height, width, 3]`` scan at native
    resolution: ``base + (8K + 20) H W + (12 (K - 1) + 344) S W`` bytes with ``S`` the alarm's
    strip and halo rows (module docstring, "Peak memory"), for a class map with no background
    (the worst case for the alarm)."""
    k, pixels = int(num_classes), int(height) * int(width)
    strip_rows = min(int(height), ALARM_STRIP_ROWS + 4 * int(closing))
    strip = (12 * (k - 1) + STRIP_PIXEL_BYTES) * strip_rows * int(width)
    return SERVING_BASE_BYTES + (8 * k + SCAN_PIXEL_BYTES) * pixels + strip


def resize_bilinear(images: tf.Tensor, size) -> tf.Tensor:
    """Bilinear resize of ``[B, H, W, C]`` to ``size`` (half-pixel centres, no antialias), float32."""
    return tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear", antialias=False)


def model_probabilities(model, pixels: tf.Tensor) -> tf.Tensor:
    """Softmax probabilities float32 ``[B, h0, w0, K]`` of a model fed float32 pixels (0..255)."""
    logits = logits_of(model(pixels, training=False))
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
            tf.debugging.Assert(
                nonempty, ["images must have height >= 1 and width >= 1; got shape", shape], summarize=8
            )
        )
    with tf.control_dependencies(checks):
        return tf.ensure_shape(tf.identity(images), [None, None, None, 3])


def _outputs(probs: tf.Tensor, num_classes: int, strip_rows: int = OUTPUT_STRIP_ROWS) -> dict:
    """class_map, class_pixel_counts from probabilities ``[B, H, W, K]`` (no padding). The arg-max
    is taken ``strip_rows`` rows at a time, so its int32 labels never cover the whole scan: the
    class map costs its own byte a pixel (and one transposed copy), not five."""
    shape = tf.shape(probs)
    num_strips = (shape[1] + strip_rows - 1) // strip_rows

    def strip(r, maps, counts):
        labels = tf.argmax(probs[:, r * strip_rows : (r + 1) * strip_rows], axis=-1, output_type=tf.int32)
        flat = tf.reshape(labels, [shape[0], -1])
        found = tf.math.bincount(flat, minlength=num_classes, maxlength=num_classes, axis=-1, dtype=tf.int32)
        counts = tf.ensure_shape(counts + found, counts.shape)
        return r + 1, maps.write(r, tf.transpose(tf.cast(labels, tf.uint8), [1, 0, 2])), counts  # rows first

    maps = tf.TensorArray(
        tf.uint8, size=num_strips, infer_shape=False, element_shape=tf.TensorShape([None, None, None])
    )
    counts = tf.zeros(tf.stack([shape[0], num_classes]), tf.int32)
    _, maps, counts = tf.while_loop(lambda r, *_: r < num_strips, strip, [0, maps, counts], parallel_iterations=1)
    class_map = tf.ensure_shape(tf.transpose(maps.concat(), [1, 0, 2]), [None, None, None])
    return {"class_map": class_map, "probabilities": probs, "class_pixel_counts": counts}


def tile_starts(size: tf.Tensor, window: int, step: int) -> tf.Tensor:
    """int32 ``[n]`` tile origins along one axis of a padded ``size >= window`` (geometry rule 3):
    every ``step``, plus one flush with the end (:func:`xray_seg.inference.geometry.axis_origins`)."""
    span = tf.maximum(size - window, 0)
    starts = tf.range(span // step + 1, dtype=tf.int32) * step
    return tf.cond(starts[-1] < span, lambda: tf.concat([starts, [span]], 0), lambda: starts)


def _coverage(starts: tf.Tensor, weights: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """float32 ``[size]``: the summed 1-D blend weights of the tiles along one axis at each
    position (one factor of the separable weight map; with unit weights, the tile count)."""
    window = tf.shape(weights)[0]
    pos = tf.range(size, dtype=tf.int32)[None, :]
    offset = pos - starts[:, None]  # [n, size]: position inside each tile
    inside = tf.logical_and(offset >= 0, offset < window)
    picked = tf.gather(weights, tf.clip_by_value(offset, 0, window - 1))
    return tf.reduce_sum(tf.where(inside, picked, 0.0), axis=0)


def _blend_weights(geometry: ScanGeometry, one_tile: tf.Tensor):
    """The 1-D Gaussian blend weights ``(g_y [th], g_x [tw])`` of rule 4; all ones when the scan
    is one tile, which keeps its probabilities exactly as they are (as the numpy rule does)."""
    th, tw = geometry.tile
    weight_y = tf.where(one_tile, tf.ones([th]), tf.constant(axis_weights(th, geometry.blend_sigma)))
    weight_x = tf.where(one_tile, tf.ones([tw]), tf.constant(axis_weights(tw, geometry.blend_sigma)))
    return weight_y, weight_x


def _scaled_size(height: tf.Tensor, width: tf.Tensor, scale: float):
    """``max(1, round(side * scale))`` per side, rounding half to even as Python's ``round``."""

    def one(side):
        return tf.maximum(tf.cast(tf.round(tf.cast(side, tf.float64) * scale), tf.int32), 1)

    return one(height), one(width)


def _scaled_and_padded(image: tf.Tensor, geometry: ScanGeometry):
    """Rules 1 and 2 of the geometry: ``image`` at the training pixel scale, padded with air to at
    least one tile; and its scaled size ``(sh, sw)`` before the padding. At native resolution the
    scan stays uint8 (tiles become float32 a tile row at a time: 3 bytes a pixel, not 12)."""
    th, tw = geometry.tile
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    pad_value = float(geometry.pad_value)
    if geometry.scale != 1.0:  # rule 1: scanner pixel -> training pixel
        sh, sw = _scaled_size(height, width, geometry.scale)
        image = resize_bilinear(image[None], tf.stack([sh, sw]))[0]
    else:
        sh, sw = height, width
        if not (pad_value.is_integer() and 0 <= pad_value <= 255):
            image = tf.cast(image, tf.float32)
    pads = [[0, tf.maximum(th - sh, 0)], [0, tf.maximum(tw - sw, 0)], [0, 0]]  # rule 2: pad with air
    return tf.pad(image, pads, constant_values=tf.cast(pad_value, image.dtype)), (sh, sw)


def scan_probabilities(
    model, image: tf.Tensor, geometry: ScanGeometry, num_classes: int, tile_batch: int = TILE_BATCH
) -> tf.Tensor:
    """Softmax probabilities float32 ``[H, W, K]`` of one scan ``[H, W, 3]`` under the geometry rule.

    Tiles are visited row by row. A *carry* buffer ``[th, W', K]`` holds the running sums of
    the rows ``[y, y + th)`` of the current tile row; each tile's probabilities are added into
    it in row-major tile order (the order :mod:`xray_seg.inference.tta` sums them in), and
    the rows no later tile can reach are divided by their blend weights, cropped to the scan's
    width and moved out to the result before the next tile row. So, besides the result, only
    ``[th, W', K]`` of sums and ``tile_batch`` tiles of activations are alive, whatever the
    scan's length (memory: the module docstring).
    """
    th, tw = geometry.tile
    sy, sx = geometry.step
    k = int(num_classes)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    image, (sh, sw) = _scaled_and_padded(image, geometry)
    ph, pw = tf.maximum(sh, th), tf.maximum(sw, tw)
    ys, xs = tile_starts(ph, th, sy), tile_starts(pw, tw, sx)
    num_rows, num_cols = tf.size(ys), tf.size(xs)
    columns = xs[:, None] + tf.range(tw, dtype=tf.int32)[None, :]  # [nx, tw] image column of each tile column
    weight_y, weight_x = _blend_weights(geometry, tf.equal(num_rows * num_cols, 1))
    tile_weights = (weight_x[:, None] * weight_y[None, :])[None, :, :, None]  # [1, tw, th, 1], columns first
    count_y, count_x = _coverage(ys, weight_y, ph), _coverage(xs, weight_x, pw)[:sw]

    def add_row(y, carry):
        """Add the tiles of the row at ``y`` to ``carry`` (``[pw, th, K]``, columns first)."""
        band = tf.cast(image[y : y + th], tf.float32)

        def body(j, carry):
            cols = columns[j : j + tile_batch]  # [m, tw]
            tiles = tf.transpose(tf.gather(band, cols, axis=1), [1, 0, 2, 3])  # [m, th, tw, 3]
            probs = model_probabilities(model, tf.ensure_shape(tiles, [None, th, tw, 3]))
            updates = tf.transpose(probs, [0, 2, 1, 3]) * tile_weights  # [m, tw, th, K], weighted
            return j + tile_batch, tf.tensor_scatter_nd_add(carry, cols[..., None], updates)

        return tf.while_loop(lambda j, _: j < num_cols, body, [0, carry], parallel_iterations=1)[1]

    def row_body(r, carry, blocks):
        y = ys[r]
        carry = add_row(y, carry)
        done = tf.where(r + 1 < num_rows, ys[tf.minimum(r + 1, num_rows - 1)], ph) - y  # rows no later tile reaches
        done = tf.minimum(done, th)
        count = count_y[y : y + done, None] * count_x[None, :]  # rule 4: weighted average, crop the pad columns
        blocks = blocks.write(r, tf.transpose(carry[:sw, :done], [1, 0, 2]) / count[..., None])
        carry = tf.concat([carry[:, done:], tf.zeros([pw, done, k])], axis=1)
        return r + 1, tf.ensure_shape(carry, [None, th, k]), blocks

    carry = tf.zeros([pw, th, k])
    blocks = tf.TensorArray(tf.float32, size=num_rows, infer_shape=False, element_shape=tf.TensorShape([None, None, k]))
    _, _, blocks = tf.while_loop(lambda r, *_: r < num_rows, row_body, [0, carry, blocks], parallel_iterations=1)
    probs = blocks.concat()[:sh]  # [sh, sw, K]: crop the pad rows
    if geometry.scale != 1.0:
        probs = resize_bilinear(probs[None], tf.stack([height, width]))[0]
    return tf.ensure_shape(probs, [None, None, k])


def batch_probabilities(
    model, images: tf.Tensor, geometry: ScanGeometry, num_classes: int, tile_batch: int = TILE_BATCH
) -> tf.Tensor:
    """float32 ``[B, H, W, K]`` for a checked uint8 batch: one plain forward pass when the
    images are exactly one tile (the numbers of the Keras model), else scan by scan."""
    shape = tf.shape(images)
    th, tw = geometry.tile
    one_tile = tf.logical_and(tf.equal(shape[1], th), tf.equal(shape[2], tw))
    if geometry.scale != 1.0:
        one_tile = tf.constant(False)

    def whole():
        return model_probabilities(model, tf.ensure_shape(tf.cast(images, tf.float32), [None, th, tw, 3]))

    def one_scan():  # a single scan: its probabilities as they are, without map_fn's stacked copy
        return scan_probabilities(model, images[0], geometry, num_classes, tile_batch)[None]

    def tiled():
        return tf.map_fn(
            lambda image: scan_probabilities(model, image, geometry, num_classes, tile_batch),
            images,
            fn_output_signature=tf.TensorSpec([None, None, num_classes], tf.float32),
            parallel_iterations=1,
        )

    def scans():
        return tf.cond(tf.equal(shape[0], 1), one_scan, tiled)

    return tf.ensure_shape(tf.cond(one_tile, whole, scans), [None, None, None, num_classes])


def segment_images(model, images: tf.Tensor, geometry: ScanGeometry, num_classes: int) -> dict:
    """The ``serving_default`` computation (module docstring) on a uint8 batch."""
    images = assert_images_within_limit(_check_images(images), export_pixel_limit())
    shape = tf.shape(images)
    probs = batch_probabilities(model, images, geometry, num_classes)
    out = _outputs(probs, num_classes)
    out["image_sizes"] = tf.tile(shape[None, 1:3], [shape[0], 1])
    return out


def segment_encoded(model, encoded: tf.Tensor, geometry: ScanGeometry, num_classes: int) -> dict:
    """The ``serve_encoded`` computation (module docstring): decode each file once, segment
    it at its own size under the geometry rule, pad the results to the batch's largest size."""
    with tf.control_dependencies(
        [
            tf.debugging.assert_rank(
                encoded,
                1,
                message="encoded must be a 1-D string tensor [batch] of PNG/JPEG file bytes "
                "(wrap a single file as [bytes])",
            )
        ]
    ):
        encoded = tf.identity(encoded)
    # An empty batch gives empty outputs, as serving_default does for [0, H, W, 3].
    return tf.cond(
        tf.size(encoded) > 0,
        lambda: _segment_encoded_batch(model, encoded, geometry, num_classes),
        lambda: empty_encoded_outputs(num_classes),
    )


def _segment_encoded_batch(model, encoded: tf.Tensor, geometry: ScanGeometry, num_classes: int) -> dict:
    """:func:`segment_encoded` for a batch of at least one file."""
    n = tf.size(encoded)
    limit = export_pixel_limit()
    images = tf.TensorArray(tf.uint8, size=n, infer_shape=False, element_shape=tf.TensorShape([None, None, 3]))
    sizes = tf.TensorArray(tf.int32, size=n, element_shape=tf.TensorShape([2]))

    def decode(i, images, sizes):
        image = decode_rgb_checked(encoded[i], limit)
        return i + 1, images.write(i, image), sizes.write(i, tf.shape(image)[:2])

    _, images, sizes = tf.while_loop(lambda i, *_: i < n, decode, [0, images, sizes], parallel_iterations=1)
    sizes = tf.reshape(sizes.stack(), [-1, 2])
    max_h = tf.reduce_max(tf.concat([sizes[:, 0], [0]], 0))
    max_w = tf.reduce_max(tf.concat([sizes[:, 1], [0]], 0))

    def segment(i, maps, probs, counts):
        # scan_probabilities directly: a tf.cond fast path inside this loop gets its untaken
        # branch executed by the runtime (EnsureShape failures), and one tile gives the same numbers.
        p = scan_probabilities(model, images.read(i), geometry, num_classes)[None]
        out = _outputs(p, num_classes)
        pads = [[0, max_h - sizes[i, 0]], [0, max_w - sizes[i, 1]]]
        maps = maps.write(i, tf.pad(out["class_map"][0], pads, constant_values=PAD_CLASS))
        probs = probs.write(i, tf.pad(p[0], pads + [[0, 0]]))
        return i + 1, maps, probs, counts.write(i, out["class_pixel_counts"][0])

    arrays = [
        tf.TensorArray(tf.uint8, size=n, element_shape=tf.TensorShape([None, None])),
        tf.TensorArray(tf.float32, size=n, element_shape=tf.TensorShape([None, None, num_classes])),
        tf.TensorArray(tf.int32, size=n, element_shape=tf.TensorShape([num_classes])),
    ]
    _, maps, probs, counts = tf.while_loop(lambda i, *_: i < n, segment, [0, *arrays], parallel_iterations=1)
    return {
        "class_map": maps.stack(),
        "probabilities": probs.stack(),
        "class_pixel_counts": counts.stack(),
        "image_sizes": sizes,
    }


def tile_probabilities(model, images: tf.Tensor, tile) -> dict:
    """The ``serve_tiles`` computation: ``{"probabilities": float32 [B, th, tw, K]}`` of uint8
    tiles ``[B, th, tw, 3]`` of exactly the export's tile, one plain forward pass (no tiling, no
    class map, no alarm): what a host that tiles scans itself (:mod:`xray_seg.inference.strips`)
    needs. Any other shape, or an empty batch (which the network itself cannot take), fails with
    ``InvalidArgumentError`` naming the tile size; as in :func:`_check_images`, the indices used
    are safe for any rank and read the runtime shape."""
    th, tw = int(tile[0]), int(tile[1])
    shape = tf.shape(images)
    padded = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)  # safe to index [0..3]
    checks = [tf.equal(tf.size(shape), 4), padded[0] > 0, tf.equal(padded[1], th), tf.equal(padded[2], tw)]
    exact = tf.reduce_all(tf.stack([*checks, tf.equal(padded[3], 3)]))
    message = (
        f"serve_tiles takes uint8 tiles [batch, {th}, {tw}, 3] (this export tiles scans at {th}x{tw}; "
        "batch >= 1); got shape"
    )
    with tf.control_dependencies([tf.debugging.Assert(exact, [message, shape], summarize=8)]):
        pixels = tf.cast(tf.ensure_shape(tf.identity(images), [None, th, tw, 3]), tf.float32)
    return {"probabilities": model_probabilities(model, pixels)}


# serving_default's images have a known rank, so `saved_model_cli show --all` and TF Serving's
# metadata give the station uint8 [-1, -1, -1, 3]. A loaded signature does not check shapes
# against its spec; _check_images still names a wrong rank or channel count (its channel check
# reads the runtime shape). serve_encoded keeps an unknown rank on purpose: with [None],
# assert_rank is decided while tracing, and a scalar of bytes would meet a bare slice error
# instead of "wrap a single file as [bytes]".
IMAGES_SPEC = tf.TensorSpec(shape=[None, None, None, 3], dtype=tf.uint8, name="images")
ENCODED_SPEC = tf.TensorSpec(shape=None, dtype=tf.string, name="encoded")


def tiles_spec(tile) -> tf.TensorSpec:
    """``serve_tiles``' input: uint8 ``[-1, th, tw, 3]``, the tile size shown in the signature's metadata."""
    return tf.TensorSpec(shape=[None, int(tile[0]), int(tile[1]), 3], dtype=tf.uint8, name="images")


def add_serving_endpoints(
    archive,
    model,
    *,
    input_size,
    class_names: Sequence[str],
    model_name: str,
    version: str,
    geometry: ScanGeometry | None = None,
    alarm: dict | None = None,
) -> None:
    """Register ``serving_default``, ``serve_encoded``, ``model_info`` and ``serve_tiles`` on a Keras ``ExportArchive``.

    ``geometry`` defaults to native resolution with tiles of ``input_size`` (the training size).
    ``alarm``: the rule (:class:`xray_seg.inference.alarm_rule.AlarmRule` as a dict); None = the defaults.
    """
    num_classes = len(class_names)
    h0, w0 = int(input_size[0]), int(input_size[1])
    geometry = geometry or ScanGeometry(tile=(h0, w0))
    rule = alarm or AlarmRule.default(list(class_names)).to_dict()

    def with_alarm(out):  # the one place the decision joins the outputs
        decision = alarm_outputs(
            out["probabilities"],
            out["image_sizes"],
            thresholds=rule["thresholds"],
            min_area=rule["min_area"],
            closing=rule["closing"],
        )
        return {**out, **decision}

    def serving_default(images):
        return with_alarm(segment_images(model, images, geometry, num_classes))

    def serve_encoded(encoded):
        return with_alarm(segment_encoded(model, encoded, geometry, num_classes))

    def model_info():
        return {
            "class_names": tf.constant(list(class_names), dtype=tf.string),
            "input_size": tf.constant([h0, w0], dtype=tf.int32),
            "num_classes": tf.constant(num_classes, dtype=tf.int32),
            "model_name": tf.constant(model_name, dtype=tf.string),
            "xray_seg_version": tf.constant(version, dtype=tf.string),
            **geometry_info(geometry),
            **rule_constants(rule),
        }

    def serve_tiles(images):  # for hosts that tile: probabilities only (module docstring)
        return tile_probabilities(model, images, geometry.tile)

    archive.add_endpoint("serving_default", serving_default, input_signature=[IMAGES_SPEC])
    archive.add_endpoint("serve_encoded", serve_encoded, input_signature=[ENCODED_SPEC])
    archive.add_endpoint("model_info", model_info, input_signature=[])
    archive.add_endpoint("serve_tiles", serve_tiles, input_signature=[tiles_spec(geometry.tile)])


def geometry_info(geometry: ScanGeometry) -> dict:
    """The geometry rule as ``model_info`` outputs (docs/architecture.md, "Geometry")."""
    return {
        "scale": tf.constant(geometry.scale, dtype=tf.float32),
        "tile_size": tf.constant(list(geometry.tile), dtype=tf.int32),
        "tile_overlap": tf.constant(geometry.overlap, dtype=tf.float32),
        "tile_step": tf.constant(list(geometry.step), dtype=tf.int32),
        "pad_value": tf.constant(geometry.pad_value, dtype=tf.float32),
        "tile_blend_sigma": tf.constant(geometry.blend_sigma, dtype=tf.float32),
    }
