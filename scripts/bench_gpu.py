#!/usr/bin/env python
"""Inference FPS and training throughput of paper 1's models under the JAX backend (issue 21).

Made for the accelerator machine that has JAX and no TensorFlow: it imports only Keras,
JAX, numpy and ``xray_seg.models`` (which use ``keras.ops`` alone), so copying the
project there is enough. It also runs on a CPU (that is how the tests check it, at a tiny
size).

What it measures, each with warm-up calls first (compilation), then ``--runs`` timed
calls synchronised with ``block_until_ready``; it prints the median and the spread
(25th-75th percentile) and writes everything to ``--out`` as JSON:

- inference FPS (images/s) of every paper-1 model (CWF-DeepLabv3+, DeepLabv3+,
  MobileNetV2-DeepLabv3+, UNet, BiSeNetV2) at ``--size`` (512 by default) for each batch
  size in ``--batch-sizes`` (1 and 16) and each dtype in ``--dtypes`` (float32 and
  bfloat16; bfloat16 is Keras's ``mixed_bfloat16`` policy: bf16 compute, float32
  variables and float32 logits);
- training images/s of CWF-DeepLabv3+ at ``--train-batch`` (16): one jitted step of
  forward, softmax cross-entropy, backward and an Adam update.

Paper 1 reports 12.12 FPS for CWF-DeepLabv3+ on a GTX 1080 Ti (section 4.4); the target
on an H200-class GPU is 300 FPS at 512x512, batch 1.

Usage (on the GPU machine)::

    KERAS_BACKEND=jax python scripts/bench_gpu.py --out bench_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

PAPER1_MODELS = ("cwf_deeplabv3plus", "deeplabv3plus", "mobilenetv2_deeplabv3plus", "unet", "bisenetv2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="square input size (default 512)")
    parser.add_argument("--width", type=float, default=1.0, help="model width multiplier (1.0 = paper size)")
    parser.add_argument("--num-classes", type=int, default=6, help="classes incl. background (paper 1: 6)")
    parser.add_argument("--models", default=",".join(PAPER1_MODELS), help="comma-separated registry names")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per setting")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (compilation)")
    parser.add_argument("--train-batch", type=int, default=16, help="batch of the training measurement (0: skip)")
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    return parser.parse_args(argv)


def device_name() -> str:
    import jax

    device = jax.devices()[0]
    kind = getattr(device, "device_kind", "") or device.platform
    if device.platform == "cpu":
        return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores): {kind}"
    return f"{kind} x{len(jax.devices())}" if len(jax.devices()) > 1 else kind


def spread(seconds: list[float], images: int) -> dict:
    times = np.asarray(seconds)
    q25, med, q75 = np.percentile(times, [25, 50, 75])
    return {
        "median_ms": 1e3 * med,
        "q25_ms": 1e3 * q25,
        "q75_ms": 1e3 * q75,
        "fps": images / med,
        "fps_q25_q75": [images / q75, images / q25],
    }


def timed(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def build(name: str, args, dtype: str):
    import keras

    from xray_seg.models.registry import build_model

    keras.config.set_dtype_policy("mixed_bfloat16" if dtype == "bfloat16" else "float32")
    keras.utils.set_random_seed(0)
    return build_model(name, args.num_classes, (args.size, args.size, 3), width=args.width)


def inference_fps(name: str, args, dtype: str, batch: int) -> dict:
    import jax

    model = build(name, args, dtype)
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(images):
        out, _ = model.stateless_call(trainable, frozen, images, training=False)
        return out["logits"] if isinstance(out, dict) else out

    images = jax.numpy.asarray(np.random.default_rng(0).uniform(0, 255, (batch, args.size, args.size, 3)), "float32")
    return spread(timed(lambda: forward(images).block_until_ready(), args.runs, args.warmup), batch)


def training_images_per_sec(args) -> dict:
    import jax
    import keras

    model = build("cwf_deeplabv3plus", args, "float32")
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    images = jax.numpy.asarray(rng.uniform(0, 255, (args.train_batch, args.size, args.size, 3)), "float32")
    labels = jax.numpy.asarray(rng.integers(0, args.num_classes, (args.train_batch, args.size, args.size)), "int32")

    def loss_of(trainable, frozen):
        logits, frozen = model.stateless_call(trainable, frozen, images, training=True)
        logits = logits["logits"] if isinstance(logits, dict) else logits
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        return loss, frozen

    @jax.jit
    def step(state):
        trainable, frozen, opt_vars = state
        (loss, frozen), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable, frozen)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, frozen, opt_vars)

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    holder = {"state": state}

    def one_step():
        loss, holder["state"] = step(holder["state"])
        loss.block_until_ready()
        holder["loss"] = float(loss)

    result = spread(timed(one_step, args.train_steps, args.warmup), args.train_batch)
    result["images_per_sec"] = result.pop("fps")
    result["images_per_sec_q25_q75"] = result.pop("fps_q25_q75")
    result["final_loss"] = holder["loss"]
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    import jax
    import keras

    if keras.backend.backend() != "jax":
        print("error: run with KERAS_BACKEND=jax", file=sys.stderr)
        return 2
    device = device_name()
    print(
        f"device: {device}; jax {jax.__version__}, keras {keras.__version__}; "
        f"{args.size}x{args.size}, width {args.width}, {args.num_classes} classes"
    )
    results = {
        "device": device,
        "jax": jax.__version__,
        "keras": keras.__version__,
        "size": args.size,
        "width": args.width,
        "num_classes": args.num_classes,
        "inference": [],
        "training": None,
    }
    print(f"{'model':28s} {'dtype':9s} {'batch':>5s} {'median ms':>10s} {'FPS':>9s}  FPS q25-q75")
    for name in args.models.split(","):
        for dtype in args.dtypes.split(","):
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                row = {"model": name, "dtype": dtype, "batch": batch, **inference_fps(name, args, dtype, batch)}
                results["inference"].append(row)
                low, high = row["fps_q25_q75"]
                print(
                    f"{name:28s} {dtype:9s} {batch:5d} {row['median_ms']:10.2f} {row['fps']:9.1f}  {low:.1f}-{high:.1f}",
                    flush=True,
                )
    if args.train_batch:
        results["training"] = {"model": "cwf_deeplabv3plus", "batch": args.train_batch, **training_images_per_sec(args)}
        t = results["training"]
        print(
            f"training cwf_deeplabv3plus, batch {args.train_batch}: {t['images_per_sec']:.1f} images/s "
            f"(median step {t['median_ms']:.1f} ms)"
        )
    results["tensorflow_imported"] = "tensorflow" in sys.modules
    keras.config.set_dtype_policy("float32")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
