"""The 4x-wide protocol: do validation bags keep their threats on belt-shaped scans?

The first ``--bags`` (13) validation images of ``VOC`` are put, each, on a white canvas (255:
X-ray air) four times as wide, the bag centred. Every bag is segmented as

- ``square``: the bag alone, through the Keras model (``xray_seg.inference.tta``, the
  geometry rule: one tile when the bag is the training size);
- ``savedmodel serving_default``: the wide canvas through the exported SavedModel, which
  tiles it inside its graph (docs/architecture.md, "Geometry: how a scan reaches the network");
- ``predict --window``: the wide canvas through the Keras model with an explicit sliding
  window of the training size (what ``xray-seg predict --window`` does);
- ``squashed (old serving)``: the wide canvas resized straight to the training size and the
  probabilities resized back - what the SavedModel did before the rule; for reference.

Figures, pooled over all bags (threat = a pixel whose true label is a class 1..K-1; 255 is
ignored):

- ``found``: threat pixels predicted with their true class / all threat pixels;
- ``IoU``: threat pixels predicted with their true class / pixels that are a threat in the
  truth or predicted as one (anywhere on the canvas, so false alarms in the air count).

The target: ``serving_default`` finds >= 95 % of the square figure. ``--positions N``
also places each bag at N columns across the middle half of the canvas and pools them, since
where the tiles cut a bag changes the result.

    .venv/bin/python scripts/measure_wide_scan.py runs/demo/run runs/demo/voc
    .venv/bin/python scripts/measure_wide_scan.py RUN VOC --savedmodel export/savedmodel --json out.json
    .venv/bin/python scripts/measure_wide_scan.py RUN VOC --positions 8
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

ROUTES = ("square", "savedmodel serving_default", "predict --window", "squashed (old serving)")


def threat_counts(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``[hits, threat pixels, union]`` of one class map against its truth (module docstring)."""
    valid = truth != 255
    is_threat = (truth > 0) & valid
    hits = np.sum(is_threat & (pred == truth))
    union = np.sum(is_threat | ((pred > 0) & valid))
    return np.array([hits, is_threat.sum(), union], dtype=np.int64)


def on_wide_canvas(image: np.ndarray, mask: np.ndarray, factor: int = 4, offset: int | None = None):
    """The bag on a white canvas ``factor`` times as wide, at column ``offset`` (default: centred);
    the mask padded with background."""
    h, w = image.shape[:2]
    offset = (factor * w - w) // 2 if offset is None else int(offset)
    canvas = np.full((h, factor * w, 3), 255, np.uint8)
    canvas[:, offset : offset + w] = image
    truth = np.zeros((h, factor * w), np.uint8)
    truth[:, offset : offset + w] = mask
    return canvas, truth


def _savedmodel(run: Path, given: str | None, tmp: Path) -> Path:
    if given:
        return Path(given)
    for candidate in (run / "export" / "savedmodel", run.parent / "export" / "savedmodel"):
        if (candidate / "saved_model.pb").is_file():
            return candidate
    from xray_seg.serving.exporter import export_model

    print(f"no export found beside {run}; exporting to {tmp}")
    export_model(run, tmp / "export", formats=("savedmodel",), progress=False)
    return tmp / "export" / "savedmodel"


def bag_offsets(width: int, factor: int, positions: int) -> list[int]:
    """``positions`` bag columns spread evenly over the canvas's middle half (1: centred)."""
    centre = (factor * width - width) // 2
    if positions <= 1:
        return [centre]
    span = (factor * width) // 4
    return [int(round(centre - span / 2 + span * i / (positions - 1))) for i in range(positions)]


