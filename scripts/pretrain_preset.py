#!/usr/bin/env python
"""Rebuild the shipped synthetic-pretrained preset in one command.

Synthesises bags of every scanner look except the held-out ones (``--hold-out``, default
dual_energy_b), of mixed difficulty and belt shapes, converts them, trains CWF-DeepLabv3+
(width 0.25, 256 px) with demo_cpu's recipe plus OHEM + dice and foreground crops,
evaluates it on val and writes ``xray_seg/presets/pretrained/NAME/{model.keras,manifest.json}``
(SHA-256, this exact command, the data recipe, val mIoU and PD at PFA 5 %, CPU, minutes).
The steps and choices: ``xray_seg/training/pretrain.py``. Data and run stay under ``--work``.

    python scripts/pretrain_preset.py                       # the shipped preset (~20-25 min on 2 cores)
    nohup python scripts/pretrain_preset.py > pretrain.log 2>&1 &   # the same, in the background
    python scripts/pretrain_preset.py --quick               # the whole path in about a minute, under --work

An existing preset is refused unless ``--force``; ``--resume`` continues an interrupted run
from ``--work``. ``--quick`` writes its preset under ``--work`` unless ``--dest`` is given.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_seg.training.experiments import run_script  # noqa: E402
from xray_seg.training.pretrain import DEFAULT_NAME, PRESETS_DIR, PretrainRecipe, pretrain  # noqa: E402


def parse_args(argv=None):
    import argparse

    d = PretrainRecipe()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"preset name (default {DEFAULT_NAME})")
    parser.add_argument(
        "--hold-out",
        default=",".join(d.held_out),
        help="comma list of scanner looks kept out of the data, '' for none (default %(default)s)",
    )
    parser.add_argument("--bags", type=int, default=None, help=f"threat bags (default {d.bags}; --quick 24)")
    parser.add_argument(
        "--clean-val-bags", type=int, default=None, help=f"threat-free val bags (default {d.clean_val_bags})"
    )
    parser.add_argument("--epochs", type=int, default=None, help=f"training epochs (default {d.epochs}; --quick 2)")
    parser.add_argument("--size", type=int, default=None, help=f"bag side and training size in px (default {d.size})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"data, split and training seed (default {d.seed})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra training override")
    parser.add_argument("--work", default="", help="data and run folder (default runs/pretrain/NAME)")
    parser.add_argument("--dest", default="", help=f"folder of presets (default {PRESETS_DIR}; --quick: WORK/presets)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 24 + 4 bags of 64 px, 2 epochs")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--force", action="store_true", help="rebuild an existing preset and --work")
    group.add_argument("--resume", action="store_true", help="continue an interrupted run in --work")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def recipe_of(args) -> PretrainRecipe:
    given = {
        key: value
        for key, value in (
            ("bags", args.bags),
            ("clean_val_bags", args.clean_val_bags),
            ("epochs", args.epochs),
            ("size", args.size),
        )
        if value is not None
    }
    held_out = tuple(look.strip() for look in args.hold_out.split(",") if look.strip())
    common = {"name": args.name, "held_out": held_out, "seed": args.seed, "extra": list(args.set), **given}
    return PretrainRecipe.quick(**common) if args.quick else PretrainRecipe(**common)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    work = Path(args.work or f"runs/pretrain/{args.name}")
    dest = Path(args.dest) if args.dest else (work / "presets" if args.quick else PRESETS_DIR)
    # the command that rebuilds it: what was typed, less --resume (an interruption changes nothing)
    command = shlex.join(["python", "scripts/pretrain_preset.py", *(a for a in argv if a != "--resume")])
    pretrain(
        recipe_of(args),
        work=work,
        dest_root=dest,
        command=command,
        force=args.force,
        resume=args.resume,
        progress=not args.quiet,
    )
    return 0


if __name__ == "__main__":
    run_script(main)
