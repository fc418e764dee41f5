"""Geometry for the synthetic scans: primitive outlines, placements, and the thickness canvas.

Objects are described in their own *local* frame (x along the object's long axis, about
one unit long, y down as in images) as :class:`Part` s: a filled outline (possibly with
holes) or a stroked polyline, each of one material and thickness in mm. A
:class:`Placement` (scale in pixels per unit, rotation, mirror, centre) maps a part into
the image, and a :class:`Canvas` accumulates per-material thickness maps, which
:mod:`xray_seg.synthesis.xray_physics` turns into an X-ray image.

Rasterisation uses OpenCV with 4 bits of sub-pixel precision and works on each
object's bounding box only, so the cost grows with the objects' areas, not the canvas's.
Anti-aliased drawing gives partial-volume edges (a pixel half covered by a wire gets half
its thickness); the threat *footprint* (what the annotation must cover) is drawn
without anti-aliasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from xray_seg.synthesis.xray_physics import MATERIAL_NAMES

_SHIFT = 4
_ONE = 1 << _SHIFT


# ----------------------------------------------------------------------------- outlines
def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Axis-aligned rectangle outline."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 32, a0: float = 0.0, a1: float = 2 * math.pi):
    """Ellipse outline (or an arc of it from angle ``a0`` to ``a1``, endpoints included)."""
    closed = abs(a1 - a0 - 2 * math.pi) < 1e-9
    t = np.linspace(a0, a1, n, endpoint=not closed)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float, n: int = 6) -> np.ndarray:
    """Rectangle with rounded corners of radius ``r``."""
    r = min(r, (x1 - x0) / 2, (y1 - y0) / 2)
    corners = [
        (x1 - r, y1 - r, 0.0),
        (x0 + r, y1 - r, 0.5 * math.pi),
        (x0 + r, y0 + r, math.pi),
        (x1 - r, y0 + r, 1.5 * math.pi),
    ]
    pts = [ellipse(cx, cy, r, r, n, a, a + 0.5 * math.pi) for cx, cy, a in corners]
    return np.concatenate(pts, axis=0)


def slotted_disc(
    cx: float, cy: float, radius: float, half_width: float, bottom: float, angle: float = 0.0, n: int = 28
):
    """A disc with a straight slot cut from its rim (a wrench jaw).

    The slot has half-width ``half_width``, opens towards ``angle`` and ends ``bottom``
    from the centre along the slot axis (negative: beyond the centre).
    """
    alpha = math.asin(min(half_width / radius, 0.99))
    arc = ellipse(0.0, 0.0, radius, radius, n, alpha, 2 * math.pi - alpha)
    pts = np.concatenate([arc, [[bottom, -half_width], [bottom, half_width]]], axis=0)
    return rotate(pts, angle) + np.array([cx, cy])


def blob(rng: np.random.Generator, rx: float, ry: float, n: int = 40, roughness: float = 0.18) -> np.ndarray:
    """A smooth random closed outline about the origin (radius modulated by low harmonics)."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 6):
        r += rng.normal(0, roughness / k) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
    r = np.clip(r, 0.45, 1.6)
    return np.stack([rx * r * np.cos(t), ry * r * np.sin(t)], axis=1)


def rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate points about the origin by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.asarray(points, dtype=np.float64) @ np.array([[c, s], [-s, c]])


def smooth_path(rng: np.random.Generator, start, heading: float, steps: int, step: float, box, curl: float = 0.25):
    """A random smooth path (a cable): a walk whose turning rate itself wanders.

    The path turns back when it would leave ``box`` = (x0, y0, x1, y1).
    """
    x0, y0, x1, y1 = box
    pts = np.empty((steps + 1, 2))
    pts[0] = start
    turn = 0.0
    noise = rng.normal(0, curl, steps)
    for i in range(steps):
        turn = 0.85 * turn + noise[i]
        heading += turn * 0.35
        nx = pts[i, 0] + step * math.cos(heading)
        ny = pts[i, 1] + step * math.sin(heading)
        if not (x0 <= nx <= x1 and y0 <= ny <= y1):
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            heading = math.atan2(cy - pts[i, 1], cx - pts[i, 0]) + rng.normal(0, 0.5)
            nx = pts[i, 0] + step * math.cos(heading)
            ny = pts[i, 1] + step * math.sin(heading)
        pts[i + 1] = (nx, ny)
    return pts


# ----------------------------------------------------------------------------- parts
@dataclass
class Part:
    """One piece of an object in its local frame.

    Args:
        rings: outline(s): for a filled part the outer ring then holes; for a stroke one
            polyline.
        material: a key of :data:`xray_seg.synthesis.xray_physics.MATERIALS`.
        thickness: X-ray path length through the material, mm (negative: a recess in a
            part drawn before it; recesses do not count towards a footprint).
        width: stroke width in local units; ``None`` for a filled part.
        closed: whether a stroke is a closed loop.
        profile: ``None`` (flat), ``("round", r)`` (thickness rises over ``r`` local
            units from the edge, like a cylinder or a pile of cloth), or
            ``("shell", r, f)`` (a hollow tube of radius ``r`` whose wall is a fraction
            ``f`` of ``r``; ``thickness`` mm is the path through its middle, and it is
            darkest along its edges).
    """

    rings: list
    material: str
    thickness: float
    width: float | None = None
    closed: bool = False
    profile: tuple | None = None


