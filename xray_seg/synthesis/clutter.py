"""Procedural bag contents that are *not* threats: the clutter of a real baggage scan.

Each item function draws onto a :class:`~xray_seg.synthesis.canvas.Canvas` inside the
bag's box ``(x0, y0, x1, y1)`` (pixels); ``at`` puts the item's centre at a given point
(used to hide a threat under a laptop or a coil of cable). Sizes are fractions of the
image side, so a scan looks the same at any ``--size``; thicknesses are in mm.

What is drawn, after PIDray's sample figures:

* the bag: a thin fabric shell (pale beige), a thicker rim, zips with steel teeth and
  pullers, carry handles with rivets, and on trolley cases two aluminium tubes and wheels;
* organics: folded clothes (piles of cloth, some with zips, rivets and buttons), shoes,
  books, toiletries, bottles of liquid (plastic, glass) and cans;
* electronics: laptops and tablets (aluminium case, battery cells, circuit board with
  copper, screws), phones, power banks and chargers, cables and coiled cables, earphones;
* metal distractors, some threat-like: keys, coins, clothes hangers, pens, umbrellas,
  screwdrivers, cutlery, belt buckles, glasses, AA batteries.
"""

from __future__ import annotations

import math

import numpy as np

from xray_seg.synthesis.canvas import Canvas, Part, Placement, blob, ellipse, rect, rotate, rounded_rect, smooth_path

IDENTITY = Placement(1.0)


def _place(rng, box, length, at=None, angle=None) -> Placement:
    x0, y0, x1, y1 = box
    if at is None:
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    else:
        cx, cy = at
    return Placement(
        float(length),
        float(rng.uniform(0, 2 * math.pi) if angle is None else angle),
        float(cx),
        float(cy),
        bool(rng.random() < 0.5),
    )


# ----------------------------------------------------------------------------- the bag
def bag(canvas: Canvas, rng: np.random.Generator):
    """Draw the bag; return the box its contents are placed in."""
    s = canvas.size
    w, h = s * rng.uniform(0.78, 0.97), s * rng.uniform(0.62, 0.92)
    cx, cy = s / 2 + rng.uniform(-0.03, 0.03) * s, s / 2 + rng.uniform(-0.03, 0.03) * s
    angle = rng.uniform(-0.12, 0.12)
    soft = rng.random() < 0.4
    if soft:
        outline = blob(rng, w / 2, h / 2, 48, roughness=0.05)
    else:
        outline = rounded_rect(-w / 2, -h / 2, w / 2, h / 2, 0.08 * s, 8)
    pl = Placement(1.0, angle, cx, cy)
    canvas.draw(Part([outline], "organic", rng.uniform(0.8, 2.0)), pl)
    canvas.draw(Part([outline], "organic", rng.uniform(3, 6), width=0.01 * s, closed=True), pl)
    inner = outline * 0.93
    canvas.draw(Part([inner], "plastic", rng.uniform(1.0, 2.5), width=0.006 * s, closed=True), pl)
    zip_path = rounded_rect(-w / 2 * 0.9, -h / 2 * 0.9, w / 2 * 0.9, h / 2 * 0.9, 0.06 * s, 6)
    if soft:
        zip_path = outline * 0.9
    n = len(zip_path)
    start = int(rng.integers(n))
    seg = np.roll(zip_path, -start, axis=0)[: int(n * rng.uniform(0.4, 0.8))]
    zipper(canvas, rng, pl.apply(seg))
    if rng.random() < 0.7:  # carry handle on top
        hx = rng.uniform(0.15, 0.25) * w
        handle = ellipse(0.0, -h / 2, hx, 0.12 * h, 16, math.pi, 2 * math.pi)
        canvas.draw(Part([handle], "plastic", rng.uniform(8, 14), width=0.02 * s), pl)
        for px in (-hx, hx):
            canvas.draw(Part([ellipse(px, -h / 2, 0.008 * s, 0.008 * s, 8)], "steel", 3.0), pl)
    if not soft and rng.random() < 0.5:  # trolley: two aluminium tubes and wheels
        side = rng.choice([-1.0, 1.0])
        tube_w = 0.03 * s
        for ty in (-0.3 * h, 0.3 * h):
            tube = rect(-w / 2 * 0.95, ty - tube_w / 2, w / 2 * 0.95, ty + tube_w / 2)
            tube = tube * np.array([1.0, 1.0])
            canvas.draw(
                Part([tube], "aluminium", 3.0, profile=("shell", tube_w / 2, 0.2)),
                Placement(1.0, angle + (0 if side > 0 else math.pi), cx, cy),
            )
        for wx in (-w / 2 * 0.85, w / 2 * 0.85):
            wy = side * h / 2 * 0.92
            canvas.draw(
                Part([ellipse(wx, wy, 0.045 * s, 0.045 * s, 24)], "plastic", 30.0, profile=("round", 0.045 * s)), pl
            )
            canvas.draw(Part([ellipse(wx, wy, 0.01 * s, 0.01 * s, 10)], "steel", 8.0), pl)
    lo = pl.apply(np.array([[-w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2], [w / 2, -h / 2]]))
    x0, y0 = lo.min(0)
    x1, y1 = lo.max(0)
    m = 0.08 * s
    return (max(x0 + m, 0), max(y0 + m, 0), min(x1 - m, s - 1), min(y1 - m, s - 1))


