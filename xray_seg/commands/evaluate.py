"""``xray-seg evaluate``: paper-1 metrics of a model on a VOC split (see :mod:`xray_seg.evaluation.evaluator`)."""

from __future__ import annotations

from pathlib import Path

from xray_seg.commands._arguments import add_model_and_split, check_limit

NAME = "evaluate"
HELP = "PA, mPA, per-class IoU and mIoU (paper 1) of a model on a VOC split"
DESCRIPTION = """Evaluate a run folder, a .keras file or an exported SavedModel on a VOC split.

One confusion matrix over the whole split at original resolution gives PA, per-class PA,
mPA, per-class IoU and mIoU (paper 1, eqs. 4-7). Writes metrics.json, report.md and
confusion_matrix.png to --out (default: RUN/eval-<split> for a run folder), and the screening
figures: bags at the alarm rule stored with the model (the thresholds predict and an export use;
run `xray-seg calibrate` first to see the calibrated ones), roc.png and report.html.

  xray-seg evaluate runs/demo/run runs/demo/voc --split val --tta flip,scales=0.75,1,1.25
  xray-seg evaluate runs/demo/run long_scans_voc --window 512    # sliding window for long scans
  xray-seg evaluate runs/demo/run runs/demo/voc --split val --subset hidden

--subset NAME scores a subset of the split (an image flag of the annotations, listed in the
VOC folder's subsets.json): pixel metrics on the split's images in the subset, PD on its threat
bags, PFA on every threat-free bag of the split. Without --subset, a dataset with subsets gets
a table of all / each subset in the report (docs/evaluation.md, Subsets).
"""


def add_arguments(parser):
    add_model_and_split(parser, "run folder, .keras file or SavedModel folder", "evaluate")
    parser.add_argument(
        "--subset",
        help="score only this subset of the split (an image flag from subsets.json, e.g. hidden, small); "
        "PFA still uses the split's threat-free bags",
    )
    parser.add_argument("--tta", default="", help="test-time augmentation, e.g. flip,scales=0.75,1,1.25")
    parser.add_argument(
        "--window",
        help="override the tile size, e.g. 512x512 (default: the training size; scans are always tiled, never squashed)",
    )
    parser.add_argument("--stride", help="sliding-window step (default: 2/3 of the window)")
    parser.add_argument("--out", help="output folder for metrics.json, report.md and confusion_matrix.png")
    parser.add_argument("--force", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images of the split")


def run(args):
    from xray_seg import Segmenter
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.core.fileio import prepare_output_dir
    from xray_seg.evaluation.subsets import folder_name
    from xray_seg.inference.tta_options import tta_options

    check_limit(args.limit)
    tta = tta_options(args.tta, window=args.window, stride=args.stride)
    out = args.out
    model = Path(args.model)
    if out is None:  # inside a run folder; beside a .keras file or SavedModel folder
        is_run = model.is_dir() and (model / "best_model.keras").is_file()
        name = f"eval-{args.split}" + (f"-{folder_name(args.subset)}" if args.subset else "")
        out = model / name if is_run else model.parent / f"{model.stem}-{name}"
    # The output guard before the (slow) model load: the same check evaluate makes again.
    prepare_output_dir(out, force=args.force, inputs=[args.voc_dir], may_lie_inside=[model], dry_run=True)
    # The dataset's class names stand in for a bare .keras file's that carries none.
    segmenter = Segmenter.load(args.model, class_names=read_class_names(args.voc_dir))
    segmenter.evaluate(
        args.voc_dir, split=args.split, subset=args.subset, tta=tta, out_dir=out, force=args.force, limit=args.limit
    )
    return 0
