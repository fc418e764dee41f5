"""Threat image projection (TIP): project threats cut from labelled scans into other bags.

TIP is the augmentation screening systems use to insert fictional threats into real
bags; Bhowmik et al. 2019 evaluated TIP-composited imagery for training CNNs on
prohibited items. Here it is physics-based and pixel-exact (docs/architecture.md,
"pipeline"):

Threat library (:func:`build_library`, numpy, once per run)
    Every threat instance of a VOC split: its pixels, its mask, its class and the
    scan's air intensity ``I_air`` per channel, cropped to the instance's box. Instances
    come from ``SegmentationObject/`` when the folder has it (each object id; its class is
    the majority class under it), else from the 8-connected components of each class in
    the class mask. ``I_air`` is 255 (``air="white"``: a scan is normalised so that air is
    white) or, with ``air="estimate"``, the 99th percentile of each channel over the scan's
    background pixels. The transmission relative to air is ``T = clip(I / I_air, 0, 1)``
    per channel inside the instance mask and exactly 1 outside it.

Projection (:func:`project_threats`, pure stateless TensorFlow, inside tf.data)
    Beer-Lambert: intensities behind stacked absorbers multiply their transmissions, so
    ``I_out = I_bag * T_threat`` inside the projected threat mask and ``I_out = I_bag``
    elsewhere; what lay under the threat stays visible through it, and several threats
    multiply. Each projected threat gets a random pose: rotation uniform in
    ``[-180, 180)`` degrees (``tip_rotate``), a horizontal flip with probability 0.5 and a
    scale uniform in ``tip_scale_range``, about a centre drawn uniformly among the bag
    pixels of the target scan (bag = not air: channel mean below ``tip_bag_threshold``,
    and not ignore; the centre lies in the bag, the threat may reach past the bag's edge,
    as in `xray-seg show-batch --tip`). ``T`` is resampled bilinearly and the mask by nearest neighbour
    through the same affine map, and ``T`` is applied only where the resampled mask is
    set, so the changed pixels are exactly the projected mask. The projected mask
    overwrites the labels under it. **Ignore (255) pixels of the target are respected:**
    nothing is projected onto them (image and label stay as they were).

    With ``tip_prob`` a scan receives ``n ~ U{1..tip_max_threats}`` threats, else none.
    Randomness comes from ``fold_in(element_seed, 3)`` (augment.py uses folds 1 and 2), so
    a sample is a pure function of (seed, epoch, position) and resumes exactly; with
    ``tip_prob = 0`` (the default) nothing changes.

Clean bags (all-background masks) in the training split become threat images under TIP;
the offline ``xray-seg tip`` (``commands/tip.py``) also takes a folder of unlabelled clean
images and writes the composites as a new VOC folder.

The library is captured in the tf.data graph as constants (uint8 pixels and masks), so it
should stay well below 2 GB: about ``3 * sum(box areas)`` bytes plus the masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xray_seg.conversion.voc import VocLayout, load_label_png, read_split
from xray_seg.core.errors import ConfigError, DatasetError
from xray_seg.core.images import read_image_rgb
from xray_seg.core.viz import IGNORE_LABEL

TIP_FOLD = 3  # fold of the element seed reserved for TIP (augment.py uses 1 and 2)
AIR_CHOICES = ("white", "estimate")


@dataclass
class ThreatInstance:
    """One threat of the library: ``pixels`` uint8 ``[h, w, 3]`` and ``mask`` bool ``[h, w]``
    cropped to the instance's box, its class ``label``, the scan's ``air`` intensity per
    channel and the ``source`` stem."""

    pixels: np.ndarray
    mask: np.ndarray
    label: int
    air: np.ndarray
    source: str = ""

    @property
    def transmission(self) -> np.ndarray:
        """``T = clip(I / I_air, 0, 1)`` per channel inside the mask, 1 outside; float32 ``[h, w, 3]``."""
        t = np.clip(self.pixels.astype(np.float32) / self.air.astype(np.float32), 0.0, 1.0)
        return np.where(self.mask[..., None], t, 1.0).astype(np.float32)


def estimate_air(image: np.ndarray, label: np.ndarray | None = None, *, air: str = "white") -> np.ndarray:
    """The air intensity ``I_air`` per channel (float32 ``[3]``), see the module docstring."""
    if air == "white":
        return np.full(3, 255.0, np.float32)
    if air != "estimate":
        raise ValueError(f"air must be one of {AIR_CHOICES}, got {air!r}")
    pixels = image.reshape(-1, 3)
    if label is not None and np.any(label.reshape(-1) == 0):
        pixels = pixels[label.reshape(-1) == 0]
    return np.maximum(np.percentile(pixels, 99, axis=0), 1.0).astype(np.float32)


def instance_masks(label: np.ndarray, objects: np.ndarray | None = None, *, min_pixels: int = 16):
    """``[(class, bool mask [H, W])]`` of the threats of a scan, from its object mask when
    given (object ids 1..254), else from the 8-connected components of each class."""
    from scipy import ndimage

    found = []
    if objects is not None:
        for obj in np.unique(objects):
            if obj == 0 or obj == IGNORE_LABEL:
                continue
            region = objects == obj
            classes = label[region]
            classes = classes[(classes != 0) & (classes != IGNORE_LABEL)]
            if classes.size == 0:
                continue
            cls = int(np.bincount(classes).argmax())
            region &= label == cls
            if region.sum() >= min_pixels:
                found.append((cls, region))
        return found
    for cls in np.unique(label):
        if cls == 0 or cls == IGNORE_LABEL:
            continue
        components, count = ndimage.label(label == cls, structure=np.ones((3, 3), bool))
        for index in range(1, count + 1):
            region = components == index
            if region.sum() >= min_pixels:
                found.append((int(cls), region))
    return found


def crop_instance(image, region, cls, air, source="") -> ThreatInstance:
    rows, cols = np.nonzero(region)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return ThreatInstance(
        np.ascontiguousarray(image[top:bottom, left:right]),
        region[top:bottom, left:right].copy(),
        int(cls),
        air,
        source,
    )


def check_mask_size(mask: np.ndarray, image: np.ndarray, mask_path) -> None:
    """DatasetError naming ``mask_path`` when the mask is not the image's size."""
    if mask_path is not None and mask.shape[:2] != image.shape[:2]:
        raise DatasetError(
            f"the mask is {mask.shape[1]}x{mask.shape[0]} but its image is {image.shape[1]}x{image.shape[0]} (WxH)",
            path=mask_path,
            fix="re-run `xray-seg convert` so that every mask matches its image",
        )