def measure(
    run: Path, voc: Path, *, savedmodel: str | None = None, bags: int = 13, factor: int = 4, positions: int = 1
) -> dict:
    """The protocol of the module docstring; returns ``{route: {"found", "iou", ...}}``.

    ``positions`` > 1 places every bag at that many columns (:func:`bag_offsets`) and pools
    them: tiles cut a bag differently at each, so one position can be lucky or unlucky."""
    import tensorflow as tf
    from tqdm import tqdm

    from xray_seg.conversion.voc import VocLayout, load_label_png, read_split
    from xray_seg.core.images import read_image_rgb
    from xray_seg.inference.loader import load_for_inference
    from xray_seg.inference.tta import (
        forward_logits,
        predict_class_map,
        resize_bilinear,
        softmax,
    )

    loaded = load_for_inference(run)
    tile = loaded.input_size
    layout = VocLayout(voc)
    stems = read_split(voc, "val")[:bags]
    totals = {route: np.zeros(3, np.int64) for route in ROUTES}
    with tempfile.TemporaryDirectory() as tmp:
        served = tf.saved_model.load(str(_savedmodel(Path(run), savedmodel, Path(tmp))))
        serve = served.signatures["serving_default"]
        for stem in tqdm(stems, desc="wide scans", unit="bag"):
            image = read_image_rgb(layout.image_path(stem))
            mask = load_label_png(layout.mask_path(stem))
            square = predict_class_map(loaded.logits_fn, image, input_size=tile)
            for offset in bag_offsets(image.shape[1], factor, positions):
                canvas, truth = on_wide_canvas(image, mask, factor, offset)
                served_map = serve(images=tf.constant(canvas[None]))["class_map"].numpy()[0]
                window = predict_class_map(loaded.logits_fn, canvas, input_size=tile, window=tile)
                squashed = resize_bilinear(
                    softmax(forward_logits(loaded.logits_fn, resize_bilinear(canvas.astype(np.float32), tile)[None]))[
                        0
                    ],
                    canvas.shape[:2],
                ).argmax(-1)
                totals["square"] += threat_counts(mask, square)
                totals["savedmodel serving_default"] += threat_counts(truth, served_map)
                totals["predict --window"] += threat_counts(truth, window)
                totals["squashed (old serving)"] += threat_counts(truth, squashed)
    results = {}
    for route, (hits, threats, union) in totals.items():
        results[route] = {
            "found": hits / max(threats, 1),
            "iou": hits / max(union, 1),
            "threat_pixels": int(threats),
            "bags": len(stems),
            "positions": positions,
        }
    square_found = results["square"]["found"]
    results["serving_default_vs_square_found"] = (
        results["savedmodel serving_default"]["found"] / square_found if square_found else None
    )
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder (best_model.keras, class_names.txt)")
    parser.add_argument("voc", help="VOC folder whose val split holds the bags")
    parser.add_argument(
        "--savedmodel", help="exported SavedModel folder (default: RUN/export/savedmodel, else exported here)"
    )
    parser.add_argument("--bags", type=int, default=13)
    parser.add_argument("--factor", type=int, default=4, help="canvas width / bag width (default 4)")
    parser.add_argument(
        "--positions", type=int, default=1, help="bag positions along the canvas, pooled (default 1: centred)"
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    results = measure(
        Path(args.run),
        Path(args.voc),
        savedmodel=args.savedmodel,
        bags=args.bags,
        factor=args.factor,
        positions=args.positions,
    )
    where = "centred" if args.positions <= 1 else f"at {args.positions} positions each"
    print(
        f"\n{args.factor}x-wide protocol, {results['square']['bags']} val bags {where}, "
        f"{results['square']['threat_pixels']} threat pixels"
    )
    print(f"{'input':<32} {'threat pixels found':>20} {'IoU':>7}")
    for route in ROUTES:
        print(f"{route:<32} {results[route]['found']:>20.3f} {results[route]['iou']:>7.3f}")
    ratio = results["serving_default_vs_square_found"]
    if ratio is not None:
        print(f"serving_default / square (found): {ratio:.3f}  (target >= 0.95: {'PASS' if ratio >= 0.95 else 'FAIL'})")
    if args.json:
        from xray_seg.core.fileio import write_json_atomic

        write_json_atomic(Path(args.json), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
