"""Photo-style rendering of the synthetic threats: the source domain for CycleGAN.

Paper 1 (§4.2) enlarges its rare classes by collecting ordinary photographs of
prohibited items and translating them into X-ray style with CycleGAN (Zhu et al.
2017). ``xray-seg synth --style photo`` writes such a "photo" domain from the embedded
generator, so the whole augmentation path runs without downloading anything.

A photo shows the *same* threats as the X-ray image of the same ``(seed, index)``:
:func:`~xray_seg.synthesis.scene.render_photo_sample` renders the X-ray
scene (:func:`~xray_seg.synthesis.scene.render_sample`) and hands it to :func:`paint_photo`: the
scene (threat footprints, material thickness maps and Labelme polygons) and paints it
the way a camera sees it instead of the way X-rays do:

* no bag and no clutter, only the threats, lying on a plain or textured surface
  (paper, wood grain, cloth weave, a soft gradient), lit from one side;
* opaque, bright, coloured objects: steel is polished grey with a sheen that follows
  the light direction and a highlight along each part's ridge; plastic and wooden
  parts (grips, handles, finger rings) get one saturated colour per image;
* a soft drop shadow, slight defocus and camera noise.

This is the opposite of an X-ray image (transmission: dark where matter is thick,
overlapping items add up). The polygons and image size are exactly those of the
X-ray render, which makes the pair a useful sanity check of a translation.
Image ``i`` is deterministic in ``(seed, i)``; its appearance draws from a generator
seeded with ``(seed, i, 1)`` so that the geometry stream is untouched.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Saturated colours (RGB) of plastic / wooden parts: tool handles, grips, finger rings.
HANDLE_COLOURS = np.array(
    [
        [200, 30, 35],
        [230, 110, 20],
        [245, 200, 30],
        [30, 120, 200],
        [35, 150, 70],
        [25, 25, 30],
        [120, 60, 30],
        [150, 40, 150],
        [220, 60, 120],
    ],
    dtype=np.float32,
)

BACKGROUNDS = ("plain", "gradient", "wood", "cloth")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A light surface: plain, gradient, wood grain or cloth weave, float RGB 0..255."""
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    base = rng.uniform(150, 245, 3).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "plain":
        shade = np.ones((size, size), np.float32)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        shade = 0.85 + 0.3 * (math.cos(angle) * xx + math.sin(angle) * yy) / 1.5
    elif kind == "wood":
        base = np.array([rng.uniform(170, 215), rng.uniform(120, 160), rng.uniform(70, 105)], np.float32)
        warp = cv2.resize(rng.normal(0, 1, (6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        freq = rng.uniform(4, 10)
        shade = 0.9 + 0.1 * np.sin(2 * math.pi * freq * (yy + 0.04 * warp))
    else:  # cloth: a fine weave of two sinusoids
        period = max(size / rng.uniform(40, 90), 2.0)
        shade = 0.92 + 0.04 * np.sin(2 * math.pi * xx * size / period) + 0.04 * np.sin(2 * math.pi * yy * size / period)
    return shade[..., None] * base[None, None, :]


def _light_ramp(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """A linear illumination ramp (0.75..1.25) across the image and its light angle."""
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    return 1.0 + 0.5 * (math.cos(angle) * xx + math.sin(angle) * yy), angle


def paint_photo(threat_mask: np.ndarray, thickness: dict, rng: np.random.Generator) -> np.ndarray:
    """Paint threats (``threat_mask`` > 0) as opaque, lit objects on a surface; RGB uint8.

    ``thickness`` holds the scene's per-material maps in mm (as
    :func:`~xray_seg.synthesis.scene.render_sample` returns them); inside a threat's
    footprint, pixels with more than 0.5 mm of steel are painted as metal, the rest
    (plastic, wood) in one handle colour.
    """
    size = threat_mask.shape[0]
    image = _background(rng, size)
    inside = (threat_mask > 0).astype(np.float32)
    if inside.any():
        # soft drop shadow, offset away from the light
        ramp, angle = _light_ramp(rng, size)
        offset = 0.012 * size
        shift = np.float32([[1, 0, -offset * math.cos(angle)], [0, 1, -offset * math.sin(angle)]])
        shadow = cv2.warpAffine(inside, shift, (size, size))
        shadow = cv2.GaussianBlur(shadow, (0, 0), max(0.01 * size, 0.8))
        image *= (1.0 - 0.45 * shadow)[..., None]

        metal = (thickness["steel"] > 0.5).astype(np.float32) * inside
        handle = inside - metal
        grey = rng.uniform(85, 145)
        tint = rng.uniform(-8, 8, 3).astype(np.float32)
        # a highlight along each part's ridge: distance to the edge, normalised
        dist = cv2.distanceTransform((metal > 0).astype(np.uint8), cv2.DIST_L2, 3)
        ridge = np.clip(dist / max(0.015 * size, 1.0), 0, 1)
        metal_rgb = (grey + tint)[None, None, :] * ramp[..., None] + (45.0 * ridge)[..., None]
        colour = HANDLE_COLOURS[int(rng.integers(len(HANDLE_COLOURS)))]
        handle_rgb = colour[None, None, :] * (0.8 + 0.3 * (ramp - 0.75))[..., None]
        paint = metal[..., None] * metal_rgb + handle[..., None] * handle_rgb
        alpha = cv2.GaussianBlur(inside, (0, 0), 0.6)[..., None]  # anti-aliased edge
        image = (1 - alpha) * image + alpha * (paint + (1 - inside)[..., None] * image)
    sigma = rng.uniform(0.3, 0.8) * size / 256
    image = cv2.GaussianBlur(image, (0, 0), sigma)
    image += rng.normal(0, 2.5, image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)
