"""``xray-seg compare``: train and evaluate several models under one protocol (see :mod:`xray_seg.training.compare`)."""

from __future__ import annotations

from xray_seg.commands._arguments import add_overrides

NAME = "compare"
HELP = "compare models under one protocol: paper 1 Tables 2-3 (mean ± std over seeds) and Fig. 7"
DESCRIPTION = """Train every model with the same config (splits, epochs, input size, augmentation,
optimiser; from scratch, paper 1 sec. 4.3), seed k for run k of every model, evaluate each on
val and write under --out: compare.md and compare.json (Table 3: mIoU, mPA, PA, FPS, params,
GFLOPs; Table 2: per-class IoU and PA; mean ± std over seeds), compare_bars.png,
compare_predictions.png (input, ground truth, each model) and protocol.yaml.

  xray-seg compare --data data/voc --preset compare_cpu --seeds 2 --out runs/compare
  xray-seg compare --data data/voc --preset cwf_xray512 --seeds 3 --out runs/paper1 \\
      --models cwf_deeplabv3plus,deeplabv3plus,mobilenetv2_deeplabv3plus,unet,bisenetv2,cyclenet,ifbfnet

Default --models: the five models of paper 1 Table 3. --resume skips finished (model, seed)
runs and continues an interrupted one from its checkpoint; --force starts over.
"""


def add_arguments(parser):
    parser.add_argument("--data", required=True, metavar="VOC_DIR", help="VOC dataset folder (from `xray-seg convert`)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--models",
        default="",
        help="comma-separated registry names (see `xray-seg models`); default: paper 1's five, "
        "cwf_deeplabv3plus,deeplabv3plus,mobilenetv2_deeplabv3plus,unet,bisenetv2",
    )
    parser.add_argument(
        "--preset",
        default="compare_cpu",
        help="preset shared by every model (default compare_cpu; paper 1: cwf_xray512)",
    )
    parser.add_argument("--seeds", type=int, default=1, help="seeds per model: 0..N-1 (default 1)")
    add_overrides(parser, "override a setting for every model (repeatable), e.g. epochs=20")
    parser.add_argument("--fps-runs", type=int, default=20, help="timed batch-1 forward passes per run (default 20)")
    parser.add_argument("--grid-images", type=int, default=4, help="val images in the prediction grid (default 4)")
    parser.add_argument("--devices", help="GPU indices for MirroredStrategy, e.g. 0,1,2,3 (default: all visible)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue a comparison in --out")
    group.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress bars")


def run(args):
    from xray_seg.training.compare import CompareSettings, compare, parse_model_list

    settings = CompareSettings(
        voc_dir=args.data,
        out_dir=args.out,
        models=tuple(parse_model_list(args.models)),
        preset=args.preset,
        seeds=args.seeds,
        overrides=tuple(args.overrides),
        fps_runs=args.fps_runs,
        grid_images=args.grid_images,
        devices=args.devices,
    )
    compare(settings, resume=args.resume, force=args.force, verbose=0 if args.quiet else 1)
    return 0
