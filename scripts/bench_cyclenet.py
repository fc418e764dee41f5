#!/usr/bin/env python
"""Benchmark CycleNet on CPU: parameters, GFLOPs, latency and the deformable conv's share.

For CycleNet (default: ResNet-101, output stride 8, full width, 512x512, batch 1):

- parameters (trainable / total);
- GMACs of the whole forward pass from ``xray_seg/evaluation/flops.py`` (TensorFlow's per-op
  counts of conv/matmul ops) when that module is present, and the analytic FLOPs of the
  ADC deformable conv (``deform_conv_flops``: im2col matmul + modulated bilinear
  sampling, which TensorFlow counts only partly), printed separately;
- CPU latency: median of ``--runs`` calls of ``tf.function(model(x, training=False))``
  after ``--warmup`` calls;
- the ADC deformable conv alone (the model's own ``adc_deform`` layer, its real input
  shapes, random offsets in [-2, 2] and masks), timed the same way, and its share of
  the whole model's latency; plus the im2col memory it materialises.

Usage::

    nice .venv/bin/python scripts/bench_cyclenet.py --size 512 --runs 5
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="square input size")
    parser.add_argument("--depth", type=int, default=101, choices=(50, 101))
    parser.add_argument("--output-stride", type=int, default=8, choices=(8, 16))
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--num-classes", type=int, default=6)
    parser.add_argument("--runs", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up runs (the first also traces)")
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    return parser.parse_args(argv)


def median_seconds(fn, args, runs: int, warmup: int) -> tuple[float, list[float]]:
    for _ in range(max(1, warmup)):
        _block(fn(*args))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        _block(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _block(result):
    import tensorflow as tf

    for tensor in tf.nest.flatten(result):
        tensor.numpy()


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    import tensorflow as tf

    from xray_seg.layers.deform import deform_conv_flops
    from xray_seg.models.cyclenet import build_cyclenet

    shape = (args.size, args.size, 3)
    start = time.perf_counter()
    model = build_cyclenet(
        args.num_classes, shape, width=args.width, backbone_depth=args.depth, output_stride=args.output_stride
    )
    print(f"CycleNet-{args.depth} OS{args.output_stride} width {args.width} input {args.size}x{args.size} batch 1")
    print(f"  built in {time.perf_counter() - start:.1f} s")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    print(f"  params: {trainable / 1e6:.2f} M trainable, {total / 1e6:.2f} M total")

    deform = model.get_layer("adc_deform")
    x_shape, offset_shape, mask_shape = (tuple(t.shape) for t in deform.input)
    _, out_h, out_w, channels = x_shape
    deform_flops = deform_conv_flops(out_h, out_w, channels, deform.filters, deform.kernel_size)
    im2col_mb = 4 * out_h * out_w * deform.kernel_size**2 * channels * 4 / 2**20
    print(
        f"  ADC deformable conv: input {x_shape[1:]}, {deform.kernel_size}x{deform.kernel_size} -> {deform.filters} ch; "
        f"analytic {deform_flops / 1e9:.2f} GFLOPs; gathered neighbours {im2col_mb:.0f} MiB (float32)"
    )
    try:
        from xray_seg.evaluation.flops import count_flops
    except ImportError:
        print(
            "  whole-model GFLOPs: xray_seg/evaluation/flops.py not available; only the analytic deformable-conv count above"
        )
    else:
        counted = count_flops(model, shape)
        print(
            f"  whole model (xray_seg.evaluation.flops, conv/matmul ops): {counted.gmacs:.1f} GMACs = {counted.gflops:.1f} GFLOPs "
            f"(+ {counted.other_flops / 1e9:.1f} GFLOPs element-wise ops counted separately); "
            f"the deformable conv's sampling is mostly gathers, which TensorFlow does not count"
        )
        matmuls = {k: round(v / 2e9, 2) for k, v in counted.by_op.items() if "MatMul" in k}
        print(f"  of which matmul ops (GMACs; the deformable conv's im2col product is one): {matmuls}")

    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0, 255, (1, *shape)).astype("float32"))
    forward = tf.function(lambda t: model(t, training=False), jit_compile=args.jit)
    model_s, model_runs = median_seconds(forward, (image,), args.runs, args.warmup)
    print(
        f"  CPU latency, whole model: median {model_s * 1e3:.0f} ms over {args.runs} runs {[round(t, 2) for t in model_runs]} s"
    )

    inputs = (
        tf.constant(rng.normal(size=(1, *x_shape[1:])).astype("float32")),
        tf.constant(rng.uniform(-2, 2, size=(1, *offset_shape[1:])).astype("float32")),
        tf.constant(rng.uniform(0, 1, size=(1, *mask_shape[1:])).astype("float32")),
    )
    deform_fn = tf.function(lambda a, b, c: deform([a, b, c]), jit_compile=args.jit)
    deform_s, deform_runs = median_seconds(deform_fn, inputs, args.runs, args.warmup)
    print(
        f"  CPU latency, ADC deformable conv alone: median {deform_s * 1e3:.0f} ms "
        f"{[round(t, 3) for t in deform_runs]} s -> {100 * deform_s / model_s:.1f}% of the model"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