def zipper(canvas: Canvas, rng: np.random.Generator, path_px: np.ndarray) -> None:
    """A zip along an image-space path: a steel tooth chain (dashed look) and a puller."""
    s = canvas.size
    canvas.draw(Part([path_px], "plastic", 3.0, width=0.01 * s), IDENTITY)
    seg = np.diff(path_px, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0], np.cumsum(lengths)])
    if cum[-1] < 4:
        return
    step = max(0.006 * s, 1.5)
    t = np.arange(0, cum[-1], step)
    pts = np.stack([np.interp(t, cum, path_px[:, 0]), np.interp(t, cum, path_px[:, 1])], 1)
    tangent = np.gradient(pts, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1) / (np.hypot(*tangent.T)[:, None] + 1e-9)
    half = 0.006 * s
    teeth = [np.stack([p - n * half, p + n * half]) for p, n in zip(pts[::2], normal[::2])]
    canvas.draw(Part(teeth, "steel", 0.8, width=max(0.004 * s, 1.0)), IDENTITY)
    k = int(rng.integers(len(pts)))
    d = pts[min(k + 1, len(pts) - 1)] - pts[max(k - 1, 0)]
    ang = math.atan2(d[1], d[0]) + math.pi / 2
    pl = Placement(0.035 * s, ang, *pts[k])
    canvas.draw(Part([rounded_rect(-0.3, -0.25, 0.3, 0.25, 0.1)], "steel", 3.0), pl)
    canvas.draw(Part([rounded_rect(0.2, -0.15, 1.1, 0.15, 0.12), ellipse(0.85, 0, 0.1, 0.07, 8)], "steel", 2.0), pl)


