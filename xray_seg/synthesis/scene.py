"""The embedded synthetic X-ray dataset, written exactly as a Labelme annotator would write it.

``synthesize(out_dir, SynthConfig(...))`` writes, for each image ``i``:

* ``xray_{i:05d}.png``: a 3-channel pseudo-colour dual-energy scan of a bag
  (:mod:`xray_seg.synthesis.xray_physics`: Beer-Lambert over per-material thickness maps,
  detector blur and noise, the screening consoles' orange/green/blue colour code);
* ``xray_{i:05d}.json``: Labelme's format (``version`` "5.4.1", ``flags``, ``shapes`` of
  ``shape_type`` "polygon", ``imagePath`` the PNG's file name, ``imageData`` null or the
  base64 PNG, ``imageHeight``, ``imageWidth``), one polygon per threat labelled with a
  name from :data:`CLASS_NAMES` (paper 1's five classes). The image-level ``flags`` say
  how hard the bag is, ``{"hidden": bool, "small": bool, "clean": bool}``
  (:func:`difficulty_flags`), as an annotator would tick them in Labelme; ``xray-seg
  convert`` makes them subsets (``subsets.json``) that ``evaluate --subset`` scores.
  There is no sidecar file: the converter reads every ``*.json`` of the folder as an
  annotation, so the flags live in the annotations themselves.

and beside them ``labels.txt`` (labelme2voc's format: ``__ignore__``, ``_background_``,
then the classes), ``synth_config.yaml`` (the resolved :class:`SynthConfig`) and
``contact_sheet.png`` (12 samples with their polygons outlined and labelled; the
converter reads ``*.json`` only, so it is never taken for a dataset image).

**Annotations.** A threat's polygon is traced from its full rendered footprint, the
union of all its parts, steel and plastic alike, regardless of the clutter on top of
or under it (X-rays pass through everything). Finger rings, wrench rings and trigger
guards are holes; each hole is joined to the outline by a zero-width bridge so the
polygon stays a single simply connected ring, as Labelme requires, while filling it
leaves the hole empty. A threat cut into pieces by the image border gets one polygon
per piece.

**Scanner looks** (``scanner``, :mod:`xray_seg.synthesis.scanners`): the scene is drawn first,
then shown as one scanner shows it (default ``dual_energy_a``, or ``dual_energy_b``, ``grey``,
or a look per bag with ``mixed``); a look changes pixel values only, never the polygons.

**Determinism.** Image ``i`` draws everything from its own generator seeded with
``(seed, i)``, so the output depends on ``seed`` only, not on the worker count or order.

**Belt scans** (``width`` or ``aspect_mix``): a scan need not be square. Belt scanners
write a fixed number of pixels across the belt and as many along it as the tunnel is
long, so a scan is ``size`` pixels high (across the belt) and ``width`` pixels wide
(along it). The bag is drawn in a square of side ``min(size, width)`` exactly as a square
sample, and that square sits at a random place along the belt on a canvas of air (zero
thickness, rendered through the same detector blur and noise, so the air around the
bag and the belt beyond it look alike); its polygons are shifted with it.
``aspect_mix="pidray"`` draws each scan's width/height ratio from :data:`PIDRAY_ASPECTS`,
a mix of 1:1 to 4:1 scans like the PIDray samples (the 4:1 strips of paper 2 included;
the weights are a rough guide, not a measurement of PIDray). Square sizes (the default)
take exactly the code path, and the numbers, they took before belt scans existed.

**Composition** (all sizes scale with the bag's side): a bag outline with zips, handles and
sometimes trolley tubes; 4-8 / 9-16 / 17-28 clutter items for ``clutter`` low / medium /
high (:mod:`xray_seg.synthesis.clutter`); with probability ``threat_prob`` one to three
threats (:mod:`xray_seg.synthesis.threats`), of uniformly drawn class, rotation and
mirror, each spanning 18-45 % of the image side (a fraction ``small_threat_prob``, one
in eight by default, is small, 8-15 %), and with probability ``hide_prob`` (a third by
default) one of them is hidden under a laptop, a cable coil, clothes, a bottle or a book.
"""

from __future__ import annotations

