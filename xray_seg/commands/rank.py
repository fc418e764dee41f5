"""``xray-seg rank``: which unlabelled scans to label next (see :mod:`xray_seg.inference.ranking`)."""

from __future__ import annotations

NAME = "rank"
HELP = "rank unlabelled scans by how much labelling them would teach the model; list the top N"
DESCRIPTION = """Score every scan of SCANS that is not labelled yet, with a run folder, a .keras file or an
exported SavedModel, and pick the N worth labelling next, skipping near-duplicates.

Writes into OUT: ranking.csv (every scan, best first: score, pixel uncertainty, alarm, the alarm
score's margin to its threshold, predicted classes, pick order), to_label.txt (the chosen scans'
paths) and to_label.png (their prediction overlays). Scores are appended to OUT as scans are
scored: after an interruption the same command continues; --force starts again. An unreadable
scan is refused with its name (after removing it, the same command continues).

  xray-seg rank runs/demo/run scans/ --out to_label/ --n 50 --exclude my_labelme/
  xray-seg rank runs/demo/run scans/ --out to_label/ --strategy screening

Strategies: uncertainty (default: mean entropy of the 5 % least certain pixels), screening
(bags nearest their alarm threshold), random (seeded). docs/labelling.md explains the choice.
"""


def add_arguments(parser):
    from xray_seg.inference.acquisition import DEFAULT_MIN_DISTANCE, DEFAULT_STRATEGY, STRATEGIES

    parser.add_argument("model", help="run folder, .keras file or SavedModel folder")
    parser.add_argument("scans", nargs="+", help="unlabelled scans: image files, folders or glob patterns")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=50, help="how many scans to pick (default 50)")
    parser.add_argument(
        "--strategy", choices=STRATEGIES, default=DEFAULT_STRATEGY, help=f"what to rank by (default {DEFAULT_STRATEGY})"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="LABELLED",
        help="a Labelme or VOC folder whose scans are labelled already (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --strategy random (default 0)")
    parser.add_argument(
        "--min-distance",
        type=float,
        default=DEFAULT_MIN_DISTANCE,
        help="skip a scan whose 16x16 grey thumbnail is within this RMS distance (0..1) of one already "
        f"chosen (default {DEFAULT_MIN_DISTANCE:g}; 0 = no diversity)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing output folder (our own only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args):
    from xray_seg import Segmenter
    from xray_seg.inference.ranking import RankSettings, plan_ranking

    settings = RankSettings(n=args.n, strategy=args.strategy, seed=args.seed, min_distance=args.min_distance)
    settings.check()  # a bad --n, a bad --exclude or output fails before the model loads
    plan_ranking(args.model, args.scans, args.out, exclude=args.exclude, force=args.force)
    options = {key: getattr(args, key) for key in ("n", "strategy", "exclude", "seed", "min_distance", "force")}
    Segmenter.load(args.model).rank(args.scans, args.out, progress=not args.quiet, **options)
    return 0
