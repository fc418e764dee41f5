"""Dual-energy X-ray physics for the synthetic dataset: materials, Beer-Lambert, pseudo-colour.

With thickness maps ``t_m`` (mm) per material ``m`` and linear attenuation coefficients
``mu_m(E)`` (1/mm), each pixel's transmission of the low- and high-energy beam is

    T_E = exp(-sum_m mu_m(E) * t_m)          for E in {low, high},

so objects overlapping on a ray multiply their transmissions (their attenuations add).

**Coefficients.** :data:`MATERIALS` holds monochromatic linear attenuation coefficients at
~60 keV (low) and ~120 keV (high): NIST XCOM mass attenuation coefficients (cm^2/g) times a
typical density, in 1/mm, rounded; 120 keV log-log interpolated between 100 and 150 keV. The
table with each material's low/high ratio: docs/data.md, "The physics of the synthetic scans".

**Pseudo-colour** (:func:`pseudo_colour`), as screening consoles do it, from the attenuations
``A_E = -ln T_E``:

* hue from ``R = A_low / A_high`` (effective atomic number): orange (organic, R ~ 1.3),
  green (mixed or light inorganic, R ~ 1.6-2.2), blue (metal, R >= 3);
* darkness from ``A_high``: each display channel is ``exp(-gain * A_high * w_c(R))`` (a
  "coloured glass" model), so air is white and thick steel near black;
* ``R`` is shrunk towards the organic value by ``A_high / (A_high + 0.15)``, so thin metal
  shows as "mixed", as on scanners.

:func:`detector` adds the imaging chain: a Gaussian point-spread blur and photon (Poisson,
Gaussian-approximated) noise of a detector counting ~20 000 photons per pixel in open air.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Material:
    """A material's linear attenuation coefficients (1/mm) at the two beam energies."""

    name: str
    density: float
    mu_low: float
    mu_high: float

    @property
    def ratio(self) -> float:
        """low/high attenuation ratio, the dual-energy proxy of effective atomic number."""
        return self.mu_low / self.mu_high


MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        Material("organic", 1.00, 0.0206, 0.0160),
        Material("plastic", 1.20, 0.0256, 0.0186),
        Material("glass", 2.50, 0.0625, 0.0375),
        Material("aluminium", 2.70, 0.0750, 0.0413),
        Material("steel", 7.87, 0.948, 0.220),
        Material("copper", 8.96, 1.427, 0.297),
    )
}
MATERIAL_NAMES = tuple(MATERIALS)

#: Smallest transmission a detector reports (its dark floor); avoids log(0).
MIN_TRANSMISSION = 1e-4

# Hue anchors: low/high ratio -> per-channel (R, G, B) absorption weights w_c.
# Orange keeps red (absorbs blue), green keeps green, blue keeps blue.
_RATIO_ANCHORS = np.array([1.29, 1.55, 1.85, 2.40, 3.20], dtype=np.float32)
_CHANNEL_WEIGHTS = np.array(
    [
        [0.22, 0.72, 1.75],  # organic: orange / brown
        [0.75, 0.55, 1.45],  # light inorganic: olive
        [1.25, 0.50, 1.15],  # mixed: green
        [1.45, 0.85, 0.70],  # teal
        [1.55, 1.10, 0.42],  # metal: blue, black when thick
    ],
    dtype=np.float32,
)
_LUT_BINS = 512


