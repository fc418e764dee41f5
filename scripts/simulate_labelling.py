#!/usr/bin/env python
"""Simulated labelling rounds: ``xray-seg rank`` picks, ``predict --labelme`` pre-annotates,
the synthetic truth labels; does ranking save labels, and how much drawing do pre-annotations save?

Data (synthetic, ``xray-seg synth``'s default difficulty, seed ``--seed``): a pool of
``--pool`` bags (images ``0..``) and ``--val`` bags from image 100000 on (with the default
15 % clean bags, so PD at PFA 5 % can be measured), converted once into ``OUT/data/voc``
(val through ``val_stems``); each round's training set is a split file there,
``train_<strategy>_seed<S>_round<K>.txt``, so nothing is reconverted.

For each training seed ``S`` in ``0..--seeds-1`` and strategy of ``--strategies`` (``random``
and the product's ``uncertainty`` by default; ``screening`` too):

- round 0: ``--start`` pool bags drawn at random (seed ``S``; the same for every strategy,
  and its run is shared by them);
- round K: train ``--steps`` steps (``epochs`` x ``--steps-per-epoch``) on the labelled bags,
  starting from round K-1's run (``TrainConfig.init``, its best weights; a fresh learning-rate
  schedule each round), or from scratch with ``--no-init``; evaluate val (mIoU, PD at PFA 5 %);
- then ``Segmenter.rank`` the unlabelled rest of the pool (the unlabelled scans passed, the
  labelled ones left out) with the strategy (seed ``S``) and take its ``--add`` picks;
  ``Segmenter.pre_annotate`` them and review the pre-annotations against the bags' synthetic
  Labelme truth (:mod:`xray_seg.evaluation.pre_annotation_review`: true items accepted as is
  at IoU >= 0.5 of the right class, predicted shapes deleted, vertices to add or move); the
  picks join the labelled set with their TRUE labels. The last round's picks are reviewed
  too but not trained on.

Goals, stated before measuring: the best non-random strategy reaches random's last-round
mIoU (mean over seeds) at least one round earlier; at least 70 % of true items are accepted
as they are in the pre-annotations of the models of round 2 on (pooled over seeds).

``OUT/simulate_labelling.md`` and ``.json`` hold the table (per strategy, seed and round, and
the means), the goals and the CPU; ``OUT/runs/`` the run folders, ``OUT/picks/`` each round's
ranking and pre-annotations. ``--resume`` keeps finished rounds.

    python scripts/simulate_labelling.py --out runs/simulate_labelling      # 1000 + 100 bags, 2 seeds
    python scripts/simulate_labelling.py --out /tmp/sim --pool 40 --val 8 --size 64 --width 0.0625 \\
        --start 8 --add 8 --steps 4 --steps-per-epoch 2 --set data.batch_size=4 --seeds 1 --rounds 2  # smoke
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

STRATEGIES = ("random", "uncertainty", "screening")
RESULT_FILE = "round_result.json"
PICK_FILE = "pick.json"
ACCEPT_GOAL, GOAL_FROM_ROUND = 0.70, 2


def parse_args(argv=None):
    parser = ex.experiment_parser(__doc__, "rounds", size=128, synthetic=False)
    parser.add_argument("--pool", type=int, default=1000, help="unlabelled pool bags (default 1000)")
    parser.add_argument("--val", type=int, default=100, help="val bags, default difficulty (default 100)")
    parser.add_argument("--start", type=int, default=50, help="labelled bags of round 0 (default 50)")
    parser.add_argument("--add", type=int, default=50, help="bags picked and labelled each round (default 50)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of --add after round 0 (default 4)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of every round (default 300)")
    parser.add_argument("--steps-per-epoch", type=int, default=30, help="steps per epoch (default 30)")
    parser.add_argument("--strategies", default="random,uncertainty", help=f"comma-separated, of {STRATEGIES}")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds 0..N-1 (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="the data's synth seed (default 0)")
    parser.add_argument("--preset", default="demo_cpu", help="the recipe of every round (default demo_cpu)")
    parser.add_argument("--no-init", action="store_true", help="train every round from scratch")
    parser.add_argument(
        "--min-area", type=int, default=0, help="pre-annotation --min-area (0: 50 px at 256 px, scaled)"
    )
    args = parser.parse_args(argv)
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not args.strategies or any(s not in STRATEGIES for s in args.strategies) or "random" not in args.strategies:
        parser.error(f"--strategies: random and at least one of {', '.join(STRATEGIES[1:])}, comma-separated")
    if args.start < 1 or args.add < 1 or args.rounds < 1 or args.start + args.rounds * args.add > args.pool:
        parser.error("--start, --add and --rounds must be positive and --start + --rounds x --add fit in --pool")
    args.min_area = args.min_area or max(1, round(50 * (args.size / 256) ** 2))
    return args


def simulation_data(args, out: Path) -> tuple[Path, Path]:
    """``(labelme folder, VOC folder)``: pool and val bags synthesised and converted once."""
    from dataclasses import replace

    from xray_seg.core.fileio import write_json_atomic
    from xray_seg.synthesis.scene import SynthConfig, synthesize

    root = out / "data"
    wanted = {k: getattr(args, k) for k in ("pool", "val", "size", "seed")}
    if (root / "data.json").is_file() and json.loads((root / "data.json").read_text(encoding="utf-8")) == wanted:
        return root / "labelme", root / "voc"
    synthesize(root / "labelme", replace(SynthConfig(size=args.size, seed=args.seed), num=args.pool), force=True)
    voc = ex.add_val_and_convert(root, size=args.size, seed=args.seed, val=args.val)
    write_json_atomic(root / "data.json", wanted)
    return root / "labelme", voc


def round_config(args, voc: Path, split: str, seed: int, init_from: Path | None):
    from xray_seg.core.config import load_config
    from xray_seg.training.config import TrainConfig
    from xray_seg.training.config_checks import validate_train_config

    overrides = [
        *ex.budget_overrides(
            voc, size=args.size, seed=seed, steps=args.steps, steps_per_epoch=args.steps_per_epoch, width=args.width
        ),
        f"data.train_split={split}",
        f"data.augment.tip_library_split={split}",  # TIP (if the preset uses it) cuts labelled threats only
        *([f"init={init_from}"] if init_from is not None else []),
        *args.set,
    ]
    cfg = load_config(TrainConfig, args.preset, overrides)
    validate_train_config(cfg)
    return cfg


def train_round(args, voc: Path, run_dir: Path, split: str, labelled: list, seed: int, init_from) -> dict:
    """Train and evaluate one round's model unless an earlier session finished it."""
    from xray_seg.conversion.voc import write_split
    from xray_seg.core.fileio import write_json_atomic

    if (run_dir / RESULT_FILE).is_file():
        print(f"{run_dir}: finished earlier, kept", flush=True)
        return json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    write_split(voc, split, sorted(labelled))
    cfg = round_config(args, voc, split, seed, init_from)
    start = "from scratch" if init_from is None else f"from {init_from.name}"
    print(
        f"\n=== {split}: {len(labelled)} labelled, {cfg.epochs} x {cfg.steps_per_epoch} steps {start} ===", flush=True
    )
    record = {"labelled": len(labelled), "split": split, **ex.train_once(cfg, run_dir, verbose=0 if args.quiet else 1)}
    record.update(ex.measure(run_dir, voc))
    write_json_atomic(run_dir / RESULT_FILE, record)
    return record