def build_library(
    voc_dir, split: str = "train", *, air: str = "white", min_pixels: int = 16, progress: bool = True
) -> list[ThreatInstance]:
    """The threat instances of ``split`` of a VOC folder (module docstring); ConfigError if none."""
    from tqdm import tqdm

    if air not in AIR_CHOICES:
        raise ConfigError(f"unknown TIP air mode {air!r}", fix=f"use one of {', '.join(AIR_CHOICES)}")
    layout = VocLayout(voc_dir)
    objects_dir = layout.root / "SegmentationObject"
    library = []
    stems = read_split(voc_dir, split)
    for stem in tqdm(stems, desc=f"TIP library {split}", unit="scan", disable=not progress or len(stems) < 50):
        image = read_image_rgb(layout.image_path(stem))  # 16-bit keeps its high byte (tip_dataset docstring)
        label = load_label_png(layout.mask_path(stem))
        check_mask_size(label, image, layout.mask_path(stem))
        object_path = objects_dir / f"{stem}.png"
        objects = load_label_png(object_path) if object_path.is_file() else None
        air_level = estimate_air(image, label, air=air)
        for cls, region in instance_masks(label, objects, min_pixels=min_pixels):
            library.append(crop_instance(image, region, cls, air_level, stem))
    if not library:
        raise ConfigError(
            f"no threat instances (of at least {min_pixels} pixels) in split {split!r}",
            path=voc_dir,
            fix="point tip_library at a VOC folder with labelled threats",
        )
    return library


