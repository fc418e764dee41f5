"""Paired image/mask augmentation in pure, stateless TensorFlow ops.

Paper 1 (CWF-DeepLabv3+, section 4.2): random crop, rotation ("revolve") and sharpening at
512x512, plus exposure (brightness, contrast, gamma) and noise (why: docs/training.md, "Augmentation").

Geometry (image and mask alike, composed into one affine map from output to input pixel and
applied once with ``tf.raw_ops.ImageProjectiveTransformV3``: bilinear image, nearest mask):
    1. fit: scale by ``min(crop_h / H, crop_w / W)``, or by the fixed ``scale`` when given (the
       geometry rule's, docs/architecture.md "Geometry: how a scan reaches the network");
    2. random scale: times a factor ``~ U(scale_range)``;
    3. random crop of the training size at whole-pixel offsets (a smaller image lands at a
       random place in the window); with probability ``foreground_crop_prob`` the window is
       centred, give or take a quarter of its size, on a pixel of a foreground class drawn
       uniformly among those present (nnU-Net foreground oversampling, Isensee et al. 2021);
    4. horizontal and vertical flips, each with probability 0.5;
    5. rotation with probability ``rotate_prob`` by ``~ U(-max_rotation_deg, max_rotation_deg)``
       about the window centre.
    Padding: ``255`` (ignore) in the mask, ``image_fill`` (default 255, air) in the image. With
    augmentation off (``config`` None or ``enabled=False``) only step 1 runs and the image sits
    at the top-left of the window.

Photometric (image only, in this order, each switchable off): sharpening ``x + a (x -
blur3x3(x))``, ``a ~ U(sharpen_amount)``, with probability ``sharpen_prob``; contrast ``(x -
mean) f + mean``, ``f ~ U(1 - contrast, 1 + contrast)``; brightness ``x + 255 d``, ``d ~
U(-brightness, brightness)``; gamma ``255 (x / 255) ** g``, ``log g ~ U(log gamma)``; Gaussian
noise, ``std ~ U(0, noise_std)`` grey levels, one value per pixel added to all three channels.
Clipped to 0..255.

Randomness is stateless: each transform draws from its own sub-seed of the element's ``seed``,
so the same seed gives the same output and switching one off does not change the others' draws.
"""

from __future__ import annotations

import math

import tensorflow as tf

from xray_seg.core.constants import IGNORE_LABEL
from xray_seg.pipeline.augment_config import AugmentConfig  # noqa: F401 - its home before; imported from here

# Sub-seed slots, one per random decision; fixed so that switching one off leaves the rest alone.
(
    _SCALE,
    _CROP,
    _HFLIP,
    _VFLIP,
    _ROT_ON,
    _ROT_ANGLE,
    _SHARP_ON,
    _SHARP_AMOUNT,
    _CONTRAST,
    _BRIGHT,
    _GAMMA,
    _NOISE_STD,
    _NOISE,
) = range(13)
_NUM_SLOTS = 13


def _crop_hw(crop_size) -> tuple[int, int]:
    if isinstance(crop_size, int):
        return crop_size, crop_size
    height, width = crop_size
    return int(height), int(width)


def _uniform(seed, low, high, dtype=tf.float32):
    return tf.random.stateless_uniform([], seed=seed, minval=low, maxval=high, dtype=dtype)


def _coin(seed, prob: float):
    return tf.random.stateless_uniform([], seed=seed) < prob


def _affine(a, b, c, d, e, f):
    """The 3x3 matrix ``[[a, b, c], [d, e, f], [0, 0, 1]]`` acting on (x=column, y=row, 1)."""
    zero, one = tf.zeros([], tf.float32), tf.ones([], tf.float32)
    return tf.stack([tf.stack([a, b, c]), tf.stack([d, e, f]), tf.stack([zero, zero, one])])


def _foreground_point(mask, seed):
    """``(found, [y, x])``: a pixel of a foreground class (1..254) drawn uniformly among the
    classes present in ``mask`` ``[H, W, 1]``, then uniformly among that class's pixels."""
    labels = tf.cast(mask[..., 0], tf.int32)
    is_fg = tf.logical_and(labels > 0, labels != IGNORE_LABEL)
    classes, _ = tf.unique(tf.boolean_mask(labels, is_fg))
    found = tf.size(classes) > 0
    pick_seed, pixel_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    n_classes = tf.maximum(tf.size(classes), 1)
    chosen = tf.gather(
        tf.concat([classes, [-1]], 0), tf.random.stateless_uniform([], pick_seed, 0, n_classes, tf.int32)
    )
    pixels = tf.where(tf.equal(labels, chosen))
    n_pixels = tf.maximum(tf.shape(pixels)[0], 1)
    index = tf.random.stateless_uniform([], pixel_seed, 0, n_pixels, tf.int32)
    point = tf.cast(tf.gather(tf.concat([pixels, tf.zeros([1, 2], tf.int64)], 0), index), tf.float32)
    return found, point


