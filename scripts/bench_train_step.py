#!/usr/bin/env python
"""Benchmark the training step on CPU: images/s of ``model.fit`` steps per setting.

Times the real training step of a registered model (the demo's by default: CWF-DeepLabv3+
at width 0.25, 256x256, batch 8, Adam, OHEM cross-entropy as in ``presets/demo_cpu.yaml``)
on a fixed in-memory batch, so the figure is the model + loss + optimizer cost alone,
without the input pipeline. Each setting runs in its own subprocess (a mixed-precision
policy is global), compiles with ``--warmup`` untimed steps, then times ``--runs`` blocks
of ``--steps`` steps and reports the median images/s, the spread, and the ratio to the
first setting.

Settings: ``fp32`` (float32), ``bf16`` (``mixed_bfloat16``: bfloat16 compute, float32
variables; fast on CPUs with AVX512-BF16/AMX through oneDNN), ``xla`` (``jit_compile``),
``bf16+xla``. ``--bn keras`` times each setting with Keras's unfused batch norm instead of
:class:`~xray_seg.layers.norm.BatchNorm`'s fused kernel (``--bn both``: both, so the ratio
shows what the fused kernel buys).

``--preset demo_cpu hard_cpu`` times each preset's own network, size, batch and loss (the
hard preset's is OHEM + dice) instead of the flags; its TIP pipeline runs outside the step
and is measured by ``scripts/bench_tip.py``. ``--isa native avx2`` also times every setting
with oneDNN capped at AVX2 (``ONEDNN_MAX_CPU_ISA``), which takes AVX-512 and AMX away from
the convolutions and matrix products: on an AVX-512/AMX Xeon it approximates the kernels an
AVX2-only CPU (an AMD EPYC without AVX-512) runs, though not that CPU's clock or caches.

Usage::

    .venv/bin/python scripts/bench_train_step.py --settings fp32 bf16 --runs 5
    .venv/bin/python scripts/bench_train_step.py --preset demo_cpu hard_cpu --isa native avx2 --settings fp32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = {
    "fp32": ("", False),
    "bf16": ("mixed_bfloat16", False),
    "xla": ("", True),
    "bf16+xla": ("mixed_bfloat16", True),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="*", default=["fp32", "bf16"], choices=sorted(SETTINGS))
    parser.add_argument("--model", default="cwf_deeplabv3plus")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--num-classes", type=int, default=6)
    parser.add_argument("--loss", choices=["ohem", "ce"], default="ohem")
    parser.add_argument(
        "--preset", nargs="*", default=[], help="time these presets' model, size, batch and loss instead of the flags"
    )
    parser.add_argument(
        "--isa", nargs="*", default=["native"], help="oneDNN ISA caps to time under: native, avx2, avx512_core, ..."
    )
    parser.add_argument(
        "--bn",
        choices=["fused", "keras", "both"],
        default="fused",
        help="batch norm: xray-seg's fused kernel, Keras's unfused ops, or both",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=YAML",
        help="model builder option, e.g. --option separable=false (repeatable)",
    )
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--runs", type=int, default=5, help="timed blocks (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (the first compiles)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-preset", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def time_setting(args, setting: str) -> list[float]:
    """Images/s of each timed block for one setting (runs in the current process)."""
    import keras
    import numpy as np
    import yaml

    from xray_seg.models.registry import build_model
    from xray_seg.training.losses import OhemCrossEntropy, SegmentationCrossEntropy

    setting, _, bn = setting.partition("/")
    if bn == "keras":
        from xray_seg.layers.norm import BatchNorm

        BatchNorm._can_fuse = lambda self, inputs, mask: False  # Keras's own implementation
    policy, jit = SETTINGS[setting]
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    options = {key: yaml.safe_load(value) for key, value in (o.split("=", 1) for o in args.option)}
    if args.child_preset:
        from xray_seg.core.config import load_config
        from xray_seg.training.config import TrainConfig
        from xray_seg.training.losses import loss_from_config

        cfg = load_config(TrainConfig, args.child_preset, [])
        args.model, args.width = cfg.model.name, cfg.model.width
        args.size, args.batch = int(cfg.data.image_size[0]), cfg.data.batch_size
    model = build_model(args.model, args.num_classes, (args.size, args.size, 3), width=args.width, **options)
    pixels = args.batch * args.size * args.size
    if args.child_preset:
        loss = loss_from_config(cfg.loss)
    else:
        loss = (
            OhemCrossEntropy(thresh=0.7, min_kept=pixels // 16) if args.loss == "ohem" else SegmentationCrossEntropy()
        )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=jit)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")
    labels = rng.integers(0, args.num_classes, (args.batch, args.size, args.size)).astype("int32")
    for _ in range(args.warmup):
        model.train_on_batch(images, labels)
    rates = []
    for _ in range(args.runs):
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(images, labels)
        rates.append(args.steps * args.batch / (time.perf_counter() - start))
    return rates


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(time_setting(args, args.child)))
        return 0
    print(
        f"{args.model} width {args.width} {' '.join(args.option)}, {args.size}x{args.size}, batch {args.batch}, loss {args.loss}; "
        f"{args.runs} blocks of {args.steps} steps after {args.warmup} warm-up steps"
    )
    base = None
    forwarded = list(argv if argv is not None else sys.argv[1:])
    bns = ["fused", "keras"] if args.bn == "both" else [args.bn]
    for preset in args.preset or [""]:
        for isa in args.isa:
            env = dict(os.environ)
            if isa != "native":
                env["ONEDNN_MAX_CPU_ISA"] = isa.upper()
            for setting in (f"{s}/{bn}" for s in args.settings for bn in bns):
                label = " ".join(part for part in (preset, isa if len(args.isa) > 1 else "", setting) if part)
                command = [sys.executable, __file__, *forwarded, "--child", setting, "--child-preset", preset]
                child = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
                if child.returncode != 0:
                    print(f"{label:>30}: failed\n{child.stderr[-2000:]}")
                    continue
                rates = json.loads(child.stdout.strip().splitlines()[-1])
                median = statistics.median(rates)
                base = base or median
                print(
                    f"{label:>30}: median {median:6.2f} images/s (min {min(rates):.2f}, max {max(rates):.2f}), "
                    f"{median / base:.2f}x the first row",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