def pick_round(args, labelme: Path, run_dir: Path, pick_dir: Path, unlabelled: list, strategy: str, seed: int):
    """Rank ``unlabelled`` with the round's model, pre-annotate the picks and review them."""
    import keras

    from xray_seg.core.fileio import write_json_atomic
    from xray_seg.evaluation.pre_annotation_review import review_files
    from xray_seg.segmenter import Segmenter

    if (pick_dir / PICK_FILE).is_file():
        return json.loads((pick_dir / PICK_FILE).read_text(encoding="utf-8"))
    segmenter = Segmenter.load(run_dir)
    scans = [labelme / f"{stem}.png" for stem in unlabelled]
    n = min(args.add, len(scans))
    ranking = segmenter.rank(scans, pick_dir / "rank", n=n, strategy=strategy, seed=seed, force=True, progress=False)
    chosen = list(ranking.chosen)
    pre = pick_dir / "pre"
    segmenter.pre_annotate(
        [labelme / f"{s}.png" for s in chosen], pre, min_area=args.min_area, include_annotated=True, force=True,
        progress=False,
    )  # fmt: skip
    review = review_files((pre / f"{s}.json", labelme / f"{s}.json") for s in chosen)
    record = {"chosen": chosen, **review.as_dict()}
    write_json_atomic(pick_dir / PICK_FILE, record)
    keras.backend.clear_session()
    return record


