#!/usr/bin/env python
"""The hard-data ablation: ``hard_cpu`` and variants that change one factor each.

One dataset of default difficulty (``xray-seg synth`` defaults: 15 % clean bags, medium
clutter, a third hidden, one in eight small; ``--num-images`` bags of ``--size`` px, seed
``--seed``), or ``--voc`` for your own. Every variant trains the ``--preset`` recipe
(``hard_cpu``) with the same seed, epochs (the preset's unless ``--epochs``), width and
data, and changes exactly one factor:

- ``hard_cpu``: the preset as it is;
- ``tip_off``: threat image projection off (``data.augment.tip_prob=0``);
- ``ohem``: the loss is OHEM alone, demo_cpu's, instead of OHEM + dice;
- ``no_fg_crop``: no foreground-centred crops (``data.augment.foreground_crop_prob=0``);
- ``low_res``: the same bags synthesised at ``--low-size`` px (same seed: the same bags,
  classes, flags and split, drawn smaller) and trained at that size;
- ``--variant 'NAME:key=value;key=value'`` adds your own (e.g. ``ce:loss.type=ce;loss.weights=[]``).

Every run is validated at its last epoch only (``val_every`` past the budget), so each is
evaluated as trained, not picked on val. Each is then evaluated on val like ``xray-seg
evaluate``: mIoU, per-class IoU, PD at PFA 5 % overall and on the ``hidden`` and ``small``
subsets (PD on the subset's threat bags, PFA on all clean val bags; docs/evaluation.md,
"Subsets"). ``OUT/ablation.md`` and ``OUT/ablation.json`` hold the table, the budget and the
CPU; ``OUT/runs/<variant>/`` is an ordinary run folder with ``eval-val/``. ``--resume``
skips finished variants and continues an interrupted one.

    python scripts/ablate_hard.py --out runs/ablate_hard                     # the full budget: hours on 2 cores
    python scripts/ablate_hard.py --out /tmp/abl --num-images 16 --size 64 --low-size 48 \\
        --epochs 1 --width 0.0625 --set data.batch_size=4 --set steps_per_epoch=1   # a smoke run, seconds
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_seg.evaluation.timing import cpu_line  # noqa: E402
from xray_seg.training.experiments import (  # noqa: E402
    experiment_parser,
    measure,
    open_out,
    pct,
    recorded_settings,
    run_script,
    synth_voc,
    train_once,
    write_results,
)

VARIANTS = {  # name -> (what changes, overrides on top of the preset)
    "hard_cpu": ("the preset", []),
    "tip_off": ("TIP off", ["data.augment.tip_prob=0.0"]),
    "ohem": ("loss: OHEM alone (demo_cpu's)", ["loss.type=ohem", "loss.weights=[]"]),
    "no_fg_crop": ("no foreground crops", ["data.augment.foreground_crop_prob=0.0"]),
    "low_res": ("lower resolution (--low-size)", []),
}
RESULT_FILE = "ablation_result.json"


def parse_args(argv=None):
    parser = experiment_parser(__doc__, "variants", size=256)
    parser.add_argument("--low-voc", default="", help="with --voc: the same bags at a lower size (for low_res)")
    parser.add_argument("--low-size", type=int, default=192, help="size of the low_res variant (default 192)")
    parser.add_argument("--epochs", type=int, default=0, help="epochs of every variant (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0, help="data, split and training seed (default 0)")
    parser.add_argument("--preset", default="hard_cpu", help="the recipe every variant starts from")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of the variants")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:K=V;K=V", help="an extra variant")
    args = parser.parse_args(argv)
    if args.epochs <= 0:
        args.epochs = preset_epochs(args.preset)
    return args


def preset_epochs(preset: str) -> int:
    """The budget ``preset`` itself sets (``hard_cpu``: 70 epochs)."""
    from xray_seg.core.config import load_config
    from xray_seg.training.config import TrainConfig

    return int(load_config(TrainConfig, preset, []).epochs)


def chosen_variants(args) -> dict:
    """``{name: (change, overrides)}`` in table order; SystemExit for an unknown or bad one."""
    chosen = {}
    for name in [n.strip() for n in args.variants.split(",") if n.strip()]:
        if name not in VARIANTS:
            raise SystemExit(f"error: unknown variant {name!r}; choose from {', '.join(VARIANTS)} or add --variant")
        chosen[name] = VARIANTS[name]
    for spec in args.variant:
        name, sep, body = spec.partition(":")
        items = [item.strip() for item in body.split(";") if item.strip()]
        if not sep or not name.strip() or not items or any("=" not in item for item in items):
            raise SystemExit(f"error: --variant {spec!r}: write NAME:key=value;key=value")
        chosen[name.strip()] = (", ".join(items), items)
    if not chosen:
        raise SystemExit("error: no variant chosen")
    return chosen


def datasets(args, out: Path, variants: dict) -> dict:
    """``{"main": (voc, size), "low": (voc, size) or None}``: synthesised under ``out/data*`` or given."""
    need_low = "low_res" in variants
    if args.voc:
        if need_low and not args.low_voc:
            raise SystemExit("error: low_res with --voc needs --low-voc (the same bags at a lower size)")
        return {"main": (Path(args.voc), args.size), "low": (Path(args.low_voc), args.low_size) if need_low else None}
    main = synth_voc(out / "data", size=args.size, num=args.num_images, seed=args.seed)
    low = synth_voc(out / "data_low", size=args.low_size, num=args.num_images, seed=args.seed) if need_low else None
    return {"main": (main, args.size), "low": (low, args.low_size) if need_low else None}


def variant_config(args, voc: Path, size: int, overrides: list):
    """The preset with the shared budget, then the variant's one change (then ``--set``)."""
    from xray_seg.core.config import load_config
    from xray_seg.training.config import TrainConfig
    from xray_seg.training.config_checks import validate_train_config

    shared = [
        f"data.voc_dir={voc}",
        f"data.image_size=[{size},{size}]",
        f"seed={args.seed}",
        f"epochs={args.epochs}",
        f"model.width={args.width}",
        f"val_every={args.epochs + 1}",  # validated at the last epoch only: evaluated as trained
        "num_val_images=0",
    ]
    cfg = load_config(TrainConfig, args.preset, [*shared, *overrides, *args.set])
    validate_train_config(cfg)
    return cfg


