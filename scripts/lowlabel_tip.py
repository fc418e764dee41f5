#!/usr/bin/env python
"""TIP in the low-label regime: a few labelled threat bags, with and without
many unlabelled clean bags under threat image projection, at the same number of steps.

Data (synthetic, ``xray-seg synth``'s default difficulty unless stated; image ``i`` of seed
``--seed`` is the same bag in every arm):

- ``--labelled`` threat bags (images ``0..``, every bag holds a threat): the labelled set;
- ``--clean`` threat-free bags (the images after them): the unlabelled set;
- ``--val`` bags (images from 100000 on, default difficulty with its 15 % clean bags, so PD
  at PFA 5 % can be measured): one val split shared by every arm.

Arms, each trained at seeds ``0..--seeds-1`` with the same preset, size, width and
``--steps`` (``epochs`` x ``steps_per_epoch``, so both arms see the same number of images):

- ``labelled``: the labelled bags alone, TIP off;
- ``labelled+clean_tip``: the labelled bags plus the clean ones, TIP on (``tip_prob``
  ``--tip-prob``, library from the train split, so only the labelled bags' threats are
  projected, into clean and labelled bags alike).

``OUT/lowlabel.md`` and ``OUT/lowlabel.json`` hold the table (mIoU and PD at PFA 5 % per arm
and seed, mean and the difference between arms seed by seed) and the CPU; ``OUT/runs/`` the
run folders, each with ``eval-val/``. ``--resume`` keeps finished runs.

    python scripts/lowlabel_tip.py --out runs/lowlabel                        # 60 + 300 bags, 2 seeds
    python scripts/lowlabel_tip.py --out /tmp/ll --labelled 4 --clean 8 --val 6 --size 64 \\
        --steps 2 --width 0.0625 --set data.batch_size=2 --seeds 1               # a smoke run
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_seg.evaluation.timing import cpu_line  # noqa: E402
from xray_seg.training import experiments as ex  # noqa: E402

ARMS = ("labelled", "labelled+clean_tip")
RESULT_FILE = "lowlabel_result.json"


def parse_args(argv=None):
    parser = ex.experiment_parser(__doc__, "runs", size=192, synthetic=False)
    parser.add_argument("--labelled", type=int, default=60, help="labelled threat bags (default 60)")
    parser.add_argument("--clean", type=int, default=300, help="unlabelled clean bags of the TIP arm (default 300)")
    parser.add_argument("--val", type=int, default=150, help="val bags, default difficulty (default 150)")
    parser.add_argument("--steps", type=int, default=600, help="training steps of every run (default 600)")
    parser.add_argument("--steps-per-epoch", type=int, default=30, help="steps per epoch (default 30)")
    parser.add_argument("--tip-prob", type=float, default=0.5, help="TIP probability of the TIP arm (default 0.5)")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds 0..N-1 (default 2)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    parser.add_argument("--seed", type=int, default=0, help="the data's synth seed (default 0)")
    parser.add_argument("--preset", default="demo_cpu", help="the recipe of every run (default demo_cpu)")
    return parser.parse_args(argv)


def arm_voc(args, out: Path, arm: str) -> Path:
    """The arm's VOC folder: its training bags plus the shared val bags (val via ``val_stems``)."""
    from dataclasses import replace

    from xray_seg.core.fileio import write_json_atomic
    from xray_seg.synthesis.scene import SynthConfig, synthesize, write_samples

    root = out / "data" / arm.replace("+", "_")
    wanted = {k: getattr(args, k) for k in ("labelled", "clean", "val", "size", "seed")}
    if (root / "data.json").is_file() and json.loads((root / "data.json").read_text(encoding="utf-8")) == wanted:
        return root / "voc"
    base = SynthConfig(size=args.size, seed=args.seed)
    synthesize(root / "labelme", replace(base, num=args.labelled, threat_prob=1.0), force=True, progress=False)
    if arm == "labelled+clean_tip":
        clean = replace(base, num=args.clean, threat_prob=0.0)
        write_samples(root / "labelme", clean, range(args.labelled, args.labelled + args.clean), progress=False)
    ex.add_val_and_convert(root, size=args.size, seed=args.seed, val=args.val)
    write_json_atomic(root / "data.json", wanted)
    return root / "voc"


