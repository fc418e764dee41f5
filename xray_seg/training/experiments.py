"""Shared by the experiment scripts (``scripts/ablate_hard.py``, ``compare_seeds.py``, ``lowlabel_tip.py``):
one synthetic VOC folder, a folder owned by the script, training a run once and measuring it on val.

Each script writes everything under its ``--out`` (docs/architecture.md, "Data safety"):
the folder gets xray-seg's output marker, an existing one is refused unless ``--resume``
(keep what is finished) or ``--force`` (replace a folder xray-seg made), and a ``--voc``
input may not lie inside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from xray_seg.conversion.convert import ConvertConfig, convert
from xray_seg.core.errors import ConfigError, XraySegError
from xray_seg.core.fileio import prepare_output_dir, write_json_atomic, write_text_atomic
from xray_seg.evaluation.evaluator import evaluate
from xray_seg.evaluation.timing import cpu_line
from xray_seg.synthesis.scanners import DEFAULT_LOOK
from xray_seg.synthesis.scene import SynthConfig, sample_stem, synthesize, write_samples
from xray_seg.training.compare import run_stage
from xray_seg.training.trainer import resume_config, train

SETTINGS_FILE = "settings.json"
#: First image index of the shared val bags (:func:`add_val_and_convert`): never a training bag.
VAL_START = 100_000


def run_script(main) -> None:
    """``sys.exit(main())``, a user error printed as its one line with exit code 2."""
    try:
        sys.exit(main())
    except XraySegError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(2)


def experiment_parser(doc: str, unit: str, *, size: int, synthetic: bool = True) -> argparse.ArgumentParser:
    """A parser with what every experiment takes: ``--out``, ``--size``, ``--width`` and
    :func:`add_run_arguments`; with ``synthetic`` also ``--voc`` and ``--num-images``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    if synthetic:
        parser.add_argument("--voc", default="", help="a VOC folder to use instead of synthesising one")
        parser.add_argument("--num-images", type=int, default=600, help="synthetic bags (default 600, as the demo)")
    parser.add_argument("--size", type=int, default=size, help=f"bag and training size in px (default {size})")
    parser.add_argument(
        "--width", type=float, default=0.25, help=f"model width of every one of the {unit} (default 0.25)"
    )
    add_run_arguments(parser, unit)
    return parser


def add_run_arguments(parser, unit: str = "runs") -> None:
    """The options every experiment script shares: ``--set``, ``--resume`` | ``--force``, ``--quiet``."""
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help=f"override for every one of the {unit}"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help=f"keep finished {unit} in --out and continue")
    group.add_argument("--force", action="store_true", help="replace an existing --out that xray-seg made")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress bars")


def synth_voc(root: Path, *, size: int, num: int, seed: int, **difficulty) -> Path:
    """``num`` synthetic bags of ``size`` px (``xray-seg synth`` defaults unless ``difficulty``
    says otherwise) converted to ``root/voc`` (7:3 split, seed ``seed``); reused when
    ``root/voc`` is complete from an earlier, identical call."""
    voc = root / "voc"
    synth = SynthConfig(size=size, num=num, seed=seed, **difficulty)
    stamp = root / "data.json"
    wanted = {"size": size, "num": num, "seed": seed, **difficulty}
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == wanted:
        return voc
    synthesize(root / "labelme", synth, force=True, progress=False)
    report = convert(
        root / "labelme", voc, ConvertConfig(labels=str(root / "labelme" / "labels.txt"), seed=seed, force=True)
    )
    print(report.summary(), flush=True)
    write_json_atomic(stamp, wanted)
    return voc


def add_val_and_convert(root: Path, *, size: int, seed: int, val: int, scanner: str = DEFAULT_LOOK) -> Path:
    """Add ``val`` bags of ``size`` px and default difficulty (images from :data:`VAL_START`,
    synth seed ``seed``, scanner look ``scanner``) to ``root/labelme`` and convert that folder
    into ``root/voc``: those bags are the val split (``val_stems``), every other bag there the
    train split."""
    from dataclasses import replace

    val_indices = range(VAL_START, VAL_START + val)
    bags = replace(SynthConfig(size=size, seed=seed, scanner=scanner), num=val)
    write_samples(root / "labelme", bags, val_indices, progress=False)
    config = ConvertConfig(
        labels=str(root / "labelme" / "labels.txt"),
        val_ratio=0.0,
        val_stems=[sample_stem(i) for i in val_indices],
        force=True,
    )
    print(convert(root / "labelme", root / "voc", config, progress=False).summary(), flush=True)
    return root / "voc"


