"""``xray-seg bench``: model-only and end-to-end FPS at batch 1 (see :mod:`xray_seg.evaluation.bench`)."""

from __future__ import annotations

NAME = "bench"
HELP = "FPS at batch 1: model only, and end to end (decode, predict, postprocess)"
DESCRIPTION = """Measure FPS as in paper 1's Table 3 (median after a warm-up, with the spread).

  xray-seg bench runs/demo/run runs/demo/voc/JPEGImages/ --runs 30
  xray-seg bench export/savedmodel scans/*.png --out bench.json
  xray-seg bench export scans/*.png --engine openvino

--engine times the export folder's model in that engine (see `xray-seg predict --help`).
"""


def add_arguments(parser):
    from xray_seg.commands._arguments import add_engine

    parser.add_argument("model", help="run folder, .keras file or SavedModel folder")
    parser.add_argument("inputs", nargs="+", help="image files, folders or globs used for the end-to-end figure")
    parser.add_argument("--runs", type=int, default=30, help="timed runs (default: 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs (default: 5)")
    parser.add_argument("--tta", default="", help="test-time augmentation for the end-to-end figure")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    add_engine(parser)


def run(args):
    from xray_seg import Segmenter
    from xray_seg.core.fileio import write_json_atomic
    from xray_seg.inference.prediction_files import expand_inputs
    from xray_seg.inference.tta_options import tta_options

    tta = tta_options(args.tta)
    paths = expand_inputs(args.inputs)
    result = Segmenter.load(args.model, engine=args.engine, variant=args.variant).benchmark(
        paths, runs=args.runs, warmup=args.warmup, tta=tta
    )
    if args.out:
        write_json_atomic(args.out, result)
    return 0