def weight_lut(anchors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The ``[_LUT_BINS, 3]`` table of channel absorption weights, linear in the ratio between
    the ``anchors`` (low/high ratios) and their ``weights`` rows (a colour ramp)."""
    grid = np.linspace(anchors[0], anchors[-1], _LUT_BINS)
    return np.stack([np.interp(grid, anchors, weights[:, c]) for c in range(3)], axis=1).astype(np.float32)


_WEIGHT_LUT = weight_lut(_RATIO_ANCHORS, _CHANNEL_WEIGHTS)
DISPLAY_GAIN = 3.4
_RATIO_SHRINK = 0.15


def transmission(thickness: Mapping[str, np.ndarray | float], energy: str) -> np.ndarray:
    """Beer-Lambert transmission ``exp(-sum_m mu_m(E) t_m)`` of stacked materials.

    Args:
        thickness: material name -> thickness in mm (array maps or scalars, broadcast).
        energy: ``"low"`` (~60 keV) or ``"high"`` (~120 keV).

    Returns:
        float32 transmission in (0, 1]; 1 where nothing is in the beam.
    """
    if energy not in ("low", "high"):
        raise ValueError(f"energy must be 'low' or 'high', not {energy!r}")
    attenuation = 0.0
    for name, t in thickness.items():
        material = MATERIALS[name]
        attenuation = attenuation + (material.mu_low if energy == "low" else material.mu_high) * np.asarray(
            t, dtype=np.float32
        )
    return np.exp(-np.asarray(attenuation, dtype=np.float32)).astype(np.float32)


def dual_energy(thickness: Mapping[str, np.ndarray | float]) -> tuple[np.ndarray, np.ndarray]:
    """Low- and high-energy transmissions ``(T_low, T_high)`` of the thickness maps."""
    return transmission(thickness, "low"), transmission(thickness, "high")


def detector(
    t_low: np.ndarray,
    t_high: np.ndarray,
    rng: np.random.Generator,
    *,
    blur_sigma: float = 0.6,
    photons: float = 20000.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The imaging chain: Gaussian PSF blur, then photon noise, then the dark floor.

    Noise is Poisson counting noise in its Gaussian form: a pixel receiving
    ``photons * T`` photons has relative standard deviation ``1 / sqrt(photons * T)``.
    """
    out = []
    for t in (t_low, t_high):
        t = np.asarray(t, dtype=np.float32)
        if blur_sigma > 0:
            t = cv2.GaussianBlur(t, (0, 0), blur_sigma, borderType=cv2.BORDER_REPLICATE)
        noise = rng.standard_normal(t.shape, dtype=np.float32) * np.sqrt(np.maximum(t, 0) / photons)
        out.append(np.clip(t + noise, MIN_TRANSMISSION, 1.0).astype(np.float32))
    return out[0], out[1]


def pseudo_colour(
    t_low: np.ndarray,
    t_high: np.ndarray,
    *,
    gain: float = DISPLAY_GAIN,
    anchors: np.ndarray = _RATIO_ANCHORS,
    lut: np.ndarray = _WEIGHT_LUT,
    shrink: float = _RATIO_SHRINK,
) -> np.ndarray:
    """Map dual-energy transmissions to the RGB uint8 image a screening console shows.

    Hue from the low/high attenuation ratio (effective Z), darkness from the high-energy
    attenuation (amount of matter); see the module docstring. ``anchors``, ``lut``
    (:func:`weight_lut`) and ``shrink`` default to this module's console; another vendor's
    colour ramp passes its own (:mod:`xray_seg.synthesis.scanners`).
    """
    a_low = -np.log(np.clip(t_low, MIN_TRANSMISSION, 1.0))
    a_high = -np.log(np.clip(t_high, MIN_TRANSMISSION, 1.0))
    a_low = np.maximum(a_low, 0.0)
    a_high = np.maximum(a_high, 0.0)
    eps = 1e-3
    organic = anchors[0]
    ratio = (a_low + eps * organic) / (a_high + eps)
    confidence = a_high / (a_high + shrink)
    ratio = organic + (ratio - organic) * confidence
    ratio = np.clip(ratio, anchors[0], anchors[-1])
    lo, hi = anchors[0], anchors[-1]
    index = ((ratio - lo) * ((_LUT_BINS - 1) / (hi - lo)) + 0.5).astype(np.intp)
    rgb = np.exp(lut[index] * (-gain * a_high)[..., None])
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def render_xray(
    thickness: Mapping[str, np.ndarray], rng: np.random.Generator, *, blur_sigma: float = 0.6
) -> np.ndarray:
    """Thickness maps -> blurred, noisy dual-energy scan -> pseudo-colour RGB uint8."""
    t_low, t_high = dual_energy(thickness)
    t_low, t_high = detector(t_low, t_high, rng, blur_sigma=blur_sigma)
    return pseudo_colour(t_low, t_high)
