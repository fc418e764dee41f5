"""What pre-annotations lose: simplification against the round trip through ``xray-seg convert``.

For every scan of ``SCANS``, ``MODEL`` predicts the class map (``Segmenter.predict``, as
``predict --labelme`` does); its items are the connected components with at least
``--min-area`` pixels. Two figures:

- **Simplification loss**: each item traced and simplified by Douglas-Peucker at a fixed
  tolerance (0, 0.5, 1, 1.5, 2 px; no check), filled as labelme fills it, against the item:
  the mean and worst IoU and the vertices, per tolerance. This is the loss ``--simplify``
  would cost without the per-item check of ``conversion/labelme_writer.trace_mask``.
- **Round trip**: ``Segmenter.pre_annotate`` into a temporary folder (``--simplify``
  default, images copied), ``xray-seg convert`` of it, and for each item the share of its
  pixels that come back with its class ("agreement"): mean, worst, and the share of items
  at >= 0.98. The background pixels that came back as a class are counted too.

    .venv/bin/python scripts/measure_pre_annotation.py runs/demo/run data/scans
    .venv/bin/python scripts/measure_pre_annotation.py MODEL SCANS --min-area 50 --simplify 1.0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

TOLERANCES = (0.0, 0.5, 1.0, 1.5, 2.0)


def items_of(class_map, class_names, min_area):
    """``[(class index, full-size bool mask)]`` of the items ``predict --labelme`` draws."""
    from xray_seg.inference.alarm_rule import find_items

    probs = np.eye(len(class_names), dtype=np.float32)[class_map]
    found = []
    for item in find_items(class_map, probs, class_names, min_area, with_masks=True):
        x, y, w, h = item["bbox"]
        mask = np.zeros(class_map.shape, bool)
        mask[y : y + h, x : x + w] = item["mask"]
        found.append((item["class_index"], mask, item["mask"]))
    return found


def simplification_loss(items) -> dict:
    """Per tolerance: mean and worst IoU of the unchecked polygons, and their vertices."""
    from xray_seg.conversion.labelme_writer import mask_to_polygons, rasterise_polygons

    table = {}
    for tol in TOLERANCES:
        ious, vertices = [], 0
        for _, _, crop in items:
            polygons = mask_to_polygons(crop, min_pixels=0, min_hole_pixels=1, epsilon=tol)
            drawn = rasterise_polygons(polygons, crop.shape)
            ious.append((drawn & crop).sum() / max((drawn | crop).sum(), 1))
            vertices += sum(len(p) for p in polygons)
        table[tol] = (float(np.mean(ious)), float(np.min(ious)), vertices)
    return table


def round_trip(seg, scans, maps, args) -> tuple[list[float], int, int]:
    """``(agreement per item, background pixels turned to a class, vertices)`` through convert."""
    from PIL import Image

    from xray_seg.conversion.convert import ConvertConfig, convert

    with tempfile.TemporaryDirectory() as tmp:
        out, voc, labels = Path(tmp) / "pre", Path(tmp) / "voc", Path(tmp) / "labels.txt"
        report = seg.pre_annotate(
            [str(s) for s in scans], out, min_area=args.min_area, simplify=args.simplify, copy_images=True
        )
        labels.write_text("__ignore__\n" + "\n".join(seg.class_names) + "\n")
        convert(out, voc, ConvertConfig(labels=str(labels), workers=1), progress=False)
        shares, stray = [], 0
        for scan, class_map in zip(scans, maps):
            got = np.asarray(Image.open(voc / "SegmentationClass" / f"{scan.stem}.png"))
            kept = np.zeros(class_map.shape, bool)
            for index, mask, _ in items_of(class_map, seg.class_names, args.min_area):
                shares.append(float((got[mask] == index).mean()))
                kept |= mask
            stray += int(((got > 0) & (got < 255) & ~kept).sum())
    return shares, stray, report.vertices


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="run folder, .keras file or SavedModel folder")
    parser.add_argument("scans", help="folder of scans")
    parser.add_argument("--min-area", type=int, default=50)
    parser.add_argument("--simplify", type=float, default=0.5)
    args = parser.parse_args(argv)

    from xray_seg import Segmenter
    from xray_seg.inference.prediction_files import expand_inputs

    seg = Segmenter.load(args.model)
    scans = expand_inputs([args.scans])
    maps = [seg.predict(s).class_map for s in scans]
    items = [it for m in maps for it in items_of(m, seg.class_names, args.min_area)]
    print(f"{len(scans)} scans, {len(items)} items of >= {args.min_area} px (median {_median_area(items)} px)")
    print("simplification without the check: tolerance px | mean IoU | worst IoU | vertices")
    for tol, (mean, worst, vertices) in simplification_loss(items).items():
        print(f"  {tol:4.1f} | {mean:.4f} | {worst:.4f} | {vertices}")
    shares, stray, vertices = round_trip(seg, scans, maps, args)
    print(
        f"round trip (--simplify {args.simplify:g}, checked, through convert): agreement mean {np.mean(shares):.4f}, "
        f"worst {np.min(shares):.4f}, {np.mean(np.asarray(shares) >= 0.98):.1%} of items >= 0.98; "
        f"{stray} background pixel(s) came back as a class; {vertices} vertices"
    )
    return 0


def _median_area(items) -> int:
    return int(np.median([m.sum() for _, m, _ in items])) if items else 0


if __name__ == "__main__":
    raise SystemExit(main())
