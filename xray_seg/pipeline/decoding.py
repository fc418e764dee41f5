"""Decoding a split's files inside the tf.data graph (pure TensorFlow, so it runs in parallel).

``tf.io.decode_png`` expands a palette ("P") PNG to the palette's *colours*, not its
indices (checked: ``channels=0`` gives 3 channels of VOC colours). The masks that
``xray-seg convert`` / ``labelme2voc.py`` write use the VOC colour map, which is a
bijection of 0..255 onto colours built by interleaving the index bits, so the index is
recovered exactly from the top bits of (r, g, b) (:func:`voc_colours_to_labels`).
8-bit greyscale PNGs (and palette PNGs with a grey identity palette) hold the labels
directly. Any other mask is refused up front with a message naming the file.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from xray_seg.core.constants import IGNORE_LABEL
from xray_seg.core.viz import voc_palette
from xray_seg.pipeline.split_files import MASK_VOC, SplitFiles

#: Tag of a bad-label assertion message: ``ERROR_TAG|<mask path>|<problem>`` (parsed back by
#: :func:`xray_seg.pipeline.dataset.dataset_error_from`).
ERROR_TAG = "xray_seg.DatasetError"


def _voc_inverse_table() -> np.ndarray:
    """Label of each key ``(r >> 5) << 5 | (g >> 5) << 2 | b >> 6`` of a VOC palette colour."""
    colours = voc_palette().astype(np.int32)
    keys = (colours[:, 0] >> 5) << 5 | (colours[:, 1] >> 5) << 2 | colours[:, 2] >> 6
    table = np.zeros(256, np.uint8)
    table[keys] = np.arange(256)
    return table


_VOC_INVERSE = _voc_inverse_table()


def voc_colours_to_labels(rgb):
    """Invert the VOC colour map: ``[H, W, 3]`` uint8 colours -> ``[H, W]`` uint8 indices.

    Index bits 0, 3, 6 are colour bits 7, 6, 5 of r; bits 1, 4, 7 those of g; bits 2, 5
    bits 7, 6 of b. So the top 3, 3 and 2 bits of (r, g, b) form an 8-bit key that a
    256-entry table maps back to the index in one gather (timing: docs/benchmarks.md, "Data").
    """
    rgb = tf.cast(rgb, tf.uint8)
    top = tf.bitwise.right_shift(rgb, tf.constant([5, 5, 6], tf.uint8))  # 3, 3, 2 top bits
    key = tf.bitwise.bitwise_or(
        tf.bitwise.bitwise_or(tf.bitwise.left_shift(top[..., 0], 5), tf.bitwise.left_shift(top[..., 1], 2)), top[..., 2]
    )
    return tf.gather(tf.constant(_VOC_INVERSE), tf.cast(key, tf.int32))


def decode_mask(data, kind):
    """Decode mask PNG bytes to ``[H, W]`` uint8 labels (``kind``: MASK_GREY or MASK_VOC)."""
    return tf.cond(
        tf.equal(kind, MASK_VOC),
        lambda: voc_colours_to_labels(tf.io.decode_png(data, channels=3)),
        lambda: tf.io.decode_png(data, channels=1)[..., 0],
    )


def decode_rgb(data):
    """Decode PNG or JPEG bytes to ``[H, W, 3]`` uint8 in the graph (files, not hostile bytes:
    those go through :func:`xray_seg.core.images.decode_image`)."""
    image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def make_loader(files: SplitFiles):
    """``load(index)``: the decoded ``(image [H, W, 3], mask [H, W])`` uint8 of file ``index`` of ``files``,
    asserting in the graph that the mask's labels and size are valid (the file may change after the check)."""
    images = tf.constant(files.images)
    masks = tf.constant(files.masks)
    kinds = tf.constant(files.mask_kinds, tf.int32)
    num_classes = files.num_classes

    def load(index):
        image_path, mask_path = images[index], masks[index]
        image = decode_rgb(tf.io.read_file(image_path))
        mask = decode_mask(tf.io.read_file(mask_path), kinds[index])
        valid = tf.reduce_all((mask < num_classes) | (mask == IGNORE_LABEL))
        problem = f"mask has labels outside 0..{num_classes - 1} and {IGNORE_LABEL} (class_names.txt lists {num_classes} classes)"
        check = tf.debugging.Assert(valid, [tf.strings.join([ERROR_TAG, mask_path, problem], separator="|")])
        same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(mask)))
        check_size = tf.debugging.Assert(
            same, [tf.strings.join([ERROR_TAG, mask_path, "mask and image sizes differ"], separator="|")]
        )
        with tf.control_dependencies([check, check_size]):
            return tf.identity(image), tf.identity(mask)

    return load


__all__ = ["ERROR_TAG", "decode_mask", "decode_rgb", "make_loader", "voc_colours_to_labels"]
