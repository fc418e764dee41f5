#!/usr/bin/env python
"""CWF-DeepLabv3+ inference latency on the TensorFlow and JAX Keras backends, in one run (issue 21).

The same model (registry name, width, seed) is built in a child process per backend, since
Keras fixes its backend at import. Rounds alternate between the backends so that a
machine that gets busier or quieter during the run affects both alike; each round warms
up (graph tracing / XLA compilation), then times ``--runs`` calls at batch 1. It prints
each round's median and, per backend, the median over rounds and the JAX/TF ratio.

- TensorFlow: ``tf.function`` around ``model(x, training=False)`` (the Keras call the
  evaluator and ``predict`` make, with the fused batch-norm kernel).
- JAX: ``jax.jit`` around ``model.stateless_call`` (what ``scripts/bench_gpu.py`` times).

Usage::

    python scripts/bench_backends.py --size 512 --width 1.0 --rounds 3 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(args) -> dict:
    sys.path.insert(0, str(REPO))
    import keras
    import numpy as np

    from xray_seg.models.registry import build_model

    keras.utils.set_random_seed(0)
    model = build_model(args.model, 6, (args.size, args.size, 3), width=args.width)
    image = np.random.default_rng(0).uniform(0, 255, (1, args.size, args.size, 3)).astype("float32")
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]
        forward = jax.jit(lambda x: model.stateless_call(trainable, frozen, x, training=False)[0])
        x = jax.numpy.asarray(image)

        def call():
            forward(x).block_until_ready()
    else:
        import tensorflow as tf

        forward = tf.function(lambda x: model(x, training=False))
        x = tf.constant(image)

        def call():
            forward(x).numpy()

    for _ in range(args.warmup):
        call()
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {"backend": backend, "median_ms": 1e3 * float(np.median(times)), "times_ms": [1e3 * t for t in times]}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                extras = [f for f in ("avx512f", "amx_tile") if f" {f}" in flags]
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores; {', '.join(extras) or 'AVX2 only'})"
    except OSError:
        pass
    return "unknown CPU"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cwf_deeplabv3plus")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    print(f"{args.model} at {args.size}x{args.size}, width {args.width}, batch 1, on {cpu_name()}")
    medians: dict[str, list[float]] = {b: [] for b in args.backends.split(",")}
    passthrough = [
        "--model",
        args.model,
        "--size",
        str(args.size),
        "--width",
        str(args.width),
        "--runs",
        str(args.runs),
        "--warmup",
        str(args.warmup),
    ]
    for round_index in range(args.rounds):
        for backend in medians:
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
            proc = subprocess.run(
                [sys.executable, __file__, "--child", *passthrough],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            medians[backend].append(result["median_ms"])
            print(f"round {round_index + 1}: {backend:10s} median {result['median_ms']:.1f} ms", flush=True)
    import statistics

    summary = {b: statistics.median(v) for b, v in medians.items()}
    for backend, value in summary.items():
        print(f"{backend:10s} median over {args.rounds} rounds: {value:.1f} ms ({1e3 / value:.2f} FPS)")
    if {"tensorflow", "jax"} <= summary.keys():
        print(f"JAX / TensorFlow latency ratio: {summary['jax'] / summary['tensorflow']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