import base64
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from xray_seg.conversion.labelme_writer import labelme_record, mask_to_polygons, polygon_shape
from xray_seg.core.config import save_config
from xray_seg.core.errors import ConfigError, OutputExistsError
from xray_seg.core.fileio import prepare_output_dir, write_bytes_atomic, write_json_atomic, write_text_atomic
from xray_seg.core.pixel_limit import MAX_PIXELS_ENV, max_pixels
from xray_seg.core.processes import start_method
from xray_seg.core.viz import display_palette, outline_width, save_grid
from xray_seg.synthesis import clutter as synth_clutter
from xray_seg.synthesis.canvas import Canvas, Placement, parts_bounds
from xray_seg.synthesis.photo import paint_photo
from xray_seg.synthesis.scanners import DEFAULT_LOOK, LOOKS, look_flags, look_of, parse_looks, render_look
from xray_seg.synthesis.threats import BUILDERS, CLASS_NAMES

__all__ = [
    "CLASS_NAMES",
    "CLUTTER_LEVELS",
    "STYLES",
    "SynthConfig",
    "difficulty_flags",
    "render_sample",
    "synthesize",
    "write_contact_sheet",
    "write_samples",
]

CLUTTER_LEVELS = tuple(synth_clutter.CLUTTER_COUNTS)
CONTACT_SHEET = "contact_sheet.png"
CONFIG_FILE = "synth_config.yaml"
LABELS_FILE = "labels.txt"
STYLES = ("xray", "photo")
ASPECT_MIXES = ("", "pidray")
# width / height of a scan and its probability under aspect_mix="pidray" (module docstring)
PIDRAY_ASPECTS = ((1.0, 0.2), (1.33, 0.25), (2.0, 0.25), (3.0, 0.15), (4.0, 0.15))