def budget_overrides(voc: Path, *, size: int, seed: int, steps: int, steps_per_epoch: int, width: float) -> list:
    """The ``key=value`` overrides of a run of ``steps`` steps (``epochs`` x ``steps_per_epoch``) on
    ``voc`` at ``size`` px and ``width``, validated at its last epoch only (evaluated as trained)."""
    epochs = max(1, steps // steps_per_epoch)
    return [
        f"data.voc_dir={voc}",
        f"data.image_size=[{size},{size}]",
        f"seed={seed}",
        f"epochs={epochs}",
        f"steps_per_epoch={steps_per_epoch}",
        f"model.width={width}",
        f"val_every={epochs + 1}",
        "num_val_images=0",
    ]


def recorded_settings(args, keys, *, synthetic: str | None = None, **extra) -> dict:
    """What an experiment records in ``settings.json``: ``keys`` of ``args``, then with ``synthetic`` a
    ``data`` note (the ``--voc`` given, else that description of the synthetic bags), its ``--set``
    overrides and ``extra``."""
    settings = {k: getattr(args, k) for k in keys}
    if synthetic is not None:
        settings["data"] = f"VOC {args.voc}" if args.voc else synthetic
    return {**settings, "set": list(args.set), **extra}


def open_out(out: Path, settings: dict, *, resume: bool, force: bool, inputs=(), owner: str) -> Path:
    """Create ``out`` (refusing an existing one unless ``resume``/``force``) and record
    ``settings``; on ``resume`` the recorded settings must be the same, except ``variants``
    or ``models``/``seeds``, which may grow."""
    path = out / SETTINGS_FILE
    if resume and path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        growable = {"variants", "models", "seeds", "extra_variants"}
        changed = sorted(
            k for k in set(before) | set(settings) if k not in growable and before.get(k) != settings.get(k)
        )
        if changed:
            raise ConfigError(
                f"--resume with different settings ({', '.join(changed)}) than the earlier run",
                path=path,
                fix="resume with the same settings, or choose a new --out (or --force to start again)",
            )
    prepare_output_dir(out, force=force, resume=resume, inputs=list(inputs), owner=owner, resume_flag="--resume")
    write_json_atomic(path, settings)
    return out


def train_once(cfg, run_dir: Path, verbose: int) -> dict:
    """Train ``cfg`` into ``run_dir`` unless it is trained already; resume an interrupted run
    (the trainer's exact resume). Returns training seconds and images/s of this session."""
    stage = run_stage(run_dir, cfg.epochs)
    if stage == "evaluate":
        return {"train_seconds": None, "train_images_per_sec": None, "note": "trained in an earlier session"}
    if stage == "resume":
        result = train(resume_config(run_dir), run_dir, resume=True, verbose=verbose)
    else:
        result = train(cfg, run_dir, force=True, verbose=verbose)
    return {"train_seconds": result.seconds, "train_images_per_sec": result.train_images_per_sec}


def measure(run_dir: Path, voc: Path, *, progress: bool = False) -> dict:
    """Evaluate one run on val (docs/evaluation.md): pixel metrics, PD at PFA 5 %, subsets."""
    import keras  # lazy: TensorFlow

    ev = evaluate(run_dir, voc, split="val", out_dir=run_dir / "eval-val", force=True, progress=progress)
    keras.backend.clear_session()
    table = ev.extra["subsets"]
    return {
        "miou": ev.scores["miou"],
        "mpa": ev.scores["mpa"],
        "iou": dict(zip(ev.scores["class_names"], ev.scores["iou"])),
        "pd_at_pfa5": ev.extra["screening"]["pd_at_pfa"]["overall"]["0.05"],
        "val_images": ev.num_images,
        "subsets": {
            name: {"images": row["images"], "miou": row["miou"], "pd_at_pfa5": row["pd_at_pfa"]["0.05"]}
            for name, row in table.items()
            if name != "all"
        },
    }


def pct(value, decimals: int = 2) -> str:
    """A fraction as a percentage, ``n/a`` for None or NaN."""
    if value is None or value != value:
        return "n/a"
    return f"{100 * value:.{decimals}f}"


def write_results(out: Path, stem: str, document: dict, text: str, started: float) -> None:
    """``OUT/<stem>.json`` (``document`` with the CPU measured on) and ``OUT/<stem>.md``, printed."""
    write_json_atomic(out / f"{stem}.json", {**document, "cpu": cpu_line()})
    write_text_atomic(out / f"{stem}.md", text)
    print(text)
    print(f"wrote {out}/{stem}.md, {stem}.json ({time.perf_counter() - started:.0f} s this session)")
