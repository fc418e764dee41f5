"""Procedural prohibited items: the five classes of paper 1 (gun, knife, wrench, pliers, scissors).

Each builder takes a random generator and returns :class:`~xray_seg.synthesis.canvas.Part` s
in a local frame about one unit long along x (centred on the origin, y down), so the
placement's scale is the item's length in pixels. Variants:

* **gun**: semi-automatic pistol (slide, frame, trigger guard, polymer or steel grip
  with a steel magazine) or revolver (barrel, thick cylinder with chambers, wooden grip
  on a steel frame).
* **knife**: kitchen knife, double-edged dagger with a cross guard, or folding /
  utility knife; steel handle or plastic handle over a steel tang with rivets.
* **wrench**: combination spanner (open jaw + closed ring, or two jaws) with a
  recessed shank, or adjustable wrench (slotted head, worm, hanging hole).
* **pliers**: combination or long-nose pliers, closed or slightly open, bare steel or
  with plastic-sleeved handles.
* **scissors**: two blades crossing at a pivot screw, closed or open, with steel or
  plastic finger rings.

Threat steel is 2.5-10 mm of path length, so threats render mid to dark blue or black,
and their silhouettes differ clearly from the clutter's.
The annotation is traced from the union of an item's parts (its footprint), so finger
rings, wrench rings and trigger guards come out as holes joined to the outline by a
zero-width bridge (see :func:`~xray_seg.conversion.labelme_writer.mask_to_polygons`).
"""

from __future__ import annotations

import math

import numpy as np

from xray_seg.synthesis.canvas import Part, ellipse, rect, rotate, rounded_rect, slotted_disc

CLASS_NAMES = ("gun", "knife", "wrench", "pliers", "scissors")

#: Length/height of each class's bounding box in its local frame (used for placement).
ASPECT = {"gun": 1.6, "knife": 5.0, "wrench": 4.0, "pliers": 3.5, "scissors": 2.8}


def _pistol(rng: np.random.Generator) -> list[Part]:
    slide_top = -0.24
    slide_bottom = slide_top + rng.uniform(0.12, 0.16)
    frame_bottom = slide_bottom + rng.uniform(0.06, 0.08)
    rake = rng.uniform(0.03, 0.12)
    grip_bottom = rng.uniform(0.30, 0.40)
    grip = np.array(
        [
            [-0.49, slide_bottom - 0.01],
            [-0.21, slide_bottom - 0.01],
            [-0.24 - rake, grip_bottom],
            [-0.47 - rake, grip_bottom - 0.02],
        ]
    )
    mag = np.array(
        [
            [-0.42, frame_bottom],
            [-0.27, frame_bottom],
            [-0.30 - rake, grip_bottom - 0.02],
            [-0.43 - rake, grip_bottom - 0.03],
        ]
    )
    y = frame_bottom
    guard = np.array(
        [[-0.22, y], [-0.215, y + 0.10], [-0.13, y + 0.145], [0.0, y + 0.13], [0.05, y + 0.06], [0.06, y - 0.01]]
    )
    parts = [
        Part([rounded_rect(-0.5, slide_top, 0.5, slide_bottom, 0.015)], "steel", rng.uniform(6.0, 9.0)),
        Part([rect(0.05, slide_top + 0.02, 0.3, slide_top + 0.06)], "steel", -2.0),  # ejection port
        Part([rect(-0.30, slide_bottom - 0.01, rng.uniform(0.3, 0.42), frame_bottom)], "steel", 5.0),
        Part([guard], "steel", 3.5, width=0.03),
        Part([np.array([[-0.09, y], [-0.08, y + 0.06], [-0.11, y + 0.09]])], "steel", 3.0, width=0.028),
    ]
    if rng.random() < 0.5:  # polymer frame: plastic grip around a steel magazine
        parts += [Part([grip], "plastic", rng.uniform(22, 30)), Part([mag], "steel", 2.5)]
    else:
        parts += [Part([grip], "steel", rng.uniform(4.0, 6.0))]
    return parts


