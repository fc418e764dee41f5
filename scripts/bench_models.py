#!/usr/bin/env python
"""Benchmark the registered models on CPU: parameters, GFLOPs, latency, fraction of matmul peak.

For every model (full width, square input, batch 1):

- parameters and compute (GMACs; GFLOPs = 2 x GMACs, see ``xray_seg/evaluation/flops.py``);
- CPU latency: median of ``--runs`` timed calls after ``--warmup`` calls, of the
  inference function ``tf.function(lambda x: model(x, training=False), jit_compile=...)``
  with XLA off and on, and of the same function frozen (variables -> constants, so
  Grappler folds the inference batch norms; see :func:`inference_function`);
- achieved GFLOP/s (= GFLOPs / latency) as a fraction of the practical peak, the GFLOP/s
  of a large float32 matmul (``2 n^3 / t``) timed right before each model run, because
  the machine is shared and its free capacity changes from second to second.

Targets (paper 1's "less calculation" and this project's CPU-efficiency goal), printed as
PASS/FAIL lines: CWF-DeepLabv3+ uses no more GFLOPs than DeepLabv3+ (Xception), and
CWF-DeepLabv3+ reaches at least 50% of the matmul peak (one line per setting; the exit
status uses the best setting).

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
    parser.add_argument(
        "--jit",
        choices=["both", "on", "off", "all"],
        default="all",
        help="settings to time: XLA on/off ('both'), or also the frozen graph ('all', default)",
    )
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n matmul peak measurement")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = TensorFlow default)")
    return parser.parse_args(argv)


def inference_function(model, size: int, setting: str):
    """The compiled batch-1 inference function for a setting.

    - ``noxla``: ``tf.function(model(x, training=False), jit_compile=False)`` (the weights stay
      variables, as in a Keras model or a SavedModel);
    - ``xla``: the same with ``jit_compile=True``;
    - ``frozen``: the noxla function with its variables turned into constants
      (``convert_variables_to_constants_v2``), so that Grappler folds each inference
      batch norm into constants next to its conv (what a frozen export gets).
    """
    import tensorflow as tf

    fn = tf.function(lambda t: model(t, training=False), jit_compile=setting == "xla")
    if setting != "frozen":
        return fn
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = fn.get_concrete_function(tf.TensorSpec((1, size, size, 3), tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    return lambda t: frozen(t)[0]


def time_model(model, size: int, setting: str, runs: int, warmup: int, matmul) -> tuple[float, float]:
    """(median latency in s, median fraction of the matmul peak measured just before each run).

    The machine is shared, so every timed model run is paired with a matmul timed right
    before it; the fraction is ``(model FLOP/s) / (matmul FLOP/s)`` per pair, then the median.
    """
    import numpy as np
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32"))
    fn = inference_function(model, size, setting)
    for _ in range(max(1, warmup)):
        np.asarray(fn(x))
    times, ratios = [], []
    for _ in range(runs):
        t_matmul = matmul()
        start = time.perf_counter()
        np.asarray(fn(x))
        times.append(time.perf_counter() - start)
        ratios.append(t_matmul / times[-1])
    return statistics.median(times), ratios


def matmul_timer(n: int):
    """A function timing one ``n x n`` float32 matmul (seconds), compiled and warmed up."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((n, n), dtype=np.float32))
    b = tf.constant(rng.standard_normal((n, n), dtype=np.float32))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    np.asarray(matmul(a, b))

    def timed() -> float:
        start = time.perf_counter()
        np.asarray(matmul(a, b))
        return time.perf_counter() - start

    return timed


def main(argv=None) -> int:
    args = parse_args(argv)
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from xray_seg.evaluation.flops import count_flops, count_params
    from xray_seg.models.registry import available_models, build_model

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    names = args.models or [s.name for s in available_models()]
    settings = {"both": ["noxla", "xla"], "on": ["xla"], "off": ["noxla"], "all": ["noxla", "xla", "frozen"]}[args.jit]
    shape = (args.size, args.size, 3)
    matmul = matmul_timer(args.matmul_size)
    matmul_flops = 2 * args.matmul_size**3
    peaks = [matmul_flops / matmul() / 1e9 for _ in range(5)]
    print(
        f"matmul peak ({args.matmul_size}^3 float32): median {statistics.median(peaks):.1f} GFLOP/s "
        f"(5 runs: {', '.join(f'{p:.0f}' for p in peaks)}); cores: {os.cpu_count()}; "
        f"load avg: {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    results = {}
    for name in tqdm(names, desc="models", unit="model"):
        model = build_model(name, args.num_classes, shape)
        params = sum(count_params(model))
        flops = count_flops(model, shape)
        timing = {}
        for setting in settings:
            latency, ratios = time_model(model, args.size, setting, args.runs, args.warmup, matmul)
            fraction = statistics.median(flops.flops * r / matmul_flops for r in ratios)
            timing[setting] = (latency, fraction)
        results[name] = (params, flops, timing)
        del model
        keras.backend.clear_session()

    header = f"{'model':28s} {'params M':>9s} {'GMACs':>7s} {'GFLOPs':>7s}"
    for setting in settings:
        header += f" {setting + ' ms':>11s} {setting + ' GF/s':>11s} {setting + ' %pk':>10s}"
    print(
        f"\n@ {args.size}x{args.size}, batch 1, medians of {args.runs} runs; "
        "%pk = median over runs of (model GFLOP/s) / (matmul GFLOP/s timed just before)"
    )
    print(header)
    for name, (params, flops, timing) in results.items():
        line = f"{name:28s} {params / 1e6:9.2f} {flops.gmacs:7.2f} {flops.gflops:7.2f}"
        for setting in settings:
            latency, fraction = timing[setting]
            line += f" {latency * 1e3:11.1f} {flops.gflops / latency:11.1f} {100 * fraction:9.1f}%"
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
        timing = results["cwf_deeplabv3plus"][2]
        for setting in settings:
            fraction = timing[setting][1]
            ok = fraction >= TARGET_FRACTION
            print(
                f"{'PASS' if ok else 'FAIL'}: CWF-DeepLabv3+ [{setting}] reaches {100 * fraction:.1f}% of the "
                f"matmul peak (target >= {100 * TARGET_FRACTION:.0f}%)"
            )
        best = max(settings, key=lambda k: timing[k][1])
        status |= timing[best][1] < TARGET_FRACTION
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
