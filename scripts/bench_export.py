"""Latency of an exported model vs the Keras model: batch 1, one image, CPU/GPU as available.

Builds the model (default: the real CWF-DeepLabv3+ at full width, 512x512, 6 classes,
random weights - latency does not depend on the weights) or takes a trained run folder,
exports it with ``xray_seg.serving.exporter.export_model`` (SavedModel + TFLite variants), and
times in one process, round-robin so that load from other processes hits every path alike:

- ``keras tf.function``: ``tf.function(lambda x: model(x, training=False))`` on float32
  pixels (the fastest Keras path; logits only);
- ``keras predict_on_batch``: what ``xray_seg.inference.loader`` uses for a .keras model;
- ``savedmodel serving_default``: the exported signature on uint8 pixels, including the
  geometry rule (at the model size: one tile, the plain forward pass), softmax, argmax and
  class counts (``scripts/bench_station_geometry.py`` times full-width belt scans);
- ``tflite <variant>``: ``tf.lite.Interpreter`` (XNNPACK, all cores) on uint8 pixels.

Target: SavedModel latency <= 1.1 x the fastest Keras path (PASS/FAIL printed).

    nice .venv/bin/python scripts/bench_export.py                   # width 1.0, 512x512
    nice .venv/bin/python scripts/bench_export.py --width 0.25 --runs 20
    nice .venv/bin/python scripts/bench_export.py --run /tmp/demo/run --size 256
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from xray_seg.evaluation.timing import cpu_line, time_rounds  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cwf_deeplabv3plus")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=512, help="input height = width (default 512)")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--run", help="a trained run folder instead of a freshly built model")
    parser.add_argument("--runs", type=int, default=10, help="timed calls per path (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-tflite", action="store_true")
    parser.add_argument("--keep", help="keep the export in this folder (default: a temporary one)")
    return parser.parse_args(argv)


def random_run(args, work: Path) -> Path:
    """A run folder holding ``--model`` at ``--width`` and ``--size`` with random weights."""
    from xray_seg.core.config import save_config
    from xray_seg.core.layouts import RunLayout
    from xray_seg.models.registry import build_model
    from xray_seg.training.config import TrainConfig

    run = work / "run"
    run.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = build_model(args.model, args.classes, (args.size, args.size, 3), width=args.width)
    model.save(RunLayout(run).best_model)
    names = ["_background_"] + [f"c{i}" for i in range(1, args.classes)]
    RunLayout(run).class_names_file.write_text("\n".join(names) + "\n")
    cfg = TrainConfig()
    cfg.model.name, cfg.model.width, cfg.data.image_size = args.model, args.width, (args.size, args.size)
    save_config(cfg, RunLayout(run).config_file)
    print(
        f"built {args.model} width {args.width} at {args.size}x{args.size}: "
        f"{model.count_params() / 1e6:.2f} M parameters ({time.perf_counter() - t0:.0f} s)"
    )
    return run


def candidates(run: Path, result) -> dict:
    """The paths timed (module docstring), each an argument-less call on one random uint8 image."""
    import keras
    import tensorflow as tf

    from xray_seg.core.layouts import RunLayout
    from xray_seg.models.registry import import_custom_objects
    from xray_seg.serving.tflite import make_interpreter, run_interpreter

    import_custom_objects()
    model = keras.models.load_model(RunLayout(run).best_model, compile=False)
    h0, w0 = result.metadata["input_size"]
    image = np.random.default_rng(0).integers(0, 256, (1, h0, w0, 3), dtype=np.uint8)
    pixels, images = tf.constant(image.astype(np.float32)), tf.constant(image)
    forward = tf.function(lambda x: model(x, training=False))
    serve = tf.saved_model.load(str(result.savedmodel)).signatures["serving_default"]
    paths = {
        "keras tf.function": lambda: forward(pixels).numpy(),
        "keras predict_on_batch": lambda: model.predict_on_batch(pixels),
        "savedmodel serving_default": lambda: serve(images=images)["class_map"].numpy(),
    }
    for r in result.tflite:
        if r.error:
            print(f"tflite {r.variant}: FAILED at export: {r.error}")
            continue
        interpreter = make_interpreter(Path(r.path).read_bytes())
        paths[f"tflite {r.variant}"] = (lambda it: lambda: run_interpreter(it, image))(interpreter)
    return paths


def report(args, result, timings) -> int:
    import tensorflow as tf

    h0, w0 = result.metadata["input_size"]
    gpu = tf.config.list_physical_devices("GPU")
    print(
        f"\n{args.model} width {args.width}, input {h0}x{w0}, batch 1, median of {args.runs} after "
        f"{args.warmup} warm-up; TF {tf.__version__}; {'GPU ' + gpu[0].name if gpu else 'CPU'} "
        f"({cpu_line()}); TFLite on CPU"
    )
    sizes = {f"tflite {r.variant}": r.size_bytes for r in result.tflite if not r.error}
    sizes["savedmodel serving_default"] = result.manifest["savedmodel"]["size_bytes"]
    print(f"{'path':<28} {'median ms':>10} {'min ms':>9} {'size MB':>8}")
    for name, t in timings.items():
        size = f"{sizes[name] / 1e6:8.1f}" if name in sizes else " " * 8
        print(f"{name:<28} {t.median_ms:10.1f} {1000 * min(t.seconds):9.1f} {size}")
    keras_ms = min(timings["keras tf.function"].median_ms, timings["keras predict_on_batch"].median_ms)
    saved_ms = timings["savedmodel serving_default"].median_ms
    ratio = saved_ms / keras_ms
    print(
        f"\nSavedModel / fastest Keras path = {saved_ms:.1f} / {keras_ms:.1f} ms = {ratio:.3f}x "
        f"(target <= 1.10x): {'PASS' if ratio <= 1.10 else 'FAIL'}"
    )
    for r in result.tflite:
        if not r.error:
            print(
                f"tflite {r.variant:<13} max |p - keras| {r.max_abs_diff:.2e}, argmax agreement {r.argmax_agreement:.4f}"
            )
    return 0 if ratio <= 1.10 else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    from xray_seg.serving.exporter import export_model

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_export_"))
    run = Path(args.run) if args.run else random_run(args, work)
    t0 = time.perf_counter()
    formats = ("savedmodel",) if args.no_tflite else ("savedmodel", "tflite")
    result = export_model(run, work / "export", formats=formats, force=True, tflite_runs=1)
    print(f"exported in {time.perf_counter() - t0:.0f} s to {work / 'export'}")
    timings = time_rounds(candidates(run, result), args.runs, args.warmup)  # interleaved: load hits all alike
    return report(args, result, timings)


if __name__ == "__main__":
    sys.exit(main())
