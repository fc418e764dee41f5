"""``xray-seg synth OUT_DIR``: write the embedded synthetic X-ray dataset as a Labelme folder."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from xray_seg.commands._arguments import add_bag_difficulty

NAME = "synth"
HELP = "write a synthetic X-ray baggage dataset (PNG + Labelme JSON) to a folder"
DESCRIPTION = """\
Write a synthetic dual-energy X-ray baggage dataset exactly as a Labelme annotator would:
one pseudo-colour PNG and one Labelme JSON (polygons labelled gun, knife, wrench, pliers,
scissors) per image, plus labels.txt, synth_config.yaml and contact_sheet.png (12 samples
with their polygons outlined). The result feeds `xray-seg convert` like any user's data.

Output is deterministic per --seed, whatever --workers is.

--size takes one side (square, the default: 512) or WIDTHxHEIGHT for belt-shaped scans,
e.g. --size 768x256 or --size 3000x1024 (width along the belt, height across it): the bag
sits at a random place along a canvas of air. --aspect-mix pidray draws each scan's
width/height ratio from a PIDray-like mix of 1:1 to 4:1 (height = --size's height).

--style photo draws the same threats (same polygons for the same --seed) as opaque,
coloured objects on a plain or textured surface: the "photo" domain that
`xray-seg cyclegan` translates into X-ray style (paper 1, section 4.2).

--scanner picks how the scanner shows the bag (docs/data.md, "Scanner looks"): dual_energy_a
(the default console), dual_energy_b (another vendor's colour ramp, noisier, with row stripes
and scan lines) or grey (single energy, one-channel PNG). The same --seed gives the same bags
and polygons in every look. --scanner mixed (or a comma list, e.g. dual_energy_a,grey) draws a
look per bag and records it in the bag's Labelme flags (scanner_<look>: true/false), which
`xray-seg convert` turns into subsets.
"""


def add_arguments(parser) -> None:
    from xray_seg.synthesis.scanners import LOOK_NAMES
    from xray_seg.synthesis.scene import STYLES, SynthConfig

    d = SynthConfig()
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to create (refused if it exists, unless --force)")
    parser.add_argument(
        "--size",
        type=parse_scan_size,
        default=(d.size, d.size),
        help=f"image side in pixels, or WIDTHxHEIGHT for a belt-shaped scan, e.g. 768x256 (default {d.size})",
    )
    parser.add_argument(
        "--aspect-mix",
        choices=["pidray"],
        default=None,
        help="draw each scan's width/height ratio from a PIDray-like mix (1:1 to 4:1)",
    )
    parser.add_argument("--num", type=int, default=d.num, help=f"number of images (default {d.num})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument("--workers", type=int, default=d.workers, help="processes to use (default 0: all cores)")
    add_bag_difficulty(parser, d)
    parser.add_argument(
        "--style", choices=STYLES, default=d.style, help=f"xray scans or photo-style images (default {d.style})"
    )
    parser.add_argument(
        "--scanner",
        type=check_scanner,
        default=d.scanner,
        metavar="LOOK",
        help=f"scanner look: {', '.join(LOOK_NAMES)}, mixed (a look per bag) or a comma list (default {d.scanner})",
    )
    parser.add_argument("--embed-image-data", action="store_true", help="store the base64 PNG in each JSON's imageData")
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def check_scanner(text: str) -> str:
    """``--scanner``: a look, ``mixed`` or a comma list of looks (argparse error naming the looks)."""
    import argparse

    from xray_seg.synthesis.scanners import LOOK_NAMES, MIXED, parse_looks

    try:
        parse_looks(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{exc}; choose from {', '.join(LOOK_NAMES)}, {MIXED} or a comma list"
        ) from None
    return text


def parse_scan_size(text: str) -> tuple[int, int]:
    """``"512"`` -> (512, 512); ``"768x256"`` -> (768, 256) as ``(width, height)``."""
    import argparse

    parts = str(text).lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: write e.g. 512 or 768x256 (WIDTHxHEIGHT)") from None
    if len(values) == 1:
        return values[0], values[0]
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: write e.g. 512 or 768x256 (WIDTHxHEIGHT)")
    return values[0], values[1]


def run(args) -> int:
    from xray_seg.synthesis.scene import CONTACT_SHEET, SynthConfig, synthesize

    width, height = args.size
    config = SynthConfig(
        size=height,
        width=0 if width == height else width,
        aspect_mix=args.aspect_mix or "",
        num=args.num,
        seed=args.seed,
        clutter=args.clutter,
        threat_prob=args.threat_prob,
        hide_prob=args.hide_prob,
        small_threat_prob=args.small_threat_prob,
        embed_image_data=args.embed_image_data,
        workers=args.workers,
        style=args.style,
        scanner=args.scanner,
    ).validate()
    start = time.perf_counter()
    paths = synthesize(args.out_dir, config, force=args.force, progress=not args.quiet)
    elapsed = time.perf_counter() - start
    counts: Counter = Counter()
    looks: Counter = Counter()
    empty = 0
    for path in paths:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        labels = [s["label"] for s in record["shapes"]]
        counts.update(labels)
        looks.update(k.removeprefix("scanner_") for k, v in record["flags"].items() if k.startswith("scanner_") and v)
        empty += not labels
    out = Path(args.out_dir)
    print(
        f"wrote {len(paths)} images of {_shape_text(config)} to {out} in {elapsed:.1f} s "
        f"({len(paths) / elapsed:.1f} images/s, {config.resolved_workers()} workers)"
    )
    print(
        "polygons per class: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        + f"; {empty} bags without threats"
    )
    if looks:
        print("bags per scanner look: " + ", ".join(f"{k} {v}" for k, v in sorted(looks.items())))
    print(f"contact sheet: {out / CONTACT_SHEET}")
    return 0


def _shape_text(config) -> str:
    """``WIDTHxHEIGHT`` of the scans (or of the mix)."""
    if config.aspect_mix:
        return f"height {config.size} ({config.aspect_mix} mix of widths)"
    return f"{config.width or config.size}x{config.size}"