def simulate(args, out: Path, labelme: Path, voc: Path, strategy: str, seed: int) -> list:
    """Rounds 0..``--rounds`` of one strategy and seed: one record a round."""
    import numpy as np

    from xray_seg.synthesis.scene import sample_stem

    pool = [sample_stem(i) for i in range(args.pool)]
    labelled = sorted(np.random.default_rng(seed).choice(pool, args.start, replace=False).tolist())
    records, previous = [], None
    for k in range(args.rounds + 1):
        run_dir = out / "runs" / f"seed{seed}" / ("round0" if k == 0 else f"{strategy}/round{k}")
        split = f"train_seed{seed}_round0" if k == 0 else f"train_{strategy}_seed{seed}_round{k}"
        init_from = None if args.no_init else previous
        trained = train_round(args, voc, run_dir, split, labelled, seed, init_from)
        done = set(labelled)
        pick_dir = out / "picks" / f"seed{seed}" / strategy / f"round{k}"
        pick = pick_round(args, labelme, run_dir, pick_dir, [s for s in pool if s not in done], strategy, seed)
        records.append({"strategy": strategy, "seed": seed, "round": k, **trained, "pick": pick})
        labelled, previous = sorted(done | set(pick["chosen"])), run_dir
    return records


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def mean_curves(records: list) -> dict:
    """``{strategy: {round: mean val mIoU over seeds}}``."""
    curves = {}
    for r in records:
        curves.setdefault(r["strategy"], {}).setdefault(r["round"], []).append(r["miou"])
    return {s: {k: _mean(v) for k, v in rounds.items()} for s, rounds in curves.items()}


def goals(records: list, rounds: int) -> dict:
    """Whether each stated goal holds (module docstring), with the figures it rests on."""
    from xray_seg.evaluation.pre_annotation_review import Review

    curves = mean_curves(records)
    target = curves["random"][rounds]
    result = {"random_last_miou": target, "strategies": {}}
    for strategy, curve in curves.items():
        reached = next((k for k in sorted(curve) if curve[k] >= target), None)
        review = Review()
        for r in records:
            if r["strategy"] == strategy and r["round"] >= GOAL_FROM_ROUND:
                review.add(Review(**{k: r["pick"][k] for k in Review.__dataclass_fields__}))
        accepted = review.shares()["accepted_share"]
        result["strategies"][strategy] = {
            "reaches_random_last_at_round": reached,
            "saves_a_round": None if strategy == "random" else reached is not None and reached <= rounds - 1,
            "accepted_share_from_round_2": accepted,
            "accepts_70": None if accepted is None else accepted >= ACCEPT_GOAL,
        }
    return result


def _row(strategy, seed, k, labelled, miou, pd, pick) -> str:
    vertices = f"{pick['vertices']} / {pick['scratch_vertices']}" if pick else "n/a"
    pick = pick or {}
    cells = [pick.get(k) for k in ("accepted_share", "deleted_share", "saved_share")]
    return (
        f"| {strategy} | {seed} | {k} | {labelled} | {ex.pct(miou)} | {ex.pct(pd)} | "
        + " | ".join(ex.pct(c, 1) for c in cells)
        + f" | {vertices} |"
    )