def run_config(args, voc: Path, arm: str, seed: int):
    from xray_seg.core.config import load_config
    from xray_seg.training.config import TrainConfig
    from xray_seg.training.config_checks import validate_train_config

    overrides = [
        *ex.budget_overrides(
            voc, size=args.size, seed=seed, steps=args.steps, steps_per_epoch=args.steps_per_epoch, width=args.width
        ),
        f"data.augment.tip_prob={args.tip_prob if arm == 'labelled+clean_tip' else 0.0}",
        "data.augment.tip_library_split=train",
        *args.set,
    ]
    cfg = load_config(TrainConfig, args.preset, overrides)
    validate_train_config(cfg)
    return cfg


def run_arm(args, out: Path, arm: str, seed: int, voc: Path) -> dict:
    from xray_seg.core.fileio import write_json_atomic

    run_dir = out / "runs" / f"{arm.replace('+', '_')}_seed{seed}"
    if (run_dir / RESULT_FILE).is_file():
        print(f"{arm} seed {seed}: finished earlier, kept", flush=True)
        return json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    cfg = run_config(args, voc, arm, seed)
    print(f"\n=== {arm}, seed {seed}: {cfg.epochs} x {cfg.steps_per_epoch} steps ===", flush=True)
    record = {"arm": arm, "seed": seed, **ex.train_once(cfg, run_dir, verbose=0 if args.quiet else 1)}
    record.update(ex.measure(run_dir, voc))
    write_json_atomic(run_dir / RESULT_FILE, record)
    return record


def _mean(values) -> str:
    values = [v for v in values if v is not None]
    return ex.pct(statistics.mean(values)) if values else "n/a"


def markdown(records: list, settings: dict, cpu: str) -> str:
    """``lowlabel.md``: the setting, one row per run, the means and the TIP arm minus the other."""
    rows = [
        f"| {r['arm']} | {r['seed']} | {ex.pct(r['miou'])} | {ex.pct(r['pd_at_pfa5'])} | "
        + " | ".join(ex.pct(v) for k, v in r["iou"].items() if k != "_background_")
        + " |"
        for r in records
    ]
    classes = [k for k in records[0]["iou"] if k != "_background_"]
    by = {(r["arm"], r["seed"]): r for r in records}
    seeds = sorted({r["seed"] for r in records})
    diffs = [
        by[(ARMS[1], s)]["miou"] - by[(ARMS[0], s)]["miou"] for s in seeds if (ARMS[0], s) in by and (ARMS[1], s) in by
    ]
    arms = [arm for arm in ARMS if any(r["arm"] == arm for r in records)]
    means = [
        f"| {arm} | mean | {_mean(r['miou'] for r in records if r['arm'] == arm)} | "
        f"{_mean(r['pd_at_pfa5'] for r in records if r['arm'] == arm)} |" + " |" * len(classes)
        for arm in arms
    ]
    lines = [
        "## TIP with few labels (scripts/lowlabel_tip.py)",
        "",
        f"Data: {settings['labelled']} labelled threat bags; the TIP arm adds {settings['clean']} clean bags; val "
        f"{settings['val']} bags of default difficulty, shared; {settings['size']} px, synth seed {settings['seed']}. "
        f"Recipe: preset `{settings['preset']}`, {settings['steps']} steps of every run, width {settings['width']}, "
        f"TIP probability {settings['tip_prob']} in the TIP arm, extra settings {settings['set'] or 'none'}.",
        f"CPU: {cpu}.",
        "",
        "| arm | seed | mIoU (%) | PD@PFA5 (%) | " + " | ".join(f"IoU {c}" for c in classes) + " |",
        "|:---|---:|---:|---:|" + "---:|" * len(classes),
        *rows,
        *means,
        "",
        "TIP arm minus labelled alone, mIoU seed by seed (pp): "
        + (", ".join(f"{100 * d:+.2f}" for d in diffs) if diffs else "n/a"),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if not arms or any(a not in ARMS for a in arms):
        raise SystemExit(f"error: --arms {args.arms!r}: choose from {', '.join(ARMS)}")
    out = Path(args.out)
    keys = ("labelled", "clean", "val", "size", "steps", "steps_per_epoch", "width", "tip_prob", "seed", "preset")
    settings = ex.recorded_settings(args, keys, seeds=args.seeds, arms=arms)
    ex.open_out(out, settings, resume=args.resume, force=args.force, owner="lowlabel_tip")
    start, records = time.perf_counter(), []
    vocs = {arm: arm_voc(args, out, arm) for arm in arms}
    for seed in range(args.seeds):
        for arm in arms:
            records.append(run_arm(args, out, arm, seed, vocs[arm]))
    ex.write_results(
        out, "lowlabel", {"settings": settings, "runs": records}, markdown(records, settings, cpu_line()), start
    )
    return 0


if __name__ == "__main__":
    ex.run_script(main)
