"""``xray-seg predict``: class masks, overlays and item lists for images (see :mod:`xray_seg.inference.prediction_files`)."""

from __future__ import annotations

NAME = "predict"
HELP = "segment images: palette mask, overlay with legend, JSON list of items found"
DESCRIPTION = """Segment X-ray images with a run folder, a .keras file or an exported SavedModel.

For each image writes <stem>_mask.png, <stem>_overlay.png and <stem>.json (each item found:
class, pixel area, mean confidence, bounding box). Unreadable inputs are reported and skipped;
the exit code is 1 if any failed. Outputs are named by the input's stem, so two inputs with
one stem (a.png and a.jpg, or a.png in two folders; case ignored) are refused, listed, before
anything is predicted. The output folder may not be, contain or lie inside an input folder.

  xray-seg predict runs/demo/export/savedmodel scans/*.png --out predictions/
  xray-seg predict runs/demo/export scans/*.png --out predictions/ --engine onnx

--engine runs the export folder's model in that engine (savedmodel, savedmodel_optimized,
tflite with --variant float32|float16|int8_dynamic, onnx, openvino; keras: the run it came from)
with the same tiling, alarm thresholds (export.json) and outputs.

--labelme writes pre-annotations instead: OUT/<stem>.json, a Labelme file per scan with one
polygon per predicted item (its class as label, marked unreviewed with its confidence), for
an annotator to correct in labelme (docs/station.md, "Pre-annotations for Labelme"):

  xray-seg predict runs/demo/run pool/*.png --out pre/ --labelme --copy-images
  labelme pre/

A scan with <stem>.json beside it is already annotated and is skipped (listed) unless
--include-annotated; nothing is ever written outside OUT.
"""

LABELME_ONLY = ("simplify", "copy_images", "include_annotated")


def add_arguments(parser):
    from xray_seg.commands._arguments import add_engine

    parser.add_argument("model", help="run folder, .keras file or SavedModel folder")
    parser.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--min-area", type=int, default=50, help="smallest item to report, in pixels (default: 50)")
    parser.add_argument("--tta", default="", help="test-time augmentation, e.g. flip,scales=0.75,1,1.25")
    parser.add_argument(
        "--window", help="override the tile size (default: the training size; scans are always tiled, never squashed)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    add_engine(parser)
    group = parser.add_argument_group("pre-annotations for Labelme")
    group.add_argument(
        "--labelme", action="store_true", help="write one Labelme JSON per scan (pre-annotations to correct)"
    )
    group.add_argument(
        "--simplify",
        type=float,
        metavar="PX",
        help="outline tolerance in pixels, lowered per item where it would lose over 1%% of it (default: 0.5)",
    )
    group.add_argument(
        "--copy-images", action="store_true", help="copy the scans into OUT (a self-contained Labelme folder)"
    )
    group.add_argument(
        "--include-annotated",
        action="store_true",
        help="also pre-annotate scans with <stem>.json beside them (into OUT; their files stay untouched)",
    )


def run(args):
    from xray_seg import Segmenter
    from xray_seg.core.errors import ConfigError
    from xray_seg.inference.prediction_files import expand_inputs
    from xray_seg.inference.tta_options import tta_options

    tta = tta_options(args.tta, window=args.window)  # a bad --tta or --window fails before the model loads
    expand_inputs(args.inputs)  # so does a missing input, before any output folder is made
    stray = [name for name in LABELME_ONLY if getattr(args, name) not in (None, False)]
    if stray and not args.labelme:
        flags = ", ".join("--" + name.replace("_", "-") for name in stray)
        raise ConfigError(f"{flags} only applies to pre-annotations", fix="add --labelme, or leave it out")
    segmenter = Segmenter.load(args.model, engine=args.engine, variant=args.variant)
    if args.labelme:
        report = segmenter.pre_annotate(
            args.inputs,
            args.out,
            min_area=args.min_area,
            simplify=args.simplify,
            tta=tta,
            force=args.force,
            include_annotated=args.include_annotated,
            copy_images=args.copy_images,
        )
    else:
        report = segmenter.predict_files(args.inputs, args.out, min_area=args.min_area, tta=tta, force=args.force)
    return 1 if report.failures else 0