def markdown(records: list, settings: dict, verdict: dict, cpu: str) -> str:
    rows = [
        _row(r["strategy"], r["seed"], r["round"], r["labelled"], r["miou"], r["pd_at_pfa5"], r["pick"])
        for r in records
    ]
    for strategy in settings["strategies"]:
        for k in range(settings["rounds"] + 1):
            rs = [r for r in records if r["strategy"] == strategy and r["round"] == k]
            pooled = {
                key: _mean(r["pick"][key] for r in rs) for key in ("accepted_share", "deleted_share", "saved_share")
            }
            pooled.update({key: sum(r["pick"][key] for r in rs) for key in ("vertices", "scratch_vertices")})
            rows.append(
                _row(
                    strategy,
                    "mean",
                    k,
                    rs[0]["labelled"],
                    _mean(r["miou"] for r in rs),
                    _mean(r["pd_at_pfa5"] for r in rs),
                    pooled,
                )
            )
    lines = [
        "## Simulated labelling rounds (scripts/simulate_labelling.py)",
        "",
        f"Data: pool of {settings['pool']} bags, val {settings['val']} bags, default difficulty, {settings['size']} px, "
        f"synth seed {settings['seed']}. Start {settings['start']} labelled, {settings['rounds']} rounds of "
        f"+{settings['add']}. Recipe: preset `{settings['preset']}`, {settings['steps']} steps a round, width "
        f"{settings['width']}, {'from scratch each round' if settings['no_init'] else 'init from the previous round'}, "
        f"extra settings {settings['set'] or 'none'}. Pre-annotation min area {settings['min_area']} px.",
        f"CPU: {cpu}.",
        "",
        "Round K: the model trained on the labelled count shown; its picks' pre-annotations against their truth:",
        "accepted = true items matched at IoU >= 0.5 with the right class; deleted = predicted shapes matched to",
        "none; saved = share of from-scratch vertices not to draw; vertices = to add or move / from scratch",
        "(mean rows: shares averaged over seeds, vertices summed).",
        "",
        "| strategy | seed | round | labelled | mIoU (%) | PD@PFA5 (%) | accepted (%) | deleted (%) | saved (%) | vertices |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *goal_lines(verdict, settings["rounds"]),
    ]
    return "\n".join(lines) + "\n"


def goal_lines(verdict: dict, rounds: int) -> list:
    def yes(flag):
        return "n/a" if flag is None else ("holds" if flag else "does not hold")

    lines = [f"Goals (random's round-{rounds} mean mIoU: {ex.pct(verdict['random_last_miou'])} %):"]
    for strategy, g in verdict["strategies"].items():
        at = g["reaches_random_last_at_round"]
        lines.append(
            f"- {strategy}: reaches it at round {'never' if at is None else at}"
            + ("" if strategy == "random" else f" (a round earlier: {yes(g['saves_a_round'])})")
            + f"; true items accepted from round {GOAL_FROM_ROUND} on: {ex.pct(g['accepted_share_from_round_2'], 1)} %"
            f" (>= 70 %: {yes(g['accepts_70'])})"
        )
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    keys = ("pool", "val", "start", "add", "rounds", "size", "steps", "steps_per_epoch", "width", "seed", "preset")
    settings = ex.recorded_settings(args, (*keys, "no_init", "min_area"), seeds=args.seeds, strategies=args.strategies)
    ex.open_out(out, settings, resume=args.resume, force=args.force, owner="simulate_labelling")
    start, records = time.perf_counter(), []
    labelme, voc = simulation_data(args, out)
    for seed in range(args.seeds):
        for strategy in args.strategies:
            records += simulate(args, out, labelme, voc, strategy, seed)
    verdict = goals(records, args.rounds)
    document = {"settings": settings, "rounds": records, "goals": verdict}
    ex.write_results(out, "simulate_labelling", document, markdown(records, settings, verdict, cpu_line()), start)
    return 0


if __name__ == "__main__":
    ex.run_script(main)