# ----------------------------------------------------------------------------- soft goods
def clothes(canvas, rng, box, at=None):
    """A folded garment: a pile of cloth (rounded profile), with folds and fittings."""
    s = canvas.size
    r = s * rng.uniform(0.1, 0.24)
    pl = _place(rng, box, r, at)
    aspect = rng.uniform(0.5, 0.9)
    for layer in range(int(rng.integers(1, 4))):  # layers of folded cloth
        outline = blob(rng, 1.0 - 0.2 * layer, aspect - 0.1 * layer, 40, roughness=0.25) + rng.normal(0, 0.1, 2)
        canvas.draw(Part([outline], "organic", rng.uniform(3, 12), profile=("round", 0.25)), pl)
    for _ in range(int(rng.integers(2, 6))):  # folds and seams
        fold = np.stack([np.linspace(-0.8, 0.8, 8), rng.normal(0, 0.12, 8).cumsum() * 0.3 + rng.uniform(-0.4, 0.4)], 1)
        canvas.draw(Part([fold], "organic", rng.uniform(2, 6), width=rng.uniform(0.02, 0.06)), pl)
    if rng.random() < 0.35:  # a zip
        path = pl.apply(np.stack([np.linspace(-0.6, 0.6, 10), rng.normal(0, 0.03, 10) + rng.uniform(-0.3, 0.3)], 1))
        zipper(canvas, rng, path)
    if rng.random() < 0.4:  # jeans rivets / buttons
        for _ in range(int(rng.integers(2, 7))):
            p = rng.uniform(-0.6, 0.6, 2) * (1, 0.5)
            mat = "steel" if rng.random() < 0.6 else "plastic"
            canvas.draw(Part([ellipse(p[0], p[1], 0.03, 0.03, 10)], mat, 2.0 if mat == "steel" else 4.0), pl)


def shoe(canvas, rng, box, at=None):
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.2, 0.3), at)
    sole = np.array(
        [
            [-0.5, 0.0],
            [-0.45, -0.12],
            [-0.1, -0.16],
            [0.3, -0.14],
            [0.5, -0.05],
            [0.45, 0.1],
            [0.0, 0.14],
            [-0.45, 0.12],
        ]
    )
    canvas.draw(Part([sole], "organic", rng.uniform(25, 45), profile=("round", 0.1)), pl)
    canvas.draw(Part([sole * 0.9], "plastic", 10.0, width=0.03, closed=True), pl)
    if rng.random() < 0.5:
        canvas.draw(Part([rect(-0.35, -0.015, 0.05, 0.015)], "steel", 1.5), pl)  # shank
    for x in np.linspace(-0.05, 0.3, 5):
        for y in (-0.07, 0.07):
            canvas.draw(Part([ellipse(x, y, 0.012, 0.012, 8)], "steel", 1.0), pl)


def book(canvas, rng, box, at=None):
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.15, 0.3), at)
    a = rng.uniform(0.55, 0.8)
    canvas.draw(Part([rect(-0.5, -a / 2, 0.5, a / 2)], "organic", rng.uniform(15, 35)), pl)
    if rng.random() < 0.4:  # spiral binding
        xs = np.linspace(-0.45, 0.45, 14)
        for x in xs:
            canvas.draw(Part([ellipse(x, -a / 2, 0.015, 0.03, 8)], "steel", 0.8, width=0.01, closed=True), pl)


def bottle(canvas, rng, box, at=None):
    """A bottle of liquid: plastic, glass or an aluminium can/spray."""
    s = canvas.size
    kind = rng.choice(["plastic", "glass", "can"], p=[0.5, 0.3, 0.2])
    pl = _place(rng, box, s * rng.uniform(0.14, 0.34) * (0.7 if kind == "can" else 1.0), at)
    r = rng.uniform(0.13, 0.2) if kind != "can" else rng.uniform(0.18, 0.25)
    body = rounded_rect(-0.5, -r, 0.3 if kind != "can" else 0.5, r, r * 0.4)
    fill = rng.uniform(0.4, 1.0)
    liquid = rounded_rect(-0.5, -r, -0.5 + 0.8 * fill, r, r * 0.4)
    canvas.draw(Part([liquid], "organic", rng.uniform(35, 70), profile=("round", r)), pl)
    if kind == "can":
        canvas.draw(Part([body], "aluminium", 1.0, profile=("shell", r, 0.08)), pl)
        canvas.draw(Part([rect(0.46, -0.05, 0.55, 0.05)], "steel", 2.0), pl)
        return
    wall_mat, wall = ("plastic", 1.0) if kind == "plastic" else ("glass", 6.0)
    neck = rect(0.28, -r * 0.4, 0.45, r * 0.4)
    canvas.draw(Part([body], wall_mat, wall, profile=("shell", r, 0.1)), pl)
    canvas.draw(Part([neck], wall_mat, wall * 1.5), pl)
    canvas.draw(Part([rect(0.43, -r * 0.45, 0.5, r * 0.45)], "plastic", 10.0), pl)


