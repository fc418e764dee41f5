#!/usr/bin/env python
"""Starting from the synthetic-pretrained preset, on a scanner look it never saw: the learning
curve of labelled target bags, against training from scratch.

Data (synthetic, ``xray-seg synth``'s default difficulty, all in scanner look ``--look``,
which the preset's manifest must list under ``held_out_looks``; image ``i`` of seed ``--seed``
is the same bag in every arm):

- ``max(--sizes)`` labelled target bags (images ``0..``); a run with ``N`` labels trains on
  the first ``N`` of them (split ``trainN``, so the smaller sets are nested in the larger);
- ``--val`` bags (images from 100000 on, with the default 15 % threat-free bags, so PD at
  PFA 5 % can be measured): one val split shared by every run.

Arms, each trained at every size and at seeds ``0..--seeds-1`` with the same recipe
(``--recipe``, default ``demo_cpu``), width, size and number of steps (``--epochs`` x
``--steps-per-epoch``, so every run sees the same number of images):

- ``scratch``: from random weights;
- ``preset``: ``--init preset:NAME`` (weights by layer path; the class names match);
- ``preset_frozen``: the same with the backbone frozen for the first ``--freeze-epochs``.

Every run validates each epoch, so ``history.csv`` gives val mIoU against training minutes:
the time-to-target columns are the minutes of training (and the epoch) until val mIoU first
passes 0.65 and 0.70 (``-`` if it never does within the budget). ``--recipe hard_cpu`` with
long runs measures time to target on data of ``hard_cpu``'s difficulty, which is the
default difficulty these bags have.

``OUT/learning_curve.md`` and ``.json`` hold the table (val mIoU, PD at PFA 5 %, training
minutes, time to 0.65 / 0.70 per arm, size and seed, and the means) and the CPU; ``OUT/runs/``
the run folders. ``--resume`` keeps finished runs.

    python scripts/learning_curve.py --out runs/lc --sizes 25,50,100,200 --val 48 --seeds 2 \
        --epochs 8 --steps-per-epoch 12 --freeze-epochs 2                      # the docs' first table
    python scripts/learning_curve.py --out runs/lc_hard --sizes 200 --val 48 --seeds 1 --epochs 80 \
        --steps-per-epoch 25 --recipe hard_cpu --arms preset,scratch         # time to target
    python scripts/learning_curve.py --out /tmp/lc --sizes 4,8 --val 6 --size 64 --epochs 1 \\
        --steps-per-epoch 2 --seeds 1 --preset-name tiny   # a smoke run (XRAY_SEG_PRESETS_PATH=folder of tiny)
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_seg.evaluation.timing import cpu_line  # noqa: E402
from xray_seg.training import experiments as ex  # noqa: E402

ARMS = ("scratch", "preset", "preset_frozen")
TARGETS = (0.65, 0.70)
RESULT_FILE = "learning_curve_result.json"


def parse_args(argv=None):
    parser = ex.experiment_parser(__doc__, "runs", size=256, synthetic=False)
    parser.add_argument("--sizes", default="25,50,100,200", help="labelled target bags per run (default 25,50,100,200)")
    parser.add_argument("--val", type=int, default=80, help="val bags of the target look (default 80)")
    parser.add_argument("--look", default="dual_energy_b", help="the target scanner look (default dual_energy_b)")
    parser.add_argument("--preset-name", default="synthetic_cwf_w025", help="the preset to start from")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of every run (default 10)")
    parser.add_argument("--steps-per-epoch", type=int, default=15, help="steps per epoch of every run (default 15)")
    parser.add_argument("--freeze-epochs", type=int, default=2, help="backbone frozen epochs of preset_frozen")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds 0..N-1 (default 2)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    parser.add_argument("--seed", type=int, default=0, help="the data's synth seed (default 0)")
    parser.add_argument("--recipe", default="demo_cpu", help="the training preset of every run (default demo_cpu)")
    return parser.parse_args(argv)


def check_held_out(args) -> None:
    """Refuse a preset that saw the target look: the curve would measure memory, not transfer."""
    from xray_seg.core.errors import ConfigError
    from xray_seg.core.pretrained_presets import find_preset

    preset = find_preset(args.preset_name)
    held_out = preset.manifest.get("held_out_looks") or []
    if args.look not in held_out:
        raise ConfigError(
            f"preset {args.preset_name!r} was pretrained on look {args.look!r} (held out: {held_out or 'none'})",
            path=preset.folder / "manifest.json",
            fix="choose a --look the preset never saw, or rebuild it with scripts/pretrain_preset.py --hold-out LOOK",
        )


def target_voc(args, out: Path, sizes: list[int]) -> Path:
    """The target look's VOC folder: the labelled bags, the shared val bags and a nested
    ``trainN`` split per size."""
    import json
    from dataclasses import replace

    from xray_seg.core.fileio import write_json_atomic, write_text_atomic
    from xray_seg.synthesis.scene import SynthConfig, sample_stem, synthesize

    root = out / "data"
    wanted = {"sizes": sizes, "val": args.val, "size": args.size, "seed": args.seed, "look": args.look}
    if (root / "data.json").is_file() and json.loads((root / "data.json").read_text(encoding="utf-8")) == wanted:
        return root / "voc"
    base = SynthConfig(size=args.size, seed=args.seed, scanner=args.look)
    synthesize(root / "labelme", replace(base, num=max(sizes)), force=True, progress=False)
    ex.add_val_and_convert(root, size=args.size, seed=args.seed, val=args.val, scanner=args.look)
    splits = root / "voc" / "ImageSets" / "Segmentation"
    stems = [sample_stem(i) for i in range(max(sizes))]
    for n in sizes:
        write_text_atomic(splits / f"train{n}.txt", "\n".join(stems[:n]) + "\n")
    write_json_atomic(root / "data.json", wanted)
    return root / "voc"


def run_config(args, voc: Path, arm: str, n: int, seed: int):
    from xray_seg.core.config import load_config
    from xray_seg.training.config import TrainConfig
    from xray_seg.training.config_checks import validate_train_config

    overrides = [
        f"data.voc_dir={voc}",
        f"data.train_split=train{n}",
        f"data.image_size=[{args.size},{args.size}]",
        f"seed={seed}",
        f"epochs={args.epochs}",
        f"steps_per_epoch={args.steps_per_epoch}",
        f"model.width={args.width}",
        "val_every=1",  # every epoch: the time-to-target columns read history.csv
        "num_val_images=0",
    ]
    if arm != "scratch":
        overrides.append(f"init=preset:{args.preset_name}")
    if arm == "preset_frozen":
        overrides += ["freeze=backbone", f"freeze_epochs={args.freeze_epochs}"]
    cfg = load_config(TrainConfig, args.recipe, [*overrides, *args.set])
    validate_train_config(cfg)
    return cfg


def reached(run_dir: Path, target: float) -> dict | None:
    """When val mIoU first reaches ``target``: training minutes (summed ``epoch_seconds``, which
    a loaded machine inflates) and the epoch (a count of images seen, which it does not)."""
    seconds = 0.0
    with open(run_dir / "history.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            seconds += float(row.get("epoch_seconds") or 0.0)
            if row.get("val_miou") and float(row["val_miou"]) >= target:
                return {"minutes": seconds / 60, "epoch": int(row["epoch"])}
    return None


def run_arm(args, out: Path, arm: str, n: int, seed: int, voc: Path) -> dict:
    import json

    from xray_seg.core.fileio import write_json_atomic

    run_dir = out / "runs" / f"{arm}_n{n}_seed{seed}"
    if (run_dir / RESULT_FILE).is_file():
        print(f"{arm}, {n} bags, seed {seed}: finished earlier, kept", flush=True)
        record = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
        record.pop("minutes_to", None)  # written by an earlier version of this script: read history.csv again
        record["reached"] = {str(t): reached(run_dir, t) for t in TARGETS}
        return record
    cfg = run_config(args, voc, arm, n, seed)
    print(f"\n=== {arm}, {n} labelled bags, seed {seed}: {cfg.epochs} x {cfg.steps_per_epoch} steps ===", flush=True)
    record = {"arm": arm, "labels": n, "seed": seed, **ex.train_once(cfg, run_dir, verbose=0 if args.quiet else 1)}
    record.update(ex.measure(run_dir, voc))
    record["reached"] = {str(t): reached(run_dir, t) for t in TARGETS}
    write_json_atomic(run_dir / RESULT_FILE, record)
    return record


def _minutes(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _reached(record: dict, target: str) -> str:
    """``minutes (epoch N)`` when the run reached ``target``, else ``-``."""
    hit = record["reached"][target]
    return "-" if hit is None else f"{hit['minutes']:.1f} (epoch {hit['epoch']})"


def _mean(values, fmt=ex.pct) -> str:
    values = [v for v in values if v is not None]
    return fmt(statistics.mean(values)) if values else "n/a"


def markdown(records: list, settings: dict, cpu: str) -> str:
    """``learning_curve.md``: one row per run, then the mean over seeds of each arm and size."""
    header = "| arm | labelled bags | seed | val mIoU (%) | PD@PFA5 (%) | train min | min to 0.65 | min to 0.70 |"
    rule = "|:---|---:|---:|---:|---:|---:|---:|---:|"
    rows = [
        f"| {r['arm']} | {r['labels']} | {r['seed']} | {ex.pct(r['miou'])} | {ex.pct(r['pd_at_pfa5'])} | "
        f"{_minutes((r['train_seconds'] or 0) / 60)} | {_reached(r, '0.65')} | {_reached(r, '0.7')} |"
        for r in records
    ]
    keys = sorted({(r["arm"], r["labels"]) for r in records}, key=lambda k: (ARMS.index(k[0]), k[1]))
    means = []
    for arm, n in keys:
        group = [r for r in records if (r["arm"], r["labels"]) == (arm, n)]
        means.append(
            f"| {arm} | {n} | mean of {len(group)} | {_mean(r['miou'] for r in group)} | "
            f"{_mean(r['pd_at_pfa5'] for r in group)} | {_mean(((r['train_seconds'] or 0) / 60 for r in group), _minutes)} | | |"
        )
    lines = [
        "## Learning curve on a held-out scanner look (scripts/learning_curve.py)",
        "",
        f"Target: scanner look `{settings['look']}`, default difficulty, {settings['size']} px, synth seed "
        f"{settings['seed']}; val {settings['val']} bags of that look, shared. Preset `{settings['preset_name']}`. "
        f"Every run: recipe `{settings['recipe']}`, width {settings['width']}, {settings['epochs']} epochs x "
        f"{settings['steps_per_epoch']} steps, validated each epoch; `preset_frozen` freezes the backbone for "
        f"{settings['freeze_epochs']} epochs. Extra settings: {settings['set'] or 'none'}.",
        f"CPU: {cpu}.",
        "",
        header,
        rule,
        *rows,
        "",
        "Means over seeds:",
        "",
        header,
        rule,
        *means,
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if not arms or any(a not in ARMS for a in arms):
        raise SystemExit(f"error: --arms {args.arms!r}: choose from {', '.join(ARMS)}")
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if any(arm != "scratch" for arm in arms):
        check_held_out(args)
    out = Path(args.out)
    keys = (
        "val", "size", "look", "preset_name", "epochs", "steps_per_epoch", "freeze_epochs", "width", "seed", "recipe",
    )  # fmt: skip
    settings = ex.recorded_settings(args, keys, seeds=args.seeds, arms=arms, sizes=sizes)
    ex.open_out(out, settings, resume=args.resume, force=args.force, owner="learning_curve")
    start, records = time.perf_counter(), []
    voc = target_voc(args, out, sizes)
    for seed in range(args.seeds):
        for n in sizes:
            for arm in arms:
                records.append(run_arm(args, out, arm, n, seed, voc))
    ex.write_results(
        out, "learning_curve", {"settings": settings, "runs": records}, markdown(records, settings, cpu_line()), start
    )
    return 0


if __name__ == "__main__":
    ex.run_script(main)
