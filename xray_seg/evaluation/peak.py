"""The CPU's float32 peak: named, computed from its instruction set, and measured with matmuls.

"Share of peak" (a model's FLOP/s over the machine's) needs a right FLOP count
(:mod:`xray_seg.evaluation.flops`, GFLOPs = 2 x multiply-accumulates) and a right peak.
One matmul at one size is not the peak (docs/benchmarks.md, "The FLOP counter and the
matmul peak": the best size differs by library and load), so :func:`measure_matmul_peak`
times ``n x n`` float32 matmuls (``2 n^3`` FLOPs) at several sizes, with TensorFlow (all
cores, its default thread pool) and with numpy (its BLAS), takes the best of ``repeats``
calls of each and reports the maximum over all of them.

:func:`theoretical_peak_gflops` is ``cores x clock x FLOP per cycle``, the FLOP per cycle
from the widest vector FMA the CPU reports (:func:`xray_seg.evaluation.timing.cpu_description`): 64 with AVX-512 (two
16-lane FMA units, 2 FLOPs each), 32 with AVX2+FMA, 16 with AVX, 8 otherwise. CPUs with a
single AVX-512 FMA unit reach half the AVX-512 figure; AMX and VNNI are int8/bf16 units and
do not raise the float32 peak.
"""

from __future__ import annotations

import time

import numpy as np

DEFAULT_SIZES = (512, 1024, 2048, 4096)


def fp32_flops_per_cycle(vector) -> int:
    """float32 FLOPs one core can issue per cycle, from its vector extensions (module docstring)."""
    vector = set(vector)
    if "avx512f" in vector:
        return 64
    if {"avx2", "fma"} <= vector:
        return 32
    if "avx" in vector:
        return 16
    return 8


def theoretical_peak_gflops(cpu: dict) -> float | None:
    """``cores x GHz x FLOP per cycle`` (None when the clock is unknown)."""
    if not cpu.get("mhz"):
        return None
    return cpu["cores"] * cpu["mhz"] / 1000.0 * fp32_flops_per_cycle(cpu["vector"])


def _tensorflow_matmul(n: int, seed: int):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    a = tf.constant(rng.standard_normal((n, n), dtype=np.float32))
    b = tf.constant(rng.standard_normal((n, n), dtype=np.float32))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    return lambda: matmul(a, b).numpy()


def _numpy_matmul(n: int, seed: int):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return lambda: a @ b


MATMULS = {"tensorflow": _tensorflow_matmul, "numpy": _numpy_matmul}


def measure_matmul_peak(sizes=DEFAULT_SIZES, *, repeats: int = 3, backends=("tensorflow", "numpy")) -> dict:
    """The best float32 matmul GFLOP/s over ``sizes`` x ``backends`` (module docstring).

    Returns ``{"gflops": max, "best": {"backend", "n"}, "runs": [{"backend", "n", "gflops"}]}``;
    each entry's ``gflops`` is ``2 n^3`` over the fastest of ``repeats`` calls after one warm-up.
    """
    runs = []
    for backend in backends:
        for n in sizes:
            call = MATMULS[backend](int(n), seed=int(n))
            call()  # warm-up: tracing, allocation, thread pools
            fastest = float("inf")
            for _ in range(max(1, repeats)):
                start = time.perf_counter()
                call()
                fastest = min(fastest, time.perf_counter() - start)
            runs.append({"backend": backend, "n": int(n), "gflops": 2.0 * int(n) ** 3 / fastest / 1e9})
    best = max(runs, key=lambda r: r["gflops"])
    return {"gflops": best["gflops"], "best": {"backend": best["backend"], "n": best["n"]}, "runs": runs}