def run_variant(args, out: Path, name: str, change: str, overrides: list, data: tuple) -> dict:
    """Train (or resume) and measure one variant unless an earlier session finished it."""
    from xray_seg.core.fileio import write_json_atomic

    run_dir = out / "runs" / name
    if (run_dir / RESULT_FILE).is_file():
        print(f"{name}: finished earlier, kept", flush=True)
        return json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    voc, size = data
    cfg = variant_config(args, voc, size, overrides)
    print(f"\n=== {name}: {change} ({size} px, {cfg.epochs} epochs) ===", flush=True)
    timing = train_once(cfg, run_dir, verbose=0 if args.quiet else 1)
    record = {"variant": name, "change": change, "overrides": overrides, "size": size, **timing}
    record.update(measure(run_dir, voc))
    write_json_atomic(run_dir / RESULT_FILE, record)
    return record


def markdown(records: list, settings: dict, cpu: str) -> str:
    """``ablation.md``: what was run, on what, and the table (differences against the first row)."""
    classes = [n for n in records[0]["iou"] if n != "_background_"]
    header = ["variant", "change", "mIoU (%)", "Δ mIoU (pp)"] + [f"IoU {c}" for c in classes]
    header += ["PD@PFA5 all", "PD@PFA5 hidden", "PD@PFA5 small", "mIoU hidden", "mIoU small", "train (min)"]
    base = records[0]["miou"]
    rows = []
    for r in records:
        sub = r["subsets"]
        delta = f"{100 * (r['miou'] - base):+.2f}" if r is not records[0] else "-"
        minutes = f"{r['train_seconds'] / 60:.1f}" if r.get("train_seconds") else "n/a"
        rows.append(
            [r["variant"], r["change"], pct(r["miou"]), delta]
            + [pct(r["iou"].get(c)) for c in classes]
            + [pct(r["pd_at_pfa5"])]
            + [pct(sub.get(k, {}).get("pd_at_pfa5")) for k in ("hidden", "small")]
            + [pct(sub.get(k, {}).get("miou")) for k in ("hidden", "small")]
            + [minutes]
        )
    lines = [
        "# Hard-data ablation (scripts/ablate_hard.py)",
        "",
        f"Data: {settings['data']}. Recipe: preset `{settings['preset']}`, epochs {settings['epochs']}, width "
        f"{settings['width']}, seed {settings['seed']}, extra settings {settings['set'] or 'none'}; every variant "
        "changes one factor and is evaluated on val as trained (validated at its last epoch only).",
        f"CPU: {cpu}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(":---" if i < 2 else "---:" for i in range(len(header))) + "|",
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
        "PD@PFA5: bags detected at a threshold letting at most 5 % of the clean val bags alarm; on a subset, PD on "
        "its threat bags and PFA on all clean val bags (docs/evaluation.md, Subsets). One seed: a difference "
        "smaller than the spread between seeds (scripts/compare_seeds.py) is not evidence.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    variants = chosen_variants(args)
    out = Path(args.out)
    synthetic = (
        f"{args.num_images} synthetic bags of {args.size} px at xray-seg synth's default difficulty, seed {args.seed}"
    )
    keys = ("num_images", "size", "low_size", "epochs", "width", "seed", "preset")
    settings = recorded_settings(args, keys, synthetic=synthetic, voc=args.voc, variants=list(variants))
    open_out(
        out,
        settings,
        resume=args.resume,
        force=args.force,
        inputs=[p for p in (args.voc, args.low_voc) if p],
        owner="ablate_hard",
    )
    data = datasets(args, out, variants)
    start, records = time.perf_counter(), []
    for name, (change, overrides) in variants.items():
        records.append(run_variant(args, out, name, change, overrides, data["low" if name == "low_res" else "main"]))
    write_results(
        out, "ablation", {"settings": settings, "variants": records}, markdown(records, settings, cpu_line()), start
    )
    return 0


if __name__ == "__main__":
    run_script(main)