@dataclass(frozen=True)
class Placement:
    """Local frame -> image: ``p_img = R(angle) @ (p * (1, +-1)) * scale + centre``."""

    scale: float
    angle: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    mirror: bool = False

    def apply(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64)
        if self.mirror:
            pts = pts * np.array([1.0, -1.0])
        return rotate(pts, self.angle) * self.scale + np.array([self.cx, self.cy])


def parts_bounds(parts: list[Part], placement: Placement) -> tuple[float, float, float, float]:
    """Image-space bounding box (x0, y0, x1, y1) of placed parts, stroke widths included."""
    lo = np.array([np.inf, np.inf])
    hi = -lo
    for part in parts:
        pad = 0.5 * (part.width or 0.0) * placement.scale
        for ring in part.rings:
            p = placement.apply(ring)
            lo = np.minimum(lo, p.min(axis=0) - pad)
            hi = np.maximum(hi, p.max(axis=0) + pad)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


# ----------------------------------------------------------------------------- canvas
@dataclass
class Canvas:
    """Per-material thickness maps (mm) of a ``size`` x ``size`` scan."""

    size: int
    maps: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.maps:
            self.maps = {m: np.zeros((self.size, self.size), np.float32) for m in MATERIAL_NAMES}

    def _window(self, rings_px: list[np.ndarray], pad: float):
        allp = np.concatenate(rings_px, axis=0)
        x0 = max(int(math.floor(allp[:, 0].min() - pad)) - 1, 0)
        y0 = max(int(math.floor(allp[:, 1].min() - pad)) - 1, 0)
        x1 = min(int(math.ceil(allp[:, 0].max() + pad)) + 2, self.size)
        y1 = min(int(math.ceil(allp[:, 1].max() + pad)) + 2, self.size)
        return x0, y0, x1, y1

    def coverage(self, part: Part, placement: Placement, *, antialias: bool = True):
        """Rasterise one part: ``(window, coverage in 0..1 float32)`` or ``None`` if off-canvas."""
        rings_px = [placement.apply(r) for r in part.rings]
        width_px = (part.width or 0.0) * placement.scale
        x0, y0, x1, y1 = self._window(rings_px, width_px / 2 + 1)
        if x1 <= x0 or y1 <= y0:
            return None
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = [np.round((r - (x0, y0)) * _ONE).astype(np.int32) for r in rings_px]
        line = cv2.LINE_AA if antialias else cv2.LINE_8
        scale = 1.0
        if part.width is None:
            cv2.fillPoly(mask, pts, 255, line, _SHIFT)
        else:
            stroke = max(int(round(width_px)), 1)
            scale = min(width_px / stroke, 1.0) if antialias else 1.0
            cv2.polylines(mask, pts, part.closed, 255, stroke, line, _SHIFT)
        cov = mask.astype(np.float32) * (scale / 255.0)
        return (x0, y0, x1, y1), cov

    def draw(self, part: Part, placement: Placement) -> None:
        """Add one part's thickness to its material map."""
        got = self.coverage(part, placement)
        if got is None:
            return
        (x0, y0, x1, y1), cov = got
        thick = cov * np.float32(part.thickness)
        if part.profile is not None:
            dist = cv2.distanceTransform((cov > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
            radius = max(part.profile[1] * placement.scale, 1.0)
            off_axis = radius - np.minimum(dist, radius)  # 0 on the axis, radius at the edge
            outer = np.sqrt(np.maximum(radius**2 - off_axis**2, 0.0))
            if part.profile[0] == "round":  # solid cylinder: chord / diameter
                thick *= np.maximum(outer / radius, 0.2)
            else:  # hollow tube: chord through the wall, in units of one wall
                wall = max(part.profile[2], 0.02) * radius
                inner = np.sqrt(np.maximum((radius - wall) ** 2 - off_axis**2, 0.0))
                thick *= np.minimum((outer - inner) / wall, 8.0)
        self.maps[part.material][y0:y1, x0:x1] += thick

    def draw_all(self, parts: list[Part], placement: Placement) -> None:
        for part in parts:
            self.draw(part, placement)

    def footprint(self, parts: list[Part], placement: Placement) -> np.ndarray:
        """The union of the parts (recesses excluded) as a full-size uint8 0/1 mask."""
        mask = np.zeros((self.size, self.size), np.uint8)
        for part in parts:
            if part.thickness <= 0:
                continue
            got = self.coverage(part, placement, antialias=False)
            if got is None:
                continue
            (x0, y0, x1, y1), cov = got
            mask[y0:y1, x0:x1] |= (cov > 0).astype(np.uint8)
        return mask
