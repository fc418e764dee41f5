#!/usr/bin/env python
"""TIP pipeline throughput against training consumption, in one run (issue 19).

Measures on this machine, one after the other:

1. the training input pipeline of the demo preset (``presets/demo_cpu.yaml``: 256x256,
   batch 8, light augmentation, in-memory cache) with threat image projection in every
   sample (``tip_prob=1``, ``--max-threats`` threats), images/s over ``--batches`` batches
   after a warm-up epoch; the same pipeline without TIP for reference;
2. the demo model's training step (CWF-DeepLabv3+ width 0.25, Adam, OHEM as in the
   preset) on a fixed batch: images/s over ``--steps`` steps after two warm-up steps.

The TIP pipeline must stay at least 3x ahead of training (the ratio is printed; exit 1 if
below). The data are ``--num`` synthetic bags (``xray-seg synth`` defaults: 15 % clean,
some hidden and small threats), or an existing VOC folder (``--voc``).

    python scripts/bench_tip.py --num 24 --batches 12 --steps 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voc", default="", help="VOC folder (default: synthesise --num bags)")
    parser.add_argument("--num", type=int, default=24, help="synthetic bags when no --voc (default 24)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-threats", type=int, default=2)
    parser.add_argument("--batches", type=int, default=12, help="timed pipeline batches per pass")
    parser.add_argument("--passes", type=int, default=3, help="timed pipeline passes (median)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    return parser.parse_args(argv)


def synth_voc(root: Path, num: int, size: int) -> Path:
    from xray_seg.conversion.convert import ConvertConfig, convert
    from xray_seg.synthesis.scene import SynthConfig, synthesize

    synthesize(root / "labelme", SynthConfig(size=size, num=num, seed=0, workers=1), progress=False)
    convert(
        root / "labelme",
        root / "voc",
        ConvertConfig(labels=str(root / "labelme" / "labels.txt"), workers=1, val_ratio=0.2),
        progress=False,
    )
    return root / "voc"


def pipeline_rate(voc, augment, args) -> float:
    """Median images/s of the training pipeline over ``passes`` runs of ``batches`` batches."""
    from xray_seg.pipeline.dataset import make_train_dataset

    ds = make_train_dataset(
        voc, image_size=(args.size, args.size), batch_size=args.batch, augment=augment, seed=0, cache=True
    )
    it = iter(ds)
    for _ in range(args.batches):  # warm-up: fills the cache, traces the graph
        next(it)
    rates = []
    for _ in range(args.passes):
        start = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        rates.append(args.batches * args.batch / (time.perf_counter() - start))
    return statistics.median(rates)


def train_rate(num_classes: int, args) -> float:
    import keras
    import numpy as np

    from xray_seg.models.registry import build_model
    from xray_seg.training.losses import OhemCrossEntropy

    keras.utils.set_random_seed(0)
    model = build_model("cwf_deeplabv3plus", num_classes, (args.size, args.size, 3), width=0.25)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=OhemCrossEntropy(thresh=0.7, min_kept=32768))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")
    labels = rng.integers(0, num_classes, (args.batch, args.size, args.size)).astype("int32")
    for _ in range(2):
        model.train_on_batch(images, labels)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(images, labels)
    return args.steps * args.batch / (time.perf_counter() - start)


def main(argv=None) -> int:
    args = parse_args(argv)
    import dataclasses

    from xray_seg.conversion.voc import read_class_names
    from xray_seg.core.config import load_config
    from xray_seg.training.config import TrainConfig

    with tempfile.TemporaryDirectory() as tmp:
        voc = Path(args.voc) if args.voc else synth_voc(Path(tmp), args.num, args.size)
        demo = load_config(TrainConfig, "demo_cpu").data.augment
        tip = dataclasses.replace(demo, tip_prob=1.0, tip_max_threats=args.max_threats)
        started = time.perf_counter()
        plain = pipeline_rate(voc, demo, args)
        with_tip = pipeline_rate(voc, tip, args)
        train = train_rate(len(read_class_names(voc)), args)
    ratio = with_tip / train
    print(
        f"{os.cpu_count()} CPUs; {args.size}x{args.size}, batch {args.batch}, demo augmentation; data: {args.voc or f'{args.num} synthetic bags'}"
    )
    print(f"pipeline without TIP: {plain:7.1f} images/s")
    print(f"pipeline with TIP   : {with_tip:7.1f} images/s (every sample, 1..{args.max_threats} threats)")
    print(f"training (demo model): {train:6.1f} images/s")
    print(
        f"TIP pipeline / training = {ratio:.1f}x (need >= 3x): {'ok' if ratio >= 3 else 'TOO SLOW'}; {time.perf_counter() - started:.0f} s"
    )
    return 0 if ratio >= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