@dataclass(frozen=True)
class TipConfig:
    """The projection's options (the ``tip_*`` fields of :class:`~xray_seg.pipeline.augment.AugmentConfig`)."""

    prob: float = 1.0
    max_threats: int = 1
    scale_range: tuple = (0.8, 1.25)
    rotate: bool = True
    flip: bool = True
    bag_threshold: float = 240.0


class PackedLibrary:
    """A library as flat TF constants for the graph: uint8 pixels and masks, offsets, shapes."""

    def __init__(self, library: list[ThreatInstance]):
        import tensorflow as tf

        sizes = [inst.mask.size for inst in library]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.count = len(library)
        self.pixels = tf.constant(np.concatenate([inst.pixels.reshape(-1, 3) for inst in library]), tf.uint8)
        self.masks = tf.constant(np.concatenate([inst.mask.reshape(-1) for inst in library]).astype(np.uint8), tf.uint8)
        self.offsets = tf.constant(offsets, tf.int64)
        self.shapes = tf.constant([inst.mask.shape for inst in library], tf.int32)
        self.labels = tf.constant([inst.label for inst in library], tf.uint8)
        self.air = tf.constant(np.stack([inst.air for inst in library]), tf.float32)

    def get(self, index):
        """``(T float32 [h, w, 3] (1 outside the mask), mask float32 [h, w, 1], label uint8)``."""
        import tensorflow as tf

        shape = self.shapes[index]
        start, size = self.offsets[index], tf.cast(shape[0] * shape[1], tf.int64)
        pixels = tf.reshape(
            tf.slice(self.pixels, tf.stack([start, 0]), tf.stack([size, 3])), tf.concat([shape, [3]], 0)
        )
        mask = tf.cast(tf.reshape(tf.slice(self.masks, [start], [size]), tf.concat([shape, [1]], 0)), tf.float32)
        t = tf.clip_by_value(tf.cast(pixels, tf.float32) / self.air[index], 0.0, 1.0)
        return tf.where(mask > 0, t, 1.0), mask, self.labels[index]


def _pose_transform(patch_hw, centre, angle, scale, flip_x):
    """The 8-vector (output pixel -> patch pixel) of ImageProjectiveTransformV3 that puts the
    patch's integer centre pixel at ``centre`` (y, x), rotated by ``angle``, scaled, flipped."""
    import tensorflow as tf

    cv = tf.floor(tf.cast(patch_hw[0], tf.float32) / 2.0)
    cu = tf.floor(tf.cast(patch_hw[1], tf.float32) / 2.0)
    cy, cx = centre[0], centre[1]
    cos, sin = tf.cos(angle), tf.sin(angle)
    a0, a1 = flip_x * cos / scale, flip_x * sin / scale
    b0, b1 = -sin / scale, cos / scale
    return tf.stack([a0, a1, cu - a0 * cx - a1 * cy, b0, b1, cv - b0 * cx - b1 * cy, 0.0, 0.0])


def _random_bag_pixel(pixels, seed):
    """``(found, [y, x] float32)``: a pixel drawn uniformly among ``pixels`` (``tf.where(bag)``)."""
    import tensorflow as tf

    count = tf.shape(pixels)[0]
    index = tf.random.stateless_uniform([], seed, 0, tf.maximum(count, 1), tf.int32)
    point = tf.gather(tf.concat([pixels, tf.zeros([1, 2], tf.int64)], 0), index)
    return count > 0, tf.cast(point, tf.float32)


def _warp(x, transform, hw, fill: float, interpolation: str):
    """Resample a patch ``[h, w, C]`` onto the scan's ``hw`` grid through ``transform`` (output -> patch)."""
    import tensorflow as tf

    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None],
        transforms=transform,
        output_shape=hw,
        fill_value=tf.constant(fill, tf.float32),
        interpolation=interpolation,
        fill_mode="CONSTANT",
    )[0]