def toiletries(canvas, rng, box, at=None):
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.1, 0.16), at)
    canvas.draw(Part([rounded_rect(-0.5, -0.25, 0.5, 0.25, 0.1)], "plastic", 4.0, width=0.02, closed=True), pl)
    canvas.draw(Part([rounded_rect(-0.5, -0.25, 0.5, 0.25, 0.1)], "organic", 2.0), pl)
    for _ in range(int(rng.integers(2, 5))):
        p = rng.uniform([-0.35, -0.15], [0.35, 0.15])
        rr = rng.uniform(0.05, 0.1)
        canvas.draw(
            Part([ellipse(p[0], p[1], rr * 1.6, rr, 16)], "organic", rng.uniform(15, 30), profile=("round", rr)), pl
        )
    if rng.random() < 0.6:  # razor with a steel blade strip
        canvas.draw(Part([rect(-0.4, 0.1, 0.1, 0.14)], "plastic", 12.0), pl)
        canvas.draw(Part([rect(0.1, 0.06, 0.14, 0.2)], "steel", 1.0), pl)
    if rng.random() < 0.5:  # toothpaste tube (aluminium laminate)
        canvas.draw(Part([np.array([[-0.45, -0.2], [0.2, -0.22], [0.2, -0.1], [-0.45, -0.05]])], "aluminium", 2.0), pl)


# ----------------------------------------------------------------------------- electronics
def laptop(canvas, rng, box, at=None, small=False):
    """A laptop (or tablet when ``small``): case, battery cells, board, copper, screws."""
    s = canvas.size
    pl = _place(rng, box, s * (rng.uniform(0.22, 0.32) if small else rng.uniform(0.4, 0.6)), at)
    a = rng.uniform(0.6, 0.72)
    case = rounded_rect(-0.5, -a / 2, 0.5, a / 2, 0.03)
    canvas.draw(
        Part([case], "aluminium" if rng.random() < 0.6 else "plastic", rng.uniform(2.0, 3.5) if not small else 2.0), pl
    )
    canvas.draw(Part([case], "aluminium", 2.0, width=0.012, closed=True), pl)
    n_cells = int(rng.integers(3, 7))
    cell_w = 0.8 / n_cells
    y0 = a / 2 - (0.22 if not small else 0.3)
    for i in range(n_cells):
        x = -0.4 + i * cell_w
        canvas.draw(Part([rounded_rect(x + 0.005, y0, x + cell_w - 0.005, a / 2 - 0.04, 0.01)], "aluminium", 9.0), pl)
        canvas.draw(
            Part(
                [rounded_rect(x + 0.005, y0, x + cell_w - 0.005, a / 2 - 0.04, 0.01)],
                "steel",
                0.4,
                width=0.006,
                closed=True,
            ),
            pl,
        )
    board = rect(-0.42, -a / 2 + 0.05, rng.uniform(0.0, 0.42), y0 - 0.04)
    canvas.draw(Part([board], "glass", 2.0), pl)
    for _ in range(int(rng.integers(6, 16))):  # chips, copper planes, connectors
        p = rng.uniform([-0.4, -a / 2 + 0.06], [0.0, y0 - 0.08])
        wh = rng.uniform(0.02, 0.08, 2)
        canvas.draw(
            Part(
                [rect(p[0], p[1], p[0] + wh[0], p[1] + wh[1])],
                rng.choice(["copper", "steel", "plastic"], p=[0.3, 0.2, 0.5]),
                rng.uniform(0.2, 1.5),
            ),
            pl,
        )
    if not small:
        canvas.draw(
            Part(
                [ellipse(0.25, -a / 2 + 0.15, 0.08, 0.08, 20), ellipse(0.25, -a / 2 + 0.15, 0.03, 0.03, 10)],
                "aluminium",
                3.0,
            ),
            pl,
        )
        for hx in (-0.3, 0.3):  # hinges
            canvas.draw(Part([rect(hx - 0.06, -a / 2, hx + 0.06, -a / 2 + 0.03)], "steel", 3.0), pl)
    for sx, sy in [
        (-0.47, -a / 2 + 0.03),
        (0.47, -a / 2 + 0.03),
        (-0.47, a / 2 - 0.03),
        (0.47, a / 2 - 0.03),
        (0.0, a / 2 - 0.03),
        (0.0, -a / 2 + 0.03),
    ]:
        canvas.draw(Part([ellipse(sx, sy, 0.008, 0.008, 8)], "steel", 4.0), pl)


