"""Scanner looks: how one scene of thickness maps shows on different vendors' scanners.

Sites run scanners from several vendors, and the same bag looks different on each: the
pseudo-colour ramp for organic / mixed / metal differs, so does the detector (its blur and
photon count) and the line artefacts of a line-scan detector. ``xray-seg synth --scanner
LOOK`` renders the *same* scene (thickness maps, threat footprints, Labelme polygons: all
drawn before the look is applied) in one of :data:`LOOKS`; only pixel values change, never
where a pixel is, so the masks stay exact in every look.

* ``dual_energy_a``: the console of :mod:`xray_seg.synthesis.xray_physics` (orange organic,
  green mixed, blue metal; ~20 000 photons per pixel, PSF sigma 0.6 px at 512 px, no line
  artefacts). The default; its output is exactly what ``synth`` wrote before looks existed.
* ``dual_energy_b``: another vendor's dual-energy console: amber / yellow organic, cyan
  mixed, violet metal, a lower display gain and a wider "thin metal looks organic" band;
  a noisier, blurrier detector (~6 000 photons, PSF sigma 0.9 px at 512 px) with line
  artefacts: a fixed gain error per detector row (horizontal stripes, 1.5 % SD) and a
  source-intensity flicker per scan line (vertical lines, 1 % SD).
* ``grey``: a single-energy scanner: one transmission, the geometric mean of the two
  beams (~85 keV), shown as grey, white air, ``exp(-2.2 A)``; ~30 000 photons, PSF sigma
  0.5 px at 512 px, weak row stripes (0.6 % SD). Written as a one-channel (8-bit grey) PNG,
  as such scanners write it; ``convert`` and the pipeline read it as three equal channels.

Line-scan geometry (as for belt scans in :mod:`xray_seg.synthesis.scene`): the detector
array lies across the belt (the image's rows are its elements), the belt moves along the
image's width (its columns are successive scan lines). The stripe and flicker gains act on
the transmission after the blur, before the photon noise; the paper is silent on all of
this, these values are our choice, picked to look different, not measured on a scanner.

``--scanner mixed`` (every look) or a comma list draws each bag's look from a generator
seeded with ``(seed, index, 3)``, so the geometry stream and the other looks' bags are
untouched; :func:`look_flags` records the look in the bag's Labelme ``flags``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from xray_seg.synthesis import xray_physics as physics

DEFAULT_LOOK = "dual_energy_a"
MIXED = "mixed"
FLAG_PREFIX = "scanner_"

_RAMP_B_ANCHORS = np.array([1.29, 1.60, 1.95, 2.50, 3.20], dtype=np.float32)
_RAMP_B_WEIGHTS = np.array(
    [
        [0.12, 0.40, 1.95],  # organic: amber / yellow
        [0.60, 0.30, 1.55],  # light inorganic: yellow-green
        [1.40, 0.35, 0.70],  # mixed: cyan-green
        [1.55, 0.95, 0.40],  # teal-blue
        [0.85, 1.70, 0.45],  # metal: violet, black when thick
    ],
    dtype=np.float32,
)
#: colour ramps other than the default console's: name -> (ratio anchors, weight LUT, shrink)
_RAMPS = {"vendor_b": (_RAMP_B_ANCHORS, physics.weight_lut(_RAMP_B_ANCHORS, _RAMP_B_WEIGHTS), 0.25)}


@dataclass(frozen=True)
class ScannerLook:
    """One scanner's look (module docstring for the values).

    Args:
        name: the ``--scanner`` name.
        description: one line for ``synth --help`` and docs/data.md.
        dual: dual-energy pseudo-colour (True) or single-energy grey.
        blur: detector PSF sigma in pixels at a 512-px bag (scaled with the bag's side).
        photons: photons per pixel in open air (noise).
        row_sd: SD of the fixed gain error per detector row (horizontal stripes).
        column_sd: SD of the source flicker per scan line (vertical lines).
        gain: display gain (darkness per unit attenuation).
        ramp: the pseudo-colour ramp of a dual-energy look other than the default console.
    """

    name: str
    description: str
    dual: bool = True
    blur: float = 0.6
    photons: float = 20000.0
    row_sd: float = 0.0
    column_sd: float = 0.0
    gain: float = physics.DISPLAY_GAIN
    ramp: str = ""


LOOKS: dict[str, ScannerLook] = {
    look.name: look
    for look in (
        ScannerLook(DEFAULT_LOOK, "dual-energy, orange organic / green mixed / blue metal (the default)"),
        ScannerLook(
            "dual_energy_b",
            "dual-energy, amber organic / cyan mixed / violet metal, noisier, row stripes and scan lines",
            blur=0.9,
            photons=6000.0,
            row_sd=0.015,
            column_sd=0.01,
            gain=3.0,
            ramp="vendor_b",
        ),
        ScannerLook(
            "grey",
            "single-energy grey, white air, weak row stripes",
            dual=False,
            blur=0.5,
            photons=30000.0,
            row_sd=0.006,
            gain=2.2,
        ),
    )
}
LOOK_NAMES = tuple(LOOKS)


def parse_looks(text: str) -> tuple[str, ...]:
    """The looks a ``--scanner`` value names: one look, ``mixed`` (all) or a comma list.

    Raises ValueError naming the unknown look.
    """
    text = str(text).strip()
    if text == MIXED:
        return LOOK_NAMES
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",")))
    unknown = [name for name in names if name not in LOOKS]
    if unknown or not names:
        raise ValueError(f"unknown scanner look {', '.join(unknown) or repr(text)!s}")
    return names


def look_of(scanner: str, seed: int, index: int) -> str:
    """The look of bag ``index``: the one look named, else drawn from ``(seed, index, 3)``."""
    looks = parse_looks(scanner)
    if len(looks) == 1:
        return looks[0]
    rng = np.random.default_rng([int(seed), int(index), 3])
    return looks[int(rng.integers(len(looks)))]


def look_flags(scanner: str, look: str) -> dict[str, bool]:
    """Labelme image flags recording a bag's look: ``{"scanner_<look>": bool}`` for each look of
    ``scanner`` (``convert`` turns each into a subset for ``evaluate --subset``); none for the
    default look alone, so that output stays what it was before looks existed."""
    if parse_looks(scanner) == (DEFAULT_LOOK,):
        return {}
    return {FLAG_PREFIX + name: name == look for name in parse_looks(scanner)}


def render_look(
    thickness: Mapping[str, np.ndarray], rng: np.random.Generator, look: str, *, blur_sigma: float
) -> np.ndarray:
    """Thickness maps -> the RGB uint8 scan of ``look`` (grey: three equal channels).

    ``blur_sigma`` is the default look's PSF sigma for this bag's size; other looks scale it
    by their ``blur / 0.6``. The default look is exactly :func:`~xray_seg.synthesis.xray_physics.render_xray`.
    """
    spec = LOOKS[look]
    if look == DEFAULT_LOOK:
        return physics.render_xray(thickness, rng, blur_sigma=blur_sigma)
    t_low, t_high = physics.dual_energy(thickness)
    if not spec.dual:  # one beam: the geometric mean of the two transmissions
        t_low = t_high = np.sqrt(t_low * t_high)
    stripes = _line_gains(rng, t_low.shape, spec)
    sigma = blur_sigma * spec.blur / 0.6
    t_low, t_high = (_blurred(t, sigma) * stripes for t in (t_low, t_high))
    t_low, t_high = physics.detector(t_low, t_high, rng, blur_sigma=0.0, photons=spec.photons)
    if spec.dual:
        anchors, lut, shrink = _RAMPS[spec.ramp]
        return physics.pseudo_colour(t_low, t_high, gain=spec.gain, anchors=anchors, lut=lut, shrink=shrink)
    grey = (np.power(t_high, spec.gain) * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _blurred(t: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(t, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE) if sigma > 0 else t


def _line_gains(rng: np.random.Generator, shape: tuple[int, int], spec: ScannerLook) -> np.ndarray:
    """``[H, W]`` gain of the line artefacts: one per detector row times one per scan line."""
    rows = 1.0 + spec.row_sd * rng.standard_normal((shape[0], 1), dtype=np.float32)
    columns = 1.0 + spec.column_sd * rng.standard_normal((1, shape[1]), dtype=np.float32)
    return (rows * columns).astype(np.float32)