def _crop_offset(seed, seeds, config: AugmentConfig, mask, scale, scaled_hw, crop_hw):
    """The (y, x) offset of the crop window in the scaled image (whole pixels), see module doc."""
    (scaled_h, scaled_w), (crop_h, crop_w) = scaled_hw, crop_hw
    # Whole-pixel window offset, uniform over every placement of window and image.
    span = tf.stack([scaled_h - crop_h, scaled_w - crop_w])
    low, high = tf.floor(tf.minimum(span, 0.0)), tf.floor(tf.maximum(span, 0.0))
    offset = tf.floor(low + tf.random.stateless_uniform([2], seed=seeds[_CROP]) * (high - low + 1.0))
    if config.foreground_crop_prob > 0 and mask is not None:
        # Own seeds (folded from the element seed), so the other draws stay as they were.
        on_seed, point_seed, jitter_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed, 2), 3)
        )
        found, point = _foreground_point(mask, point_seed)
        crop = tf.constant([crop_h, crop_w])
        jitter = (tf.random.stateless_uniform([2], seed=jitter_seed) - 0.5) * crop / 2.0
        centred = tf.clip_by_value(tf.floor((point + 0.5) * scale - 0.5 - (crop - 1.0) / 2.0 + jitter), low, high)
        offset = tf.where(tf.logical_and(found, _coin(on_seed, config.foreground_crop_prob)), centred, offset)
    return tf.minimum(offset, high)


def geometry_matrix(in_hw, crop_hw, seed, config: AugmentConfig | None, mask=None, fit_hw=None, scale=None):
    """The affine map (3x3, float32) from output pixel (x, y, 1) to input pixel, see module doc.

    Pixel centres sit at integer coordinates; a pixel ``X`` of the scaled image covers
    input coordinate ``(X + 0.5) / s - 0.5``. ``mask`` (``[H, W, 1]``) is needed only for
    ``config.foreground_crop_prob > 0``. ``fit_hw`` is the size the image is fitted to in
    step 1 (default: ``crop_hw``); a smaller ``crop_hw`` then cuts crops out of it.
    ``scale`` (a float) replaces the fit of step 1 by that fixed factor.
    """
    in_h, in_w = tf.cast(in_hw[0], tf.float32), tf.cast(in_hw[1], tf.float32)
    crop_h, crop_w = float(crop_hw[0]), float(crop_hw[1])
    fit_h, fit_w = (crop_h, crop_w) if fit_hw is None else (float(fit_hw[0]), float(fit_hw[1]))
    fit = tf.minimum(fit_h / in_h, fit_w / in_w) if scale is None else tf.constant(float(scale))
    zero, one = tf.constant(0.0), tf.constant(1.0)
    active = config is not None and config.enabled
    seeds = tf.random.experimental.stateless_split(seed, _NUM_SLOTS) if active else None

    scale = fit
    if active and tuple(config.scale_range) != (1.0, 1.0):
        scale = fit * _uniform(seeds[_SCALE], float(config.scale_range[0]), float(config.scale_range[1]))
    scaled_h, scaled_w = in_h * scale, in_w * scale

    offset = (
        _crop_offset(seed, seeds, config, mask, scale, (scaled_h, scaled_w), (crop_h, crop_w))
        if active
        else tf.zeros([2])
    )
    off_y, off_x = offset[0], offset[1]

    # output -> flipped -> rotated about the window centre -> + offset -> input coordinates
    cx, cy = (crop_w - 1.0) / 2.0, (crop_h - 1.0) / 2.0
    if active and config.hflip:
        sx = tf.where(_coin(seeds[_HFLIP], 0.5), -one, one)
    else:
        sx = one
    if active and config.vflip:
        sy = tf.where(_coin(seeds[_VFLIP], 0.5), -one, one)
    else:
        sy = one
    flip = _affine(sx, zero, tf.where(sx < 0, crop_w - 1.0, 0.0), zero, sy, tf.where(sy < 0, crop_h - 1.0, 0.0))
    if active and config.rotate and config.max_rotation_deg > 0 and config.rotate_prob > 0:
        max_rad = math.radians(config.max_rotation_deg)
        angle = _uniform(seeds[_ROT_ANGLE], -max_rad, max_rad)
        angle = tf.where(_coin(seeds[_ROT_ON], config.rotate_prob), angle, 0.0)
    else:
        angle = zero
    cos, sin = tf.cos(angle), tf.sin(angle)
    rotation = _affine(cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)
    shift = _affine(one, zero, off_x, zero, one, off_y)
    unscale = _affine(1.0 / scale, zero, 0.5 / scale - 0.5, zero, 1.0 / scale, 0.5 / scale - 0.5)
    return unscale @ shift @ rotation @ flip


