"""The in-graph alarm (:func:`xray_seg.serving.alarm_graph.alarm_outputs`) on belt-scan sized
probabilities, timed by ``scripts/bench_alarm_graph.py`` (its docstring says what each case is)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from xray_seg.evaluation.timing import cpu_line, time_calls
from xray_seg.inference.loader import load_for_inference
from xray_seg.inference.tta import predict_probabilities
from xray_seg.serving.alarm_graph import alarm_outputs
from xray_seg.synthesis.scene import SynthConfig, render_sample


def noise_probs(height: int, width: int, k: int, quantile: float, seed: int = 0):
    """Probabilities whose arg-max gives each class the pixels above ``quantile`` of a smooth field."""
    import cv2  # lazy: OpenCV only for the noise cases

    rng = np.random.default_rng(seed)
    probs = np.zeros((height, width, k), np.float32)
    probs[..., 0] = 0.5
    for c in range(1, k):
        field = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 8.0)
        on = field > np.quantile(field, quantile)
        probs[..., c] = np.where(on, 0.6 + 0.01 * c, 0.0)
    return probs / probs.sum(-1, keepdims=True)


def trained_probs(run: str, height: int, width: int):
    scan = render_sample(SynthConfig(size=height, width=0 if width == height else width, seed=1), 0)[0]
    loaded = load_for_inference(run)
    return predict_probabilities(loaded.logits_fn, scan, input_size=loaded.input_size)


def measure(name: str, probs, runs: int) -> dict:
    import cv2  # lazy: OpenCV

    k = probs.shape[-1]
    fn = tf.function(
        lambda p, s: alarm_outputs(p, s, thresholds=[1.0] + [0.5] * (k - 1), min_area=[0] + [100] * (k - 1), closing=2)
    )
    batch, sizes = tf.constant(probs[None], tf.float32), tf.constant([probs.shape[:2]], tf.int32)
    outputs = {}
    timing = time_calls(lambda i: outputs.update(fn(batch, sizes)) or outputs["alarm"].numpy(), runs, 1)
    class_map = probs.argmax(-1)
    components = sum(
        cv2.connectedComponents((class_map == c).astype(np.uint8), connectivity=8)[0] - 1 for c in range(1, k)
    )
    row = {"case": name, "median_s": timing.median_s, "times_s": timing.seconds}
    row.update(mask_pixels=int((class_map > 0).sum()), components=int(components))
    row["alarm"] = bool(outputs["alarm"].numpy()[0])
    return row


def bench_alarm_graph(args) -> int:
    """Each case of ``args.cases`` on an ``args.scan`` scan: one line with the median and its components."""
    height, width = (int(v) for v in args.scan.lower().split("x"))
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    print(f"CPU: {cpu_line()}; scan {height}x{width}", flush=True)
    for case in cases:
        if case == "trained" and not args.run:
            print("trained: skipped (give --run)")
            continue
        if case == "trained":
            probs = trained_probs(args.run, height, width)
        else:
            probs = noise_probs(height, width, args.classes, 0.8 if case == "blobs" else 0.5)
        row = measure(case, probs, args.runs)
        spread = ", ".join(f"{t:.2f}" for t in row["times_s"])
        print(
            f"{case:12s} median {row['median_s']:.3f} s ({spread})  mask pixels {row['mask_pixels']}  "
            f"components {row['components']}  alarm {row['alarm']}",
            flush=True,
        )
    return 0
