#!/usr/bin/env python
"""Paper 1's claim at two seeds: CWF-DeepLabv3+ against DeepLabv3+ with the demo recipe.

Synthesises the demo's data (``--difficulty demo``: every bag holds a threat, low clutter,
nothing hidden or small, as ``xray-seg demo``; or ``default``: ``xray-seg synth``'s defaults),
or takes ``--voc``, then runs ``xray-seg compare`` on it with the ``demo_cpu`` preset at
``--seeds`` seeds (run k of every model uses seed k: the same initialisation seed and data
stream) and the budget given by ``--epochs``, ``--width`` and ``--size``. Every run is
validated at its last epoch only, so each model is evaluated as trained, not picked on val.

``OUT/compare/`` is the comparison (compare.md with Tables 2-3 as mean ± std, mIoU per seed
and CWF-DeepLabv3+ minus DeepLabv3+ seed by seed; compare.json; one run folder per model and
seed). ``OUT/compare_seeds.md`` is the part for docs/compare.md: what was run, on which CPU,
the per-seed mIoU table and the difference against the spread between seeds. ``--resume``
keeps finished runs and continues an interrupted one.

    python scripts/compare_seeds.py --out runs/compare_seeds                 # the full budget: hours on 2 cores
    python scripts/compare_seeds.py --out runs/compare_seeds --models cwf_deeplabv3plus,deeplabv3plus,unet
    python scripts/compare_seeds.py --out /tmp/cs --num-images 12 --size 32 --epochs 1 --width 0.0625 \\
        --set data.batch_size=4 --set steps_per_epoch=1 --fps-runs 1 --grid-images 0   # a smoke run
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_seg.evaluation.timing import cpu_line  # noqa: E402
from xray_seg.training.experiments import experiment_parser, open_out, recorded_settings, run_script, synth_voc  # noqa: E402

DIFFICULTIES = {  # the demo's bags (xray_seg/demo.py DemoConfig) and xray-seg synth's defaults
    "demo": {"threat_prob": 1.0, "clutter": "low", "hide_prob": 0.0, "small_threat_prob": 0.0},
    "default": {},
}


def parse_args(argv=None):
    parser = experiment_parser(__doc__, "runs", size=256)
    parser.add_argument("--difficulty", choices=sorted(DIFFICULTIES), default="demo", help="synthetic bags (demo)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every run (default 30, demo_cpu's)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 per model (default 2)")
    parser.add_argument("--models", default="cwf_deeplabv3plus,deeplabv3plus", help="registry names, in table order")
    parser.add_argument("--preset", default="demo_cpu", help="the recipe every model gets (default demo_cpu)")
    parser.add_argument("--fps-runs", type=int, default=20, help="timed batch-1 forward passes per run")
    parser.add_argument("--grid-images", type=int, default=4, help="val images in the prediction grid")
    return parser.parse_args(argv)


def snippet(document: dict, settings: dict, cpu: str, minutes: float | None) -> str:
    """``compare_seeds.md``: the setting, the CPU, the per-seed table and the claim's difference."""
    from xray_seg.training.compare_report import seed_section

    results: dict[str, list] = {}
    for run in document["runs"]:
        results.setdefault(run["model"], []).append(run)
    data = document["protocol"]["dataset"]
    lines = [
        "## Two seeds: CWF-DeepLabv3+ against DeepLabv3+ (scripts/compare_seeds.py)",
        "",
        f"Data: {settings['data']} ({data['train_images']} train / {data['val_images']} val). Recipe: preset "
        f"`{settings['preset']}` for every model, epochs {settings['epochs']}, {settings['size']} px, width "
        f"{settings['width']}, extra settings {settings['set'] or 'none'}; seeds 0..{settings['seeds'] - 1}; each run "
        "validated at its last epoch only (evaluated as trained).",
        f"CPU: {cpu}." + (f" Training and evaluation this session: {minutes:.0f} min." if minutes else ""),
        "Command: `python scripts/compare_seeds.py " + " ".join(settings["argv"]) + "`",
    ]
    return "\n".join(lines) + "\n" + seed_section(results)


def main(argv=None) -> int:
    from xray_seg.core.fileio import write_text_atomic
    from xray_seg.training.compare import CompareSettings, compare, parse_model_list

    args = parse_args(argv)
    models = parse_model_list(args.models)
    out = Path(args.out)
    synthetic = f"{args.num_images} synthetic bags of {args.size} px, {args.difficulty} difficulty, seed 0"
    keys = ("num_images", "size", "epochs", "width", "preset", "difficulty", "voc")
    settings = recorded_settings(args, keys, synthetic=synthetic, models=models, seeds=args.seeds)
    open_out(
        out,
        settings,
        resume=args.resume,
        force=args.force,
        inputs=[args.voc] if args.voc else [],
        owner="compare_seeds",
    )
    settings["argv"] = list(sys.argv[1:] if argv is None else argv)
    voc = (
        Path(args.voc)
        if args.voc
        else synth_voc(out / "data", size=args.size, num=args.num_images, seed=0, **DIFFICULTIES[args.difficulty])
    )
    overrides = [
        f"epochs={args.epochs}",
        f"model.width={args.width}",
        f"data.image_size=[{args.size},{args.size}]",
        f"val_every={args.epochs + 1}",  # last epoch only: evaluated as trained
        "num_val_images=0",
        *args.set,
    ]
    started = time.perf_counter()
    document = compare(
        CompareSettings(
            voc_dir=str(voc),
            out_dir=str(out / "compare"),
            models=tuple(models),
            preset=args.preset,
            seeds=args.seeds,
            overrides=tuple(overrides),
            fps_runs=args.fps_runs,
            grid_images=args.grid_images,
        ),
        resume=args.resume,
        verbose=0 if args.quiet else 1,
    )
    text = snippet(document, settings, cpu_line(), (time.perf_counter() - started) / 60)
    write_text_atomic(out / "compare_seeds.md", text)
    print(text)
    print(f"wrote {out}/compare_seeds.md and {out}/compare/")
    return 0


if __name__ == "__main__":
    run_script(main)