def phone(canvas, rng, box, at=None):
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.1, 0.15), at)
    canvas.draw(Part([rounded_rect(-0.5, -0.24, 0.5, 0.24, 0.07)], "glass", 3.0), pl)
    canvas.draw(Part([rounded_rect(-0.3, -0.2, 0.3, 0.2, 0.02)], "aluminium", 6.0), pl)
    canvas.draw(Part([rect(0.33, -0.18, 0.45, 0.12)], "copper", 0.5), pl)
    canvas.draw(Part([ellipse(0.38, 0.15, 0.04, 0.04, 10)], "steel", 2.0), pl)


def power_bank(canvas, rng, box, at=None):
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.1, 0.16), at)
    canvas.draw(Part([rounded_rect(-0.5, -0.22, 0.5, 0.22, 0.05)], "plastic", 6.0), pl)
    n = int(rng.integers(2, 4))
    for i in range(n):
        y = -0.18 + i * 0.36 / n
        canvas.draw(
            Part([rect(-0.42, y + 0.01, 0.35, y + 0.36 / n - 0.01)], "steel", 0.6, profile=("shell", 0.18 / n, 0.1)), pl
        )
        canvas.draw(
            Part([rect(-0.42, y + 0.01, 0.35, y + 0.36 / n - 0.01)], "aluminium", 10.0, profile=("round", 0.18 / n)), pl
        )
    canvas.draw(Part([rect(0.38, -0.15, 0.47, 0.15)], "copper", 0.6), pl)


def charger(canvas, rng, box, at=None):
    """A mains charger: a plastic block with a copper transformer, pins, and its cable."""
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.06, 0.1), at)
    canvas.draw(Part([rounded_rect(-0.5, -0.4, 0.5, 0.4, 0.1)], "plastic", 25.0, profile=("round", 0.2)), pl)
    canvas.draw(Part([rect(-0.2, -0.2, 0.15, 0.2)], "copper", 2.5), pl)
    canvas.draw(Part([rect(-0.2, -0.2, 0.15, 0.2)], "steel", 2.5, width=0.05, closed=True), pl)
    for py in (-0.2, 0.2):
        canvas.draw(Part([rect(0.5, py - 0.05, 0.85, py + 0.05)], "steel", 3.0), pl)
    start = pl.apply(np.array([[-0.5, 0.0]]))[0]
    cable(canvas, rng, box, start=start)


def cable(canvas, rng, box, at=None, start=None):
    """A cable: copper conductors in plastic insulation along a smooth random path."""
    s = canvas.size
    if start is None:
        start = np.array([rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])]) if at is None else np.asarray(at)
    steps = int(rng.integers(30, 120))
    path = smooth_path(rng, start, rng.uniform(0, 2 * math.pi), steps, 0.012 * s, box, curl=rng.uniform(0.15, 0.45))
    width = s * rng.uniform(0.006, 0.012)
    canvas.draw(Part([path], "plastic", rng.uniform(3, 6), width=width), IDENTITY)
    canvas.draw(Part([path], "copper", rng.uniform(0.15, 0.35), width=max(width * 0.5, 0.6)), IDENTITY)
    if rng.random() < 0.5:  # a plug at the far end
        d = path[-1] - path[-2]
        pl = Placement(0.03 * s, math.atan2(d[1], d[0]), *path[-1])
        canvas.draw(Part([rect(0.0, -0.3, 1.0, 0.3)], "plastic", 10.0), pl)
        canvas.draw(Part([rect(0.9, -0.18, 1.5, 0.18)], "steel", 1.5), pl)