def project_threats(image, mask, seed, library: PackedLibrary, config: TipConfig):
    """Project ``0..max_threats`` random threats into one scan (module docstring).

    Args:
        image: ``[H, W, 3]`` uint8 or float (0..255).
        mask: ``[H, W]`` uint8 labels (255 ignore).
        seed: int64 ``[2]``; the output is a pure function of it.
        library: a :class:`PackedLibrary`.
        config: a :class:`TipConfig`.

    Returns:
        ``(image float32 [H, W, 3], mask uint8 [H, W])``.
    """
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    mask = tf.cast(mask, tf.uint8)
    hw = tf.shape(mask)[:2]
    slots = 2 + 5 * config.max_threats
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), slots)
    apply = tf.random.stateless_uniform([], seeds[0]) < config.prob
    count = tf.random.stateless_uniform([], seeds[1], 1, config.max_threats + 1, tf.int32)
    writable = tf.not_equal(mask, IGNORE_LABEL)
    bag = tf.logical_and(tf.reduce_mean(image, axis=-1) < config.bag_threshold, writable)
    bag_pixels = tf.where(bag)  # once: later threats may land on earlier ones (transmissions multiply)
    lo, hi = (float(v) for v in config.scale_range)
    for i in range(config.max_threats):
        s_pick, s_point, s_angle, s_flip, s_scale = (seeds[2 + 5 * i + k] for k in range(5))
        pick = tf.random.stateless_uniform([], s_pick, 0, library.count, tf.int32)
        transmission, patch_mask, label = library.get(pick)
        found, centre = _random_bag_pixel(bag_pixels, s_point)
        angle = tf.random.stateless_uniform([], s_angle, -math.pi, math.pi) if config.rotate else tf.constant(0.0)
        flip = tf.where(tf.random.stateless_uniform([], s_flip) < 0.5, -1.0, 1.0) if config.flip else tf.constant(1.0)
        scale = tf.random.stateless_uniform([], s_scale, lo, hi) if hi > lo else tf.constant(lo)
        transform = _pose_transform(tf.shape(patch_mask)[:2], centre, angle, scale, flip)[None]

        placed = _warp(patch_mask, transform, hw, 0.0, "NEAREST")[..., 0] > 0.5
        placed = placed & writable & apply & found & (i < count)
        t = _warp(transmission, transform, hw, 1.0, "BILINEAR")
        image = tf.where(placed[..., None], image * t, image)  # Beer-Lambert: I_out = I_bag * T
        mask = tf.where(placed, label, mask)
    return image, mask


def tip_config_of(augment) -> TipConfig | None:
    """The :class:`TipConfig` of an AugmentConfig, or None when TIP is off."""
    if augment is None or not augment.enabled or augment.tip_prob <= 0:
        return None
    return TipConfig(
        prob=float(augment.tip_prob),
        max_threats=int(augment.tip_max_threats),
        scale_range=tuple(float(v) for v in augment.tip_scale_range),
        rotate=bool(augment.tip_rotate),
        bag_threshold=float(augment.tip_bag_threshold),
    )


def make_projector(augment, voc_dir):
    """``f(image, mask, element_seed) -> (image, mask)`` for the training pipeline, or None
    when TIP is off. The library is ``augment.tip_library`` (default: ``voc_dir``), split
    ``augment.tip_library_split``; never a validation split unless asked for."""
    import tensorflow as tf

    config = tip_config_of(augment)
    if config is None:
        return None
    source = augment.tip_library or voc_dir
    packed = PackedLibrary(build_library(source, augment.tip_library_split, air=augment.tip_air))

    def project(image, mask, element_seed):
        seed = tf.random.experimental.stateless_fold_in(tf.cast(element_seed, tf.int64), TIP_FOLD)
        return project_threats(image, mask, seed, packed, config)

    return project