@dataclass
class SynthConfig:
    """Settings of a synthetic dataset.

    Args:
        size: image side in pixels (paper 1 feeds 512 x 512); the height (across the
            belt) of a non-square scan.
        width: scan width in pixels (along the belt); 0 = ``size`` (square).
        aspect_mix: ``""`` (every scan ``size x width``) or ``"pidray"``: each scan's
            width drawn as ``size`` times a ratio from :data:`PIDRAY_ASPECTS`.
        num: number of images.
        seed: base seed; image ``i`` uses a generator seeded with ``(seed, i)``.
        clutter: ``"low"``, ``"medium"`` or ``"high"``.
        threat_prob: probability that a bag holds at least one threat.
        hide_prob: probability that one of a bag's threats is hidden under a laptop,
            cable coil, clothes, bottle or book (PIDray's "hidden" cases).
        small_threat_prob: probability that a threat is small (8-15 % of the image
            side instead of 18-45 %).
        embed_image_data: store the base64 PNG in each JSON's ``imageData``.
        workers: processes to use; 0 means all cores.
        style: ``"xray"`` (the scan) or ``"photo"``: the same threats photographed on a
            plain surface (:mod:`xray_seg.synthesis.photo`, the source domain of
            ``xray-seg cyclegan``); files are named ``<style>_<index>``.
        scanner: the scanner look (:mod:`xray_seg.synthesis.scanners`): one of
            :data:`~xray_seg.synthesis.scanners.LOOKS`, ``"mixed"`` (a look per bag, drawn
            from all) or a comma list to draw from; the look changes pixel values only.
    """

    size: int = 512
    num: int = 300
    seed: int = 0
    clutter: str = "medium"
    threat_prob: float = 0.85
    hide_prob: float = 1 / 3
    small_threat_prob: float = 0.125
    embed_image_data: bool = False
    workers: int = 0
    style: str = "xray"
    width: int = 0
    aspect_mix: str = ""
    scanner: str = DEFAULT_LOOK

    def validate(self) -> SynthConfig:
        """Raise :class:`ConfigError` for a setting out of range; return self."""
        problems = []
        if not isinstance(self.size, int) or self.size < 32:
            problems.append(("size", "must be an integer of at least 32", "use e.g. --size 512"))
        if not isinstance(self.num, int) or self.num < 1:
            problems.append(("num", "must be a positive integer", "use e.g. --num 300"))
        if self.clutter not in CLUTTER_LEVELS:
            problems.append(("clutter", f"must be one of {', '.join(CLUTTER_LEVELS)}", "use e.g. --clutter medium"))
        for key, example in (("threat_prob", 0.85), ("hide_prob", 0.33), ("small_threat_prob", 0.125)):
            if not 0.0 <= float(getattr(self, key)) <= 1.0:
                problems.append((key, "must lie in [0, 1]", f"use e.g. --{key.replace('_', '-')} {example}"))
        if not isinstance(self.workers, int) or self.workers < 0:
            problems.append(("workers", "must be 0 (all cores) or a positive integer", "use e.g. --workers 2"))
        if self.style not in STYLES:
            problems.append(("style", f"must be one of {', '.join(STYLES)}", "use e.g. --style xray"))
        if not isinstance(self.width, int) or (self.width and self.width < 32):
            problems.append(("width", "must be 0 (square) or an integer of at least 32", "use e.g. --size 768x256"))
        if self.aspect_mix not in ASPECT_MIXES:
            problems.append(("aspect_mix", "must be pidray or empty", "use e.g. --aspect-mix pidray"))
        if self.style == "photo" and (self.width not in (0, self.size) or self.aspect_mix):
            problems.append(
                ("style", "photo supports square images only", "leave out --size WxH / --aspect-mix for --style photo")
            )
        if not problems:
            problems += self._scanner_problems() + self._pixel_problems()
        if problems:
            key, what, fix = problems[0]
            raise ConfigError(f"synth setting {key}={getattr(self, key)!r} {what}", fix=fix)
        return self

    def _scanner_problems(self) -> list[tuple[str, str, str]]:
        """A ``scanner`` that names no look, or a look with ``style="photo"`` (a camera has none)."""
        try:
            looks = parse_looks(self.scanner)
        except ValueError as exc:
            return [("scanner", f"is not a look: {exc}", f"use one of {', '.join(LOOKS)}, mixed or a comma list")]
        if self.style == "photo" and looks != (DEFAULT_LOOK,):
            return [("scanner", "has no meaning for --style photo", "leave out --scanner for --style photo")]
        return []

    def _pixel_problems(self) -> list[tuple[str, str, str]]:
        """The largest scan over the pixel limit that ``convert`` (and every reader) applies
        (:func:`xray_seg.core.pixel_limit.max_pixels`, one limit for both): refused up front
        instead of writing images that ``convert`` then refuses."""
        widest = max(32, round(self.size * max(r for r, _ in PIDRAY_ASPECTS))) if self.aspect_mix else self.width
        height, width = self.size, widest or self.size
        limit = max_pixels()
        if height * width <= limit:
            return []
        what = (
            f"gives {width}x{height} (WxH) scans, {height * width / 1e6:.1f} M pixels, over the limit of "
            f"{limit / 1e6:.1f} M pixels that `xray-seg convert` applies"
        )
        fix = f"use a smaller --size, or raise the limit with --max-pixels N (or {MAX_PIXELS_ENV}=N) for both commands"
        return [("size", what, fix)]

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    def scan_shape(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of image ``index`` (own generator, so square data is unchanged)."""
        if self.aspect_mix == "pidray":
            rng = np.random.default_rng([int(self.seed), int(index), 1])
            ratios, weights = zip(*PIDRAY_ASPECTS)
            ratio = float(rng.choice(ratios, p=np.asarray(weights) / sum(weights)))
            return self.size, max(32, round(self.size * ratio))
        return self.size, self.width or self.size


# ----------------------------------------------------------------------------- one sample
def _place_threat(rng, size, parts, placed, bag_box, small_prob):
    """Choose a placement for a threat: scale, rotation, mirror, position in the bag;
    returns ``(placement, box, small)``."""
    small = bool(rng.random() < small_prob)
    span = rng.uniform(0.08, 0.15) if small else rng.uniform(0.18, 0.45)
    length = span * size
    best = None
    for _ in range(12):
        pl = Placement(length, rng.uniform(0, 2 * math.pi), 0.0, 0.0, bool(rng.random() < 0.5))
        x0, y0, x1, y1 = parts_bounds(parts, pl)
        # centre in the bag; the item may reach over the bag's box but stays in view
        margin = 0.02 * size
        lo_x, hi_x = max(margin - x0, bag_box[0]), min(size - margin - x1, bag_box[2])
        lo_y, hi_y = max(margin - y0, bag_box[1]), min(size - margin - y1, bag_box[3])
        cx = rng.uniform(lo_x, hi_x) if hi_x > lo_x else (max(margin - x0, 0) + min(size - margin - x1, size)) / 2
        cy = rng.uniform(lo_y, hi_y) if hi_y > lo_y else (max(margin - y0, 0) + min(size - margin - y1, size)) / 2
        box = (x0 + cx, y0 + cy, x1 + cx, y1 + cy)
        overlap = max((_overlap(box, other) for other in placed), default=0.0)
        best = (overlap, Placement(length, pl.angle, cx, cy, pl.mirror), box)
        if overlap < 0.15:
            break
    return best[1], best[2], small


def _overlap(a, b) -> float:
    """Intersection area over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / max(smaller, 1e-9)


def render_sample(config: SynthConfig, index: int, *, debug: bool = False, look: str | None = None):
    """Render image ``index`` of ``config``, in scanner ``look`` (default: the bag's, :func:`look_of`).

    Returns:
        ``(image, shapes)``: an RGB uint8 ``[H, W, 3]`` scan (``config.scan_shape(index)``,
        ``[size, size]`` by default) and the Labelme shape dicts of its threats. With
        ``debug=True``, ``(image, shapes, info)`` where
        ``info["threat_mask"]`` is the ``[H, W]`` uint8 map of rendered threat
        footprints (class index 1..5 from :data:`CLASS_NAMES`, 0 elsewhere; later
        threats over earlier ones), ``info["thickness"]`` the per-material
        thickness maps in mm, ``info["flags"]`` the bag's difficulty (:func:`difficulty_flags`)
        and look (:func:`look_flags`), ``info["look"]`` the look (masks are the same in all).
    """
    height, width = config.scan_shape(index)
    size = min(height, width)  # the bag's square
    rng = np.random.default_rng([int(config.seed), int(index)])
    canvas = Canvas(size)
    box = synth_clutter.bag(canvas, rng)
    synth_clutter.fill_bag(canvas, rng, box, config.clutter)

    threats = []
    small, hidden = [], None  # which threats are small, which one is hidden (no extra draws)
    if rng.random() < config.threat_prob:
        count = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
        placed = []
        for _ in range(count):
            name = CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]
            parts = BUILDERS[name](rng)
            placement, bbox, is_small = _place_threat(rng, size, parts, placed, box, config.small_threat_prob)
            placed.append(bbox)
            small.append(is_small)
            threats.append((name, parts, placement))
        if rng.random() < config.hide_prob:
            hidden = int(rng.integers(len(threats)))
            _, _, pl = threats[hidden]
            hider = synth_clutter.HIDERS[int(rng.integers(len(synth_clutter.HIDERS)))]
            hider(canvas, rng, box, at=(pl.cx, pl.cy))

    shapes = []
    drawn = []  # threat indices that have at least one polygon
    threat_mask = np.zeros((size, size), np.uint8)
    for t, (name, parts, placement) in enumerate(threats):
        canvas.draw_all(parts, placement)
        footprint = canvas.footprint(parts, placement)
        threat_mask[footprint > 0] = CLASS_NAMES.index(name) + 1
        polygons = mask_to_polygons(footprint)
        drawn += [t] if polygons else []
        for poly in polygons:
            shapes.append(polygon_shape(name, poly))
    flags = difficulty_flags(clean=not shapes, hidden=hidden in drawn, small=any(small[t] for t in drawn))
    look = look or look_of(config.scanner, config.seed, index)
    flags.update(look_flags(config.scanner, look))

    _fabric_texture(canvas, rng)
    maps = canvas.maps
    if (height, width) != (size, size):
        maps, threat_mask, shapes = _on_belt(config, index, (height, width), maps, threat_mask, shapes)
    image = render_look(maps, rng, look, blur_sigma=max(0.35, 0.6 * size / 512))
    if debug:
        return image, shapes, {"threat_mask": threat_mask, "thickness": maps, "flags": flags, "look": look}
    return image, shapes