def cable_coil(canvas, rng, box, at=None):
    """A coiled cable: several loose loops, as in PIDray's "hidden" cases."""
    s = canvas.size
    if at is None:
        at = (rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3]))
    loops = rng.uniform(2.5, 6)
    rx, ry = s * rng.uniform(0.08, 0.2), s * rng.uniform(0.06, 0.16)
    t = np.linspace(0, 2 * math.pi * loops, int(60 * loops))
    jitter = np.cumsum(rng.normal(0, 0.02, (len(t), 2)), axis=0) * s
    path = np.stack([rx * np.cos(t), ry * np.sin(t)], 1) + jitter * 0.3
    path = rotate(path, rng.uniform(0, math.pi)) + np.asarray(at)
    width = s * rng.uniform(0.006, 0.012)
    canvas.draw(Part([path], "plastic", rng.uniform(3, 6), width=width), IDENTITY)
    canvas.draw(Part([path], "copper", rng.uniform(0.15, 0.35), width=max(width * 0.5, 0.6)), IDENTITY)


def earphones(canvas, rng, box, at=None):
    s = canvas.size
    start = np.array([rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])]) if at is None else np.asarray(at)
    path = smooth_path(rng, start, rng.uniform(0, 2 * math.pi), int(rng.integers(40, 90)), 0.01 * s, box, curl=0.5)
    canvas.draw(Part([path], "plastic", 2.0, width=0.004 * s), IDENTITY)
    canvas.draw(Part([path], "copper", 0.12, width=0.003 * s), IDENTITY)
    for end in (path[-1], path[len(path) // 2]):
        canvas.draw(Part([ellipse(end[0], end[1], 0.015 * s, 0.015 * s, 12)], "plastic", 10.0), IDENTITY)
        canvas.draw(Part([ellipse(end[0], end[1], 0.006 * s, 0.006 * s, 8)], "steel", 2.0), IDENTITY)


# ----------------------------------------------------------------------------- metal distractors
def keys(canvas, rng, box, at=None):
    """A key ring with one to four keys (small, toothed, steel)."""
    s = canvas.size
    pl0 = _place(rng, box, s * rng.uniform(0.035, 0.06), at)
    canvas.draw(Part([ellipse(0, 0, 0.5, 0.5, 20)], "steel", 1.5, width=0.08, closed=True), pl0)
    for _ in range(int(rng.integers(1, 5))):
        ang = rng.uniform(0, 2 * math.pi)
        c = pl0.apply(np.array([[0.5 * math.cos(ang), 0.5 * math.sin(ang)]]))[0]
        pl = Placement(pl0.scale * rng.uniform(1.6, 2.4), pl0.angle + ang, *c)
        head = ellipse(0.25, 0.0, 0.22, 0.2, 16)
        shaft = np.array(
            [
                [0.45, -0.06],
                [1.3, -0.06],
                [1.35, 0.0],
                [1.3, 0.06],
                [1.2, 0.12],
                [1.1, 0.06],
                [1.0, 0.12],
                [0.9, 0.06],
                [0.8, 0.12],
                [0.7, 0.06],
                [0.45, 0.06],
            ]
        )
        canvas.draw(Part([head, ellipse(0.12, 0.0, 0.05, 0.05, 8)], "steel", 2.0), pl)
        canvas.draw(Part([shaft], "steel", 2.0), pl)


def coins(canvas, rng, box, at=None):
    s = canvas.size
    c = np.array([rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])]) if at is None else np.asarray(at)
    for _ in range(int(rng.integers(1, 7))):
        p = c + rng.normal(0, 0.025 * s, 2)
        r = s * rng.uniform(0.016, 0.026)
        canvas.draw(
            Part([ellipse(p[0], p[1], r, r, 20)], rng.choice(["steel", "copper"]), rng.uniform(1.5, 2.2)), IDENTITY
        )