def _warp(images, matrix, crop_hw, fill_value: float, interpolation: str):
    """Resample a ``[H, W, C]`` tensor through ``matrix`` (output -> input) to ``crop_hw``."""
    transform = tf.concat([tf.reshape(matrix[:2, :], [6]), tf.zeros([2])], axis=0)[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images[None],
        transforms=transform,
        output_shape=tf.constant(crop_hw, tf.int32),
        fill_value=tf.constant(fill_value, tf.float32),
        interpolation=interpolation,
        fill_mode="CONSTANT",
    )
    return out[0]


def _blur3x3(image):
    """Separable [1, 2, 1] / 4 Gaussian blur with reflected borders, ``[H, W, 3]`` float32."""
    kernel = tf.constant([0.25, 0.5, 0.25])
    k = tf.tile((kernel[:, None] * kernel[None, :])[:, :, None, None], [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, k, strides=[1, 1, 1, 1], padding="VALID")[0]


def photometric(image, seed, config: AugmentConfig):
    """Scanner-like intensity changes of a float32 ``[H, W, 3]`` image in 0..255 (module doc)."""
    seeds = tf.random.experimental.stateless_split(seed, _NUM_SLOTS)
    if config.sharpen_prob > 0:
        amount = _uniform(seeds[_SHARP_AMOUNT], float(config.sharpen_amount[0]), float(config.sharpen_amount[1]))
        amount = tf.where(_coin(seeds[_SHARP_ON], config.sharpen_prob), amount, 0.0)
        image = image + amount * (image - _blur3x3(image))
    if config.contrast > 0:
        factor = _uniform(seeds[_CONTRAST], 1.0 - config.contrast, 1.0 + config.contrast)
        mean = tf.reduce_mean(image)
        image = (image - mean) * factor + mean
    if config.brightness > 0:
        image = image + 255.0 * _uniform(seeds[_BRIGHT], -config.brightness, config.brightness)
    if tuple(config.gamma) != (1.0, 1.0):
        g = tf.exp(_uniform(seeds[_GAMMA], math.log(config.gamma[0]), math.log(config.gamma[1])))
        image = 255.0 * tf.pow(tf.clip_by_value(image, 0.0, 255.0) / 255.0, g)
    if config.noise_std > 0:
        std = _uniform(seeds[_NOISE_STD], 0.0, float(config.noise_std))
        grey = tf.concat([tf.shape(image)[:2], [1]], axis=0)  # intensity noise, same in every channel
        image = image + std * tf.random.stateless_normal(grey, seed=seeds[_NOISE])
    return tf.clip_by_value(image, 0.0, 255.0)


def augment_pair(image, mask, seed, config: AugmentConfig | None, crop_size, fit_size=None, scale=None):
    """Augment an (image, mask) pair identically in geometry; return float32 image, uint8 mask.

    Args:
        image: ``[H, W, 3]`` uint8 or float (0..255).
        mask: ``[H, W]`` or ``[H, W, 1]`` uint8 labels (255 = ignore).
        seed: int32/int64 ``[2]`` tensor; the output is a pure function of it.
        config: an :class:`AugmentConfig`, or None for fit-and-pad only.
        crop_size: the training size, ``int`` or ``(height, width)``.
        fit_size: the size images are fitted to before scaling and cropping (default:
            ``crop_size``). A larger ``fit_size`` trains on crops of images kept at the
            scale they are evaluated at.
        scale: a fixed step-1 factor instead of fitting (1.0: crops of native-resolution
            scans, the geometry rule); None fits to ``fit_size``.

    Returns:
        ``(image float32 [h, w, 3] in 0..255, mask uint8 [h, w])`` at the training size.
    """
    crop_hw = _crop_hw(crop_size)
    seed = tf.cast(seed, tf.int64)
    image = tf.cast(image, tf.float32)
    mask = tf.cast(mask, tf.uint8)
    if mask.shape.rank == 2:
        mask = mask[..., None]
    in_hw = tf.shape(image)[:2]
    fit_hw = None if fit_size is None else _crop_hw(fit_size)
    matrix = geometry_matrix(in_hw, crop_hw, seed, config, mask, fit_hw, scale)
    fill = 255.0 if config is None else float(config.image_fill)
    image = _warp(image, matrix, crop_hw, fill, "BILINEAR")
    mask = _warp(mask, matrix, crop_hw, float(IGNORE_LABEL), "NEAREST")[..., 0]
    if config is not None and config.enabled:
        photo_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        image = photometric(image, photo_seed, config)
    image = tf.ensure_shape(image, [crop_hw[0], crop_hw[1], 3])
    mask = tf.ensure_shape(mask, [crop_hw[0], crop_hw[1]])
    return image, mask