def render_photo_sample(config: SynthConfig, index: int):
    """Render image ``index`` of ``config`` as a photo (:mod:`xray_seg.synthesis.photo`).

    Returns ``(image, shapes)`` like :func:`render_sample`; the shapes are identical to
    those of the X-ray style for the same seed and index.
    """
    _, shapes, info = render_sample(config, index, debug=True)
    rng = np.random.default_rng([int(config.seed), int(index), 1])
    return paint_photo(info["threat_mask"], info["thickness"], rng), shapes


def difficulty_flags(*, clean: bool, hidden: bool, small: bool) -> dict:
    """A bag's entry for Labelme's image-level ``flags`` (what an annotator ticks in Labelme's
    Flags panel, ``labelme --flags hidden,small,clean``): ``hidden``, a threat lies under a
    laptop, cable coil, clothes, bottle or book (PIDray's "hidden"); ``small``, a threat spans
    8-15 % of the bag's side; ``clean``, the bag holds no threat. ``xray-seg convert`` turns
    every image flag into a subset of the VOC folder (``subsets.json``)."""
    return {"hidden": bool(hidden and not clean), "small": bool(small and not clean), "clean": bool(clean)}


def _on_belt(config: SynthConfig, index: int, shape, maps, threat_mask, shapes):
    """Put the square bag at a random place along a ``shape`` belt of air (module docstring)."""
    height, width = shape
    side = threat_mask.shape[0]
    rng = np.random.default_rng([int(config.seed), int(index), 2])
    oy, ox = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    big = {}
    for name, thickness in maps.items():
        big[name] = np.zeros((height, width), thickness.dtype)
        big[name][oy : oy + side, ox : ox + side] = thickness
    mask = np.zeros((height, width), np.uint8)
    mask[oy : oy + side, ox : ox + side] = threat_mask
    moved = [{**s, "points": [[round(x + ox, 2), round(y + oy, 2)] for x, y in s["points"]]} for s in shapes]
    return big, mask, moved