def hanger(canvas, rng, box, at=None):
    """A wire clothes hanger: a long thin steel triangle with a hook."""
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.3, 0.45), at)
    wire = np.array([[0.0, -0.12], [-0.5, 0.2], [0.5, 0.2], [0.0, -0.12]])
    hook = np.concatenate(
        [np.array([[0.0, -0.12], [0.0, -0.22]]), ellipse(0.05, -0.24, 0.05, 0.05, 10, math.pi, 2 * math.pi)]
    )
    mat = "steel" if rng.random() < 0.6 else "plastic"
    t, w = (3.0, 0.008) if mat == "steel" else (12.0, 0.02)
    canvas.draw(Part([wire], mat, t, width=w), pl)
    canvas.draw(Part([hook], "steel", 3.0, width=0.008), pl)


def pen(canvas, rng, box, at=None):
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.1, 0.16), at)
    metal = rng.random() < 0.35
    canvas.draw(
        Part(
            [rounded_rect(-0.5, -0.045, 0.5, 0.045, 0.04)],
            "aluminium" if metal else "plastic",
            4.0 if metal else 9.0,
            profile=("round", 0.045),
        ),
        pl,
    )
    canvas.draw(Part([np.array([[-0.4, 0.0], [0.45, 0.0]])], "plastic", 3.0, width=0.02), pl)
    canvas.draw(Part([np.array([[0.2, 0.0], [0.4, 0.0]])], "steel", 1.0, width=0.03), pl)  # spring
    canvas.draw(Part([np.array([[0.5, -0.02], [0.56, 0.0], [0.5, 0.02]])], "steel", 2.0), pl)
    canvas.draw(Part([rect(-0.45, -0.06, -0.1, -0.045)], "steel", 1.5), pl)  # clip


def umbrella(canvas, rng, box, at=None):
    """A folded umbrella: a steel shaft with ribs, fabric, a plastic handle."""
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.3, 0.5), at)
    canvas.draw(Part([np.array([[-0.1, -0.08], [0.5, 0.0], [-0.1, 0.08]])], "organic", 8.0), pl)
    canvas.draw(Part([np.array([[-0.5, 0.0], [0.5, 0.0]])], "steel", 2.0, width=0.018), pl)
    for k in range(5):
        off = (k - 2) * 0.012
        canvas.draw(Part([np.array([[-0.05, off], [0.45, off * 0.3]])], "steel", 0.8, width=0.006), pl)
    canvas.draw(Part([rounded_rect(-0.5, -0.035, -0.3, 0.035, 0.03)], "plastic", 20.0, profile=("round", 0.035)), pl)


def screwdriver(canvas, rng, box, at=None):
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.12, 0.22), at)
    canvas.draw(Part([rounded_rect(-0.5, -0.08, -0.05, 0.08, 0.06)], "plastic", 22.0, profile=("round", 0.08)), pl)
    canvas.draw(Part([rect(-0.15, -0.018, 0.46, 0.018)], "steel", 5.0), pl)
    canvas.draw(Part([np.array([[0.46, -0.018], [0.5, -0.03], [0.5, 0.03], [0.46, 0.018]])], "steel", 3.0), pl)


def cutlery(canvas, rng, box, at=None):
    """A spoon or a fork (steel outline on a thin handle)."""
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.12, 0.18), at)
    canvas.draw(Part([np.array([[-0.5, -0.03], [0.1, -0.02], [0.1, 0.02], [-0.5, 0.03]])], "steel", 1.5), pl)
    if rng.random() < 0.5:
        canvas.draw(Part([ellipse(0.3, 0.0, 0.2, 0.09, 20)], "steel", 1.5), pl)
    else:
        canvas.draw(Part([rect(0.1, -0.06, 0.2, 0.06)], "steel", 1.5), pl)
        for ty in np.linspace(-0.05, 0.05, 4):
            canvas.draw(Part([np.array([[0.2, ty], [0.5, ty]])], "steel", 1.5, width=0.02), pl)