def _revolver(rng: np.random.Generator) -> list[Part]:
    barrel_end = rng.uniform(0.35, 0.5)
    shift = (0.5 - barrel_end) / 2  # keep the whole item centred
    grip = np.array(
        [[-0.36, -0.04], [-0.20, -0.02], [-0.23, 0.18], [-0.31, 0.30], [-0.43, 0.29], [-0.42, 0.10], [-0.40, -0.02]]
    )
    guard = np.array([[-0.2, 0.0], [-0.19, 0.11], [-0.1, 0.15], [0.0, 0.12], [0.04, 0.02]])
    cyl = Part([rounded_rect(-0.17, -0.24, 0.06, -0.01, 0.03)], "steel", rng.uniform(9.0, 12.0))
    chambers = [Part([rect(-0.15, yy, 0.04, yy + 0.025)], "steel", -3.0) for yy in (-0.2, -0.14, -0.08)]
    parts = [
        Part([rect(0.0, -0.20, barrel_end, -0.12)], "steel", rng.uniform(6.0, 8.0)),
        Part([rect(barrel_end - 0.04, -0.235, barrel_end - 0.01, -0.20)], "steel", 4.0),  # front sight
        Part([rect(-0.35, -0.23, 0.06, -0.17)], "steel", 5.0),  # top strap
        Part([rect(-0.36, -0.2, -0.15, 0.0)], "steel", 4.0),  # frame behind the cylinder
        Part([rect(-0.33, -0.06, 0.06, 0.01)], "steel", 5.0),  # lower frame
        cyl,
        *chambers,
        Part([np.array([[-0.33, -0.2], [-0.44, -0.29], [-0.40, -0.31], [-0.28, -0.22]])], "steel", 5.0),  # hammer
        Part([grip], "organic", rng.uniform(25, 35)),
        Part([np.array([[-0.30, -0.06], [-0.34, 0.15], [-0.38, 0.28]])], "steel", 3.0, width=0.05),
        Part([guard], "steel", 3.5, width=0.03),
        Part([np.array([[-0.1, 0.0], [-0.09, 0.06], [-0.12, 0.09]])], "steel", 3.0, width=0.028),
    ]
    for p in parts:
        for ring in p.rings:
            ring[:, 0] += shift
    return parts


def gun(rng: np.random.Generator) -> list[Part]:
    """A handgun seen from the side, barrel along +x."""
    return _pistol(rng) if rng.random() < 0.6 else _revolver(rng)


def knife(rng: np.random.Generator) -> list[Part]:
    """A knife, blade along +x: kitchen, dagger or folding/utility."""
    kind = rng.choice(["kitchen", "dagger", "folding"], p=[0.45, 0.3, 0.25])
    hilt = {"kitchen": -0.10, "dagger": -0.12, "folding": 0.02}[kind] + rng.uniform(-0.04, 0.04)
    handle_h = rng.uniform(0.05, 0.07)
    xs = np.linspace(hilt, 0.5, 14)
    u = (xs - hilt) / (0.5 - hilt)
    power = rng.uniform(2.0, 4.0)
    if kind == "dagger":
        half = rng.uniform(0.06, 0.09) * (1 - u**power) + 0.004
        blade = np.concatenate([np.stack([xs, -half], 1), np.stack([xs, half], 1)[::-1]])
    else:
        height = rng.uniform(0.11, 0.18) if kind == "kitchen" else rng.uniform(0.09, 0.13)
        spine = -handle_h + rng.uniform(0.0, 0.03) * np.clip((u - 0.6) / 0.4, 0, 1) ** 2
        edge = spine + height * (1 - u**power)
        edge[-1] = spine[-1] + 0.004
        blade = np.concatenate([np.stack([xs, spine], 1), np.stack([xs, edge], 1)[::-1]])
    parts = [Part([blade], "steel", rng.uniform(2.5, 4.0))]
    handle = rounded_rect(-0.5, -handle_h, hilt + 0.01, handle_h, handle_h * 0.8)
    if rng.random() < 0.4:
        parts.append(Part([handle], "steel", rng.uniform(4.0, 6.0)))
    else:
        parts.append(Part([handle], "plastic", rng.uniform(14, 22), profile=("round", handle_h)))
        parts.append(Part([rect(-0.47, -handle_h * 0.35, hilt + 0.01, handle_h * 0.35)], "steel", 2.5))
        for rx in np.linspace(-0.42, hilt - 0.06, 3):
            parts.append(Part([ellipse(rx, 0.0, handle_h * 0.3, handle_h * 0.3, 10)], "steel", 3.0))
    if kind == "dagger" or rng.random() < 0.3:
        g = rng.uniform(0.08, 0.12)
        parts.append(Part([rect(hilt - 0.02, -g, hilt + 0.015, g)], "steel", 5.0))
    return parts


def _spanner(rng: np.random.Generator) -> list[Part]:
    half = rng.uniform(0.04, 0.055)
    head_r = rng.uniform(0.095, 0.12)
    shank = np.array([[-0.36, -half * 0.85], [0.35, -half], [0.35, half], [-0.36, half * 0.85]])
    parts = [
        Part([shank], "steel", 4.0),
        Part([rect(-0.28, -half * 0.4, 0.26, half * 0.4)], "steel", -1.5),  # recessed web
        Part([slotted_disc(0.40, 0.0, head_r, head_r * 0.55, -head_r * 0.3, math.radians(15))], "steel", 6.0),
    ]
    if rng.random() < 0.75:  # closed ring end
        ring_r = head_r * 0.9
        hole = ellipse(-0.41, 0.0, ring_r * 0.58, ring_r * 0.58, 12)
        parts.append(Part([ellipse(-0.41, 0.0, ring_r, ring_r, 32), hole], "steel", 6.0))
    else:
        parts.append(
            Part(
                [slotted_disc(-0.41, 0.0, head_r * 0.85, head_r * 0.47, -head_r * 0.25, math.radians(195))],
                "steel",
                6.0,
            )
        )
    return parts


