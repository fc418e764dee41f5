#!/usr/bin/env python
"""Benchmark the registered models on CPU: parameters, GFLOPs, latency, fraction of matmul peak.

For every model (full width, square input, batch 1):

- parameters and compute (GMACs; GFLOPs = 2 x GMACs, see ``xray_seg/flops.py``);
- CPU latency: median of ``--runs`` timed calls after ``--warmup`` calls, of the
  inference function ``tf.function(lambda x: model(x, training=False), jit_compile=...)``
  with XLA on and off;
- achieved GFLOP/s (= GFLOPs / latency) as a fraction of the practical peak, the GFLOP/s
  of a large float32 matmul measured in the same run (``2 n^3 / t``, median).

Targets (paper 1's "less calculation" and this project's CPU-efficiency goal), printed as
PASS/FAIL lines: CWF-DeepLabv3+ uses no more GFLOPs than DeepLabv3+ (Xception), and
CWF-DeepLabv3+ reaches at least 50% of the matmul peak (best of XLA on/off).

Usage::

    nice .venv/bin/python scripts/bench_models.py --models cwf_deeplabv3plus deeplabv3plus --runs 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_FRACTION = 0.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help="models to time (default: every registered model)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per setting (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up runs (the first also compiles)")
    parser.add_argument("--size", type=int, default=512, help="square input size (default 512)")
    parser.add_argument("--num-classes", type=int, default=6)
    parser.add_argument("--jit", choices=["both", "on", "off"], default="both", help="XLA settings to time")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n matmul peak measurement")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = TensorFlow default)")
    return parser.parse_args(argv)


def time_model(model, size: int, jit: bool, runs: int, warmup: int) -> float:
    import numpy as np
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32"))
    fn = tf.function(lambda t: model(t, training=False), jit_compile=jit)
    for _ in range(max(1, warmup)):
        fn(x).numpy()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    args = parse_args(argv)
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from xray_seg.flops import count_flops, count_params, matmul_peak_gflops
    from xray_seg.models.registry import available_models, build_model

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    names = args.models or [s.name for s in available_models()]
    jits = {"both": [False, True], "on": [True], "off": [False]}[args.jit]
    shape = (args.size, args.size, 3)

    peak_before = matmul_peak_gflops(args.matmul_size)
    print(f"matmul peak ({args.matmul_size}^3 float32): {peak_before:.1f} GFLOP/s; "
          f"cores visible: {os.cpu_count()}; load avg: {os.getloadavg()[0]:.2f}", flush=True)

    results = {}
    for name in tqdm(names, desc="models", unit="model"):
        model = build_model(name, args.num_classes, shape)
        params = sum(count_params(model))
        flops = count_flops(model, shape)
        latency = {jit: time_model(model, args.size, jit, args.runs, args.warmup) for jit in jits}
        results[name] = (params, flops, latency)
        del model
        keras.backend.clear_session()
    peak_after = matmul_peak_gflops(args.matmul_size)
    peak = max(peak_before, peak_after)
    print(f"matmul peak again after the models: {peak_after:.1f} GFLOP/s; using the higher, {peak:.1f}")

    header = f"{'model':28s} {'params M':>9s} {'GMACs':>7s} {'GFLOPs':>7s}"
    for jit in jits:
        tag = "xla" if jit else "noxla"
        header += f" {tag + ' ms':>10s} {tag + ' GF/s':>10s} {tag + ' %pk':>9s}"
    print(f"\n@ {args.size}x{args.size}, batch 1, median of {args.runs} runs")
    print(header)
    for name, (params, flops, latency) in results.items():
        line = f"{name:28s} {params / 1e6:9.2f} {flops.gmacs:7.2f} {flops.gflops:7.2f}"
        for jit in jits:
            gfs = flops.gflops / latency[jit]
            line += f" {latency[jit] * 1e3:10.1f} {gfs:10.1f} {100 * gfs / peak:8.1f}%"
        print(line)

    print()
    status = 0
    if "cwf_deeplabv3plus" in names:
        def gflops_of(name):
            if name in results:
                return results[name][1].gflops
            model = build_model(name, args.num_classes, shape)
            value = count_flops(model, shape).gflops
            keras.backend.clear_session()
            return value

        cwf, base = gflops_of("cwf_deeplabv3plus"), gflops_of("deeplabv3plus")
        ok = cwf <= base
        print(f"{'PASS' if ok else 'FAIL'}: CWF-DeepLabv3+ GFLOPs {cwf:.2f} <= DeepLabv3+ (Xception) {base:.2f}")
        status |= not ok
        _, flops, latency = results["cwf_deeplabv3plus"]
        best_jit = min(latency, key=latency.get)
        fraction = flops.gflops / latency[best_jit] / peak
        ok = fraction >= TARGET_FRACTION
        print(f"{'PASS' if ok else 'FAIL'}: CWF-DeepLabv3+ reaches {100 * fraction:.1f}% of the matmul peak "
              f"(best setting: jit_compile={best_jit}; target >= {100 * TARGET_FRACTION:.0f}%)")
        status |= not ok
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