def belt(canvas, rng, box, at=None):
    s = canvas.size
    start = np.array([rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])]) if at is None else np.asarray(at)
    path = smooth_path(rng, start, rng.uniform(0, 2 * math.pi), 40, 0.012 * s, box, curl=0.3)
    canvas.draw(Part([path], "organic", rng.uniform(4, 8), width=0.03 * s), IDENTITY)
    d = path[1] - path[0]
    pl = Placement(0.05 * s, math.atan2(d[1], d[0]), *path[0])
    canvas.draw(
        Part([rounded_rect(-0.5, -0.6, 0.5, 0.6, 0.1), rounded_rect(-0.3, -0.4, 0.3, 0.4, 0.05)], "steel", 3.0), pl
    )
    canvas.draw(Part([np.array([[-0.3, 0.0], [0.5, 0.0]])], "steel", 2.5, width=0.08), pl)


def glasses(canvas, rng, box, at=None):
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.1, 0.14), at)
    mat, t = ("steel", 1.5) if rng.random() < 0.5 else ("plastic", 8.0)
    for cx in (-0.25, 0.25):
        canvas.draw(Part([ellipse(cx, 0.0, 0.2, 0.15, 20)], mat, t, width=0.03, closed=True), pl)
        canvas.draw(Part([ellipse(cx, 0.0, 0.19, 0.14, 20)], "glass" if rng.random() < 0.5 else "plastic", 2.5), pl)
    canvas.draw(Part([np.array([[-0.05, -0.03], [0.05, -0.03]])], mat, t, width=0.03), pl)


def batteries(canvas, rng, box, at=None):
    """AA cells: dense steel-cased cylinders with a dark core."""
    s = canvas.size
    pl = _place(rng, box, s * rng.uniform(0.06, 0.09), at)
    for k in range(int(rng.integers(1, 5))):
        y = k * 0.3
        canvas.draw(Part([rect(-0.5, y - 0.13, 0.5, y + 0.13)], "steel", 0.6, profile=("shell", 0.13, 0.1)), pl)
        canvas.draw(Part([rect(-0.45, y - 0.06, 0.45, y + 0.06)], "steel", 3.0), pl)
        canvas.draw(Part([rect(0.5, y - 0.05, 0.56, y + 0.05)], "steel", 1.5), pl)


#: Clutter items and their relative frequencies.
ITEMS = {
    clothes: 3.0,
    cable: 2.0,
    bottle: 1.2,
    laptop: 0.35,
    phone: 0.5,
    power_bank: 0.4,
    charger: 0.5,
    cable_coil: 0.5,
    earphones: 0.5,
    keys: 0.6,
    coins: 0.5,
    hanger: 0.35,
    pen: 0.8,
    umbrella: 0.25,
    screwdriver: 0.3,
    cutlery: 0.35,
    belt: 0.3,
    glasses: 0.3,
    batteries: 0.4,
    shoe: 0.4,
    book: 0.4,
    toiletries: 0.5,
}

#: How many clutter items a bag holds at each level (inclusive range).
CLUTTER_COUNTS = {"low": (4, 8), "medium": (9, 16), "high": (17, 28)}

#: Items big or dense enough to hide a threat under.
HIDERS = (laptop, cable_coil, clothes, bottle, book)


def fill_bag(canvas: Canvas, rng: np.random.Generator, box, level: str) -> None:
    """Draw a random number of clutter items for ``level`` inside ``box``."""
    lo, hi = CLUTTER_COUNTS[level]
    funcs = list(ITEMS)
    weights = np.array([ITEMS[f] for f in funcs])
    for idx in rng.choice(len(funcs), size=int(rng.integers(lo, hi + 1)), p=weights / weights.sum()):
        funcs[idx](canvas, rng, box)