def _adjustable(rng: np.random.Generator) -> list[Part]:
    half0, half1 = rng.uniform(0.038, 0.05), rng.uniform(0.055, 0.07)
    handle = np.array([[-0.5, -half0], [0.12, -half1], [0.12, half1], [-0.5, half0]])
    handle = np.concatenate([handle[:3], ellipse(-0.5, 0.0, half0, half0, 9, 0.5 * math.pi, 1.5 * math.pi)])
    hole = ellipse(-0.46, 0.0, half0 * 0.45, half0 * 0.45, 10)
    jaw = rng.uniform(0.035, 0.06)
    return [
        Part([handle, hole], "steel", 5.0),
        Part([slotted_disc(0.30, 0.0, 0.17, jaw, 0.0, math.radians(rng.uniform(-20, 20)))], "steel", 7.0),
        Part([ellipse(0.24, 0.09, 0.04, 0.03, 16)], "steel", 6.0),  # worm
    ]


def wrench(rng: np.random.Generator) -> list[Part]:
    """A spanner or an adjustable wrench, handle along x."""
    return _spanner(rng) if rng.random() < 0.6 else _adjustable(rng)


def pliers(rng: np.random.Generator) -> list[Part]:
    """Combination or long-nose pliers, pivot near the origin, jaws towards +x."""
    long_nose = rng.random() < 0.4
    jaw_len = rng.uniform(0.38, 0.48) if long_nose else rng.uniform(0.24, 0.32)
    jaw_h = rng.uniform(0.045, 0.06) if long_nose else rng.uniform(0.06, 0.08)
    open_angle = math.radians(rng.uniform(0, 12)) if rng.random() < 0.5 else 0.0
    spread = rng.uniform(0.07, 0.13)
    sleeves = rng.random() < 0.55
    handle_len = 1.0 - jaw_len - 0.05
    parts = []
    for side in (-1.0, 1.0):
        jaw = np.array(
            [
                [-0.06, 0.0],
                [-0.06, side * jaw_h],
                [jaw_len * 0.35, side * jaw_h * 0.85],
                [jaw_len, side * 0.012],
                [jaw_len, 0.0],
            ]
        )
        handle = np.array(
            [
                [0.0, side * 0.02],
                [-handle_len * 0.35, side * (0.045 + spread * 0.3)],
                [-handle_len * 0.75, side * (0.06 + spread * 0.8)],
                [-handle_len, side * (0.06 + spread)],
            ]
        )
        turn = side * open_angle / 2
        jaw, handle = rotate(jaw, -turn), rotate(handle, turn)
        parts.append(Part([jaw], "steel", 6.0))
        parts.append(Part([handle], "steel", 4.5, width=0.055))
        if sleeves:
            parts.append(Part([handle[1:]], "plastic", rng.uniform(8, 12), width=0.085))
    parts.append(Part([ellipse(0.0, 0.0, 0.07, 0.07, 20)], "steel", 8.0))
    shift = (handle_len - jaw_len) / 2
    for p in parts:
        for ring in p.rings:
            ring[:, 0] += shift
    return parts


def scissors(rng: np.random.Generator) -> list[Part]:
    """Scissors: blades towards +x crossing at a pivot, finger rings towards -x."""
    blade_len = rng.uniform(0.5, 0.6)
    open_angle = math.radians(rng.uniform(0, 22)) if rng.random() < 0.6 else math.radians(rng.uniform(0, 3))
    plastic = rng.random() < 0.45
    ring_x = -(1.0 - blade_len) + 0.12
    parts = []
    for side in (-1.0, 1.0):
        w = rng.uniform(0.035, 0.05)
        blade = np.array(
            [
                [-0.06, -side * 0.005],
                [0.0, side * w],
                [blade_len * 0.4, side * w * 0.85],
                [blade_len, side * 0.004],
                [blade_len * 0.5, -side * 0.004],
            ]
        )
        rx, ry = rng.uniform(0.10, 0.13), rng.uniform(0.065, 0.085)
        cy = -side * (ry + 0.01)
        outer = ellipse(ring_x, cy, rx, ry, 28)
        inner = ellipse(ring_x, cy, rx * 0.62, ry * 0.5, 20)
        shank = np.array([[0.0, 0.0], [ring_x * 0.5, cy * 0.5], [ring_x + rx * 0.8, cy]])
        turn = side * open_angle / 2
        blade, outer, inner, shank = (rotate(a, turn) for a in (blade, outer, inner, shank))
        parts.append(Part([blade], "steel", rng.uniform(2.5, 3.5)))
        if plastic:
            parts.append(Part([outer, inner], "plastic", rng.uniform(8, 12)))
            parts.append(Part([shank], "plastic", 10.0, width=0.05))
            parts.append(Part([shank], "steel", 2.5, width=0.025))
        else:
            parts.append(Part([outer, inner], "steel", 3.5))
            parts.append(Part([shank], "steel", 3.5, width=0.05))
    parts.append(Part([ellipse(0.0, 0.0, 0.03, 0.03, 12)], "steel", 4.0))
    shift = (1.0 - 2 * blade_len) / 2 + 0.06
    for p in parts:
        for ring in p.rings:
            ring[:, 0] += shift
    return parts


BUILDERS = {"gun": gun, "knife": knife, "wrench": wrench, "pliers": pliers, "scissors": scissors}
