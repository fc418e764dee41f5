#!/usr/bin/env python
"""Which optimised SavedModel is faster: batch norm folded into the convolutions, or frozen signatures?

Builds CWF-DeepLabv3+ (default: full width, 512x512, 6 classes, random weights), writes in
one process

- ``savedmodel``: today's export (:func:`xray_seg.serving.savedmodel.write_savedmodel`);
- ``frozen signatures``: each signature of today's SavedModel frozen
  with ``convert_variables_to_constants_v2`` and saved again (:func:`freeze_signatures`;
  Grappler optimises it at load time as it does any graph);
- ``savedmodel_optimized``: what ``xray-seg export`` writes (:mod:`xray_seg.serving.optimize`:
  the network frozen, batch norm folded into each convolution's filter and bias,
  Grappler's device-independent passes offline, the same serving graph around it);

and times ``serving_default`` on one uint8 512x512 scan (one tile: the plain forward pass
plus softmax, argmax, class counts and the in-graph alarm) in interleaved rounds, beside
the Keras model's ``tf.function`` (logits only). Medians of ``--runs`` with the
10th-90th percentile spread, the CPU named.

The classifier is set to predict background everywhere (``--random-head`` keeps it random):
the in-graph alarm labels the connected components of every threat class, and a random head
paints the scan with components hundreds of pixels long, whose labelling would hide the
network being measured. Latency of the network does not depend on the weights.

    nice .venv/bin/python scripts/bench_optimized_savedmodel.py            # full width, 512x512
    nice .venv/bin/python scripts/bench_optimized_savedmodel.py --width 0.25 --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from xray_seg.evaluation.timing import cpu_line, load_line, time_rounds  # noqa: E402

CLASS_NAMES = ["_background_", "gun", "knife", "wrench", "pliers", "scissors"]


def freeze_signatures(savedmodel_dir: Path, target: Path) -> None:
    """Option (b): every signature frozen (variables -> constants) and saved with its input
    signature and output names; no explicit batch-norm fold."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(str(savedmodel_dir))
    signatures = {}
    for name, fn in loaded.signatures.items():
        frozen = convert_variables_to_constants_v2(fn)
        keys = sorted(fn.structured_outputs)
        specs = fn.structured_input_signature[1]

        def call(*args, frozen=frozen, keys=keys):
            return dict(zip(keys, frozen(*args), strict=True))

        wrapped = tf.function(call, input_signature=[specs[n] for n in sorted(specs)], autograph=False)
        signatures[name] = wrapped.get_concrete_function()
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(tf.Module(), str(target), signatures=signatures, options=options)


def build(args, out: Path):
    from xray_seg.models.registry import build_model
    from xray_seg.serving.export_metadata import build_metadata
    from xray_seg.serving.export_source import ExportSource
    from xray_seg.serving.optimize import write_optimized_savedmodel
    from xray_seg.serving.savedmodel import write_savedmodel

    size = (args.size, args.size)
    model = build_model(args.model, len(CLASS_NAMES), (*size, 3), width=args.width)
    if not args.random_head:
        head = [layer for layer in model.layers if layer.weights][-1]
        weights = [np.zeros(w.shape, np.float32) for w in head.weights]
        weights[-1][0] = 1.0  # bias of the background logit: every pixel is background
        head.set_weights(weights)
    source = ExportSource(model, out / "model.keras", CLASS_NAMES, args.model, size)
    metadata = build_metadata(source)
    start = time.perf_counter()
    write_savedmodel(source, out, metadata)
    print(f"savedmodel written in {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    freeze_signatures(out / "savedmodel", out / "frozen_signatures")
    print(f"frozen signatures written in {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    _, info = write_optimized_savedmodel(source, out, metadata)
    print(f"savedmodel_optimized written in {time.perf_counter() - start:.1f} s: {info}", flush=True)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cwf_deeplabv3plus")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (median reported; at least 5)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--random-head", action="store_true", help="keep the random classifier (module docstring)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    out = Path(tempfile.mkdtemp(prefix="bench_optimized_"))
    try:
        model = build(args, out)
        image = np.random.default_rng(0).integers(0, 256, (1, args.size, args.size, 3), dtype=np.uint8)
        pixels, images = tf.constant(image.astype(np.float32)), tf.constant(image)
        forward = tf.function(lambda x: model(x, training=False))
        paths = {"keras tf.function (logits)": lambda: forward(pixels).numpy()}
        for name, folder in (
            ("savedmodel", "savedmodel"),
            ("frozen signatures (b)", "frozen_signatures"),
            ("savedmodel_optimized", "savedmodel_optimized"),
        ):
            serve = tf.saved_model.load(str(out / folder)).signatures["serving_default"]
            paths[name] = lambda serve=serve: serve(images=images)["class_map"].numpy()
        timings = time_rounds(paths, args.runs, args.warmup)  # interleaved: load hits every path alike
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"\n{args.model} width {args.width:g}, {args.size}x{args.size}, batch 1, serving_default on uint8")
    print(f"CPU: {cpu_line()}; {load_line()} at the end")
    medians = {name: timing.median_s for name, timing in timings.items()}
    for name, t in timings.items():
        print(f"{name:30s} median {1000 * t.median_s:8.1f} ms   p10-p90 {1000 * t.p10_s:.1f}-{1000 * t.p90_s:.1f} ms")
    base = medians["savedmodel"]
    for name in ("frozen signatures (b)", "savedmodel_optimized"):
        print(f"{name}: {base / medians[name]:.2f}x faster than savedmodel")
    print(
        f"savedmodel_optimized: {medians['keras tf.function (logits)'] / medians['savedmodel_optimized']:.2f}x "
        "faster than the Keras tf.function"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