def _fabric_texture(canvas: Canvas, rng: np.random.Generator) -> None:
    """Modulate organic matter by smooth noise (+-30 %): the weave and density of cloth."""
    size = canvas.size
    coarse = rng.uniform(0.7, 1.3, (12, 12)).astype(np.float32)
    fine = rng.uniform(0.85, 1.15, (48, 48)).astype(np.float32)
    texture = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    texture *= cv2.resize(fine, (size, size), interpolation=cv2.INTER_CUBIC)
    canvas.maps["organic"] *= texture


def encode_png(image: np.ndarray, *, grey: bool = False) -> bytes:
    """An RGB uint8 image as PNG bytes (what synth and cyclegan translate write); ``grey``
    writes its first channel as a one-channel PNG (the single-energy look)."""
    ok, buf = cv2.imencode(".png", image[..., 0] if grey else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def sample_stem(index: int, style: str = "xray") -> str:
    return f"{style}_{index:05d}"


def write_sample(out_dir: str | Path, config: SynthConfig, index: int) -> Path:
    """Render image ``index`` and write its PNG and Labelme JSON atomically; return the JSON path."""
    out_dir = Path(out_dir)
    grey = False
    if config.style == "photo":
        image, shapes = render_photo_sample(config, index)
        flags = {}
    else:
        image, shapes, info = render_sample(config, index, debug=True)
        flags, grey = info["flags"], not LOOKS[info["look"]].dual
    png = encode_png(image, grey=grey)
    stem = sample_stem(index, config.style)
    write_bytes_atomic(out_dir / f"{stem}.png", png)
    record = labelme_record(
        shapes,
        image_path=f"{stem}.png",
        height=image.shape[0],
        width=image.shape[1],
        flags=flags,
        image_data=base64.b64encode(png).decode("ascii") if config.embed_image_data else None,
    )
    json_path = out_dir / f"{stem}.json"
    write_json_atomic(json_path, record)
    return json_path


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _write_task(task) -> str:
    out_dir, config, index = task
    return str(write_sample(out_dir, config, index))


# ----------------------------------------------------------------------------- dataset
def write_samples(out_dir: str | Path, config: SynthConfig, indices, *, progress: bool = True) -> list[Path]:
    """Render images ``indices`` of ``config`` into ``out_dir``; return their JSON paths in order.

    The one rendering loop of :func:`synthesize`, over ``config.workers`` processes with a
    tqdm bar. Image ``i`` depends on ``(config.seed, i)`` only, so indices past
    ``config.num`` extend a dataset with new bags (the demo adds threat-free bags this
    way); the caller owns ``out_dir`` and its stems must be new there.
    """
    from tqdm import tqdm

    indices = list(indices)
    workers = min(config.resolved_workers(), len(indices))
    tasks = [(str(out_dir), config, i) for i in indices]
    method = start_method()  # before the progress bar starts its monitor thread
    bar = tqdm(total=len(tasks), desc="synth", unit="img", disable=not progress)
    paths: list[Path] = []
    try:
        if workers <= 1:
            for task in tasks:
                paths.append(Path(_write_task(task)))
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context(method)  # fork unless threads (TensorFlow) are running
            chunk = max(1, min(4, len(tasks) // (workers * 4)))
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
                for path in pool.map(_write_task, tasks, chunksize=chunk):
                    paths.append(Path(path))
                    bar.update()
    finally:
        bar.close()
    return paths


def synthesize(out_dir: str | Path, config: SynthConfig, *, force: bool = False, progress: bool = True) -> list[Path]:
    """Write a synthetic Labelme dataset to ``out_dir``; return the JSON paths in index order.

    Refuses (:class:`~xray_seg.core.errors.OutputExistsError`) if ``out_dir`` exists and is not
    empty, unless ``force`` (then it is replaced). Images are rendered in parallel over
    ``config.workers`` processes (0: all cores) with a tqdm progress bar.
    """
    config.validate()
    try:
        out_dir = prepare_output_dir(out_dir, force=force, owner="synth")
    except OutputExistsError as exc:
        if "did not create" in exc.problem:
            raise
        raise OutputExistsError(
            "output folder already exists and is not empty",
            path=exc.path,
            fix="choose another OUT_DIR, or pass --force to replace it",
        ) from None
    write_text_atomic(out_dir / LABELS_FILE, "\n".join(["__ignore__", "_background_", *CLASS_NAMES]) + "\n")
    save_config(config, out_dir / CONFIG_FILE)

    paths = write_samples(out_dir, config, range(config.num), progress=progress)
    write_contact_sheet(out_dir, paths[:12])
    return paths


def draw_annotations(image: np.ndarray, shapes: list[dict]) -> tuple[np.ndarray, list[tuple]]:
    """The image with each polygon outlined in its class's display colour over a black casing
    (:mod:`xray_seg.core.viz`: visible on white air and navy metal alike), and the labels as
    ``(x, y, text, class_index)`` for :func:`~xray_seg.core.viz.save_grid` to write in points
    (text drawn into the pixels would shrink with the image's size)."""
    palette = display_palette(len(CLASS_NAMES) + 1)
    out = image.copy()
    thick = outline_width(image.shape)
    labels = []
    for shape in shapes:
        idx = CLASS_NAMES.index(shape["label"]) + 1 if shape["label"] in CLASS_NAMES else 0
        colour = tuple(int(c) for c in palette[idx])
        pts = np.round(np.asarray(shape["points"]) * 16).astype(np.int32)
        cv2.polylines(out, [pts], True, (0, 0, 0), thick + 2, cv2.LINE_AA, 4)
        cv2.polylines(out, [pts], True, colour, thick, cv2.LINE_AA, 4)
        x, y = np.asarray(shape["points"]).min(axis=0)
        labels.append((float(x), float(max(y - 2, 0)), shape["label"], idx))
    return out, labels


def write_contact_sheet(out_dir: str | Path, json_paths: list[Path], *, path: str | Path | None = None) -> Path:
    """Draw up to 12 written samples (read back from disk) with their polygons: ``contact_sheet.png``."""
    import json

    cells, labels, drawn = [], [], set()
    for json_path in json_paths[:12]:
        record = json.loads(Path(json_path).read_text(encoding="utf-8"))
        bgr = cv2.imread(str(Path(json_path).parent / record["imagePath"]), cv2.IMREAD_COLOR)
        cell, cell_labels = draw_annotations(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), record["shapes"])
        cells.append(cell)
        labels.append(cell_labels)
        drawn.update(index for *_, index in cell_labels if index)
    cols = min(4, max(len(cells), 1))
    rows = [cells[i : i + cols] for i in range(0, len(cells), cols)]
    target = Path(path) if path is not None else Path(out_dir) / CONTACT_SHEET
    return save_grid(
        target,
        rows,
        class_names=["_background_", *CLASS_NAMES],
        legend=sorted(drawn),
        labels=[labels[i : i + cols] for i in range(0, len(labels), cols)],
        title=f"xray-seg synth: first {len(cells)} samples, threat polygons outlined",
        cell_inches=3.6,
    )
