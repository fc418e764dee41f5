"""``xray-seg calibrate``: per-class alarm thresholds for a target PFA (see :mod:`xray_seg.evaluation.calibration`)."""

from __future__ import annotations

from xray_seg.commands._arguments import add_model_and_split, check_limit

NAME = "calibrate"
HELP = "choose per-class alarm thresholds on validation data for a target false-alarm rate"
DESCRIPTION = """Choose the alarm thresholds of a model on a VOC split for a target PFA and store them with it.

A bag alarms for a class when one of its items of that class (connected component after a
morphological closing) has at least --min-area pixels and a mean confidence >= the class's
threshold. The thresholds that detect the most threats with PFA <= --target-pfa on the split
are written to RUN/alarm_thresholds.json (run folder or .keras; `xray-seg export` carries them),
or, for an exported SavedModel, into its export.json, with the SavedModel rebuilt so that its
`alarm` outputs use them.

  xray-seg calibrate runs/demo/run runs/demo/voc --split val --target-pfa 0.05
  xray-seg calibrate runs/demo/export runs/demo/voc --target-pfa 0.01
"""


def add_arguments(parser):
    add_model_and_split(parser, "run folder, .keras file, export folder or SavedModel folder", "calibrate on")
    parser.add_argument(
        "--target-pfa",
        type=float,
        default=0.05,
        help="largest fraction of threat-free bags that may alarm (default: 0.05)",
    )
    parser.add_argument(
        "--min-area", type=int, help="smallest item that can alarm, in pixels (default: 100 or the stored rule)"
    )
    parser.add_argument(
        "--closing", type=int, help="closing radius merging item fragments (default: 2 or the stored rule)"
    )
    parser.add_argument("--limit", type=int, help="use only the first N images of the split")


def run(args):
    from xray_seg.core.errors import ConfigError
    from xray_seg.evaluation.calibration import summary_lines
    from xray_seg.serving.recalibrate import calibrate_model

    check_limit(args.limit)
    if not 0.0 <= args.target_pfa < 1.0:
        raise ConfigError(f"--target-pfa {args.target_pfa} is not a fraction", fix="give e.g. --target-pfa 0.05")
    options = {name: getattr(args, name) for name in ("split", "target_pfa", "min_area", "closing", "limit")}
    result = calibrate_model(args.model, args.voc_dir, **options)
    print("\n".join(summary_lines(result)))
    return 0
