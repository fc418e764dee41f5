"""The models under the JAX backend, and TensorFlow against JAX: ``xray-seg bench --suite models --backend jax|both``.

No TensorFlow here, at import or run time with ``--backend jax``: the accelerator machine has
JAX and no TensorFlow, and copying the project there is enough (Keras, JAX, numpy and
:mod:`xray_seg.models`, which use ``keras.ops`` alone).

- ``jax``: inference FPS (images/s) of each model for each batch size and dtype (``bfloat16``
  is Keras's ``mixed_bfloat16`` policy: bf16 compute, float32 variables and logits), timed as
  ``jax.jit`` of ``model.stateless_call`` synchronised with ``block_until_ready``, median and
  25th-75th percentile; and the training images/s of CWF-DeepLabv3+ (one jitted step of
  forward, softmax cross-entropy, backward and Adam). Written to ``out`` as JSON.
- ``both``: the same model built in a child process per backend (Keras fixes its backend at
  import), rounds alternating between the backends; per backend the median over rounds and
  the JAX/TF latency ratio.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.evaluation.timing import cpu_line, time_calls
from xray_seg.models.outputs import logits_of
from xray_seg.models.registry import build_model

PAPER1_MODELS = ("cwf_deeplabv3plus", "deeplabv3plus", "mobilenetv2_deeplabv3plus", "unet", "bisenetv2")


@dataclass
class ModelsSettings:
    """What ``--suite models`` measures; ``backend`` picks :mod:`.bench_models` (tensorflow) or this module."""

    models: list = field(default_factory=list)  # empty: every registered model (jax: paper 1's five)
    size: int = 512
    width: float = 1.0
    num_classes: int = 6
    runs: int = 10
    warmup: int = 2
    backend: str = "tensorflow"  # tensorflow, jax or both
    jit: str = "all"
    matmul_size: int = 2048
    threads: int = 0
    batch_sizes: list = field(default_factory=lambda: [1, 16])
    dtypes: list = field(default_factory=lambda: ["float32", "bfloat16"])
    train_batch: int = 16
    train_steps: int = 10
    rounds: int = 3
    out: str | None = None


def device_name() -> str:
    import jax  # lazy: JAX

    device = jax.devices()[0]
    kind = getattr(device, "device_kind", "") or device.platform
    if device.platform == "cpu":
        return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores): {kind}"
    return f"{kind} x{len(jax.devices())}" if len(jax.devices()) > 1 else kind


def spread(timing, images: int) -> dict:
    """Median and 25th-75th percentile of a :class:`~xray_seg.evaluation.timing.Timing`, and images/s."""
    q25, q75 = timing.percentile_ms(25), timing.percentile_ms(75)
    fps = images / timing.median_s
    return {
        "median_ms": timing.median_ms,
        "q25_ms": q25,
        "q75_ms": q75,
        "fps": fps,
        "fps_q25_q75": [images * 1e3 / q75, images * 1e3 / q25],
    }


def build(name: str, s, dtype: str = "float32"):
    import keras  # lazy: Keras picks its backend at import

    keras.config.set_dtype_policy("mixed_bfloat16" if dtype == "bfloat16" else "float32")
    keras.utils.set_random_seed(0)
    return build_model(name, s.num_classes, (s.size, s.size, 3), width=s.width)


def jax_forward(model):
    """``jax.jit`` of the model's inference call on the current variables: images -> logits."""
    import jax  # lazy: JAX

    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(images):
        out, _ = model.stateless_call(trainable, frozen, images, training=False)
        return logits_of(out)

    return forward


def inference_fps(name: str, s, dtype: str, batch: int) -> dict:
    import jax  # lazy: JAX

    forward = jax_forward(build(name, s, dtype))
    images = jax.numpy.asarray(np.random.default_rng(0).uniform(0, 255, (batch, s.size, s.size, 3)), "float32")
    return spread(time_calls(lambda i: forward(images).block_until_ready(), s.runs, s.warmup), batch)


def train_step(model, optimizer, images, labels):
    """One jitted training step ``state -> (loss, state)`` (softmax cross-entropy, Adam)."""
    import jax  # lazy: JAX
    import keras  # lazy: Keras

    def loss_of(trainable, frozen):
        logits, frozen = model.stateless_call(trainable, frozen, images, training=True)
        logits = logits_of(logits)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        return loss, frozen

    @jax.jit
    def step(state):
        trainable, frozen, opt_vars = state
        (loss, frozen), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable, frozen)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, frozen, opt_vars)

    return step


def training_images_per_sec(s) -> dict:
    import jax  # lazy: JAX
    import keras  # lazy: Keras

    model = build("cwf_deeplabv3plus", s)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    images = jax.numpy.asarray(rng.uniform(0, 255, (s.train_batch, s.size, s.size, 3)), "float32")
    labels = jax.numpy.asarray(rng.integers(0, s.num_classes, (s.train_batch, s.size, s.size)), "int32")
    step = train_step(model, optimizer, images, labels)
    variables = (model.trainable_variables, model.non_trainable_variables, optimizer.variables)
    holder = {"state": tuple([v.value for v in group] for group in variables)}

    def one_step(i):
        loss, holder["state"] = step(holder["state"])
        holder["loss"] = float(loss.block_until_ready())

    result = spread(time_calls(one_step, s.train_steps, s.warmup), s.train_batch)
    result["images_per_sec"] = result.pop("fps")
    result["images_per_sec_q25_q75"] = result.pop("fps_q25_q75")
    result["final_loss"] = holder["loss"]
    return result


def inference_rows(s, names) -> list[dict]:
    print(f"{'model':28s} {'dtype':9s} {'batch':>5s} {'median ms':>10s} {'FPS':>9s}  FPS q25-q75")
    rows = []
    for name in names:
        for dtype in s.dtypes:
            for batch in s.batch_sizes:
                row = {"model": name, "dtype": dtype, "batch": batch, **inference_fps(name, s, dtype, batch)}
                rows.append(row)
                low, high = row["fps_q25_q75"]
                print(
                    f"{name:28s} {dtype:9s} {batch:5d} {row['median_ms']:10.2f} {row['fps']:9.1f}  {low:.1f}-{high:.1f}",
                    flush=True,
                )
    return rows


def bench_jax(s) -> int:
    """Inference FPS per model, dtype and batch, and training images/s, under JAX (module docstring)."""
    import jax  # lazy: JAX
    import keras  # lazy: Keras

    if keras.backend.backend() != "jax":
        print("error: run with KERAS_BACKEND=jax", file=sys.stderr)
        return 2
    device = device_name()
    print(
        f"device: {device}; jax {jax.__version__}, keras {keras.__version__}; "
        f"{s.size}x{s.size}, width {s.width}, {s.num_classes} classes"
    )
    results = {"device": device, "jax": jax.__version__, "keras": keras.__version__, "size": s.size}
    results.update(width=s.width, num_classes=s.num_classes, training=None)
    results["inference"] = inference_rows(s, s.models or list(PAPER1_MODELS))
    if s.train_batch:
        t = {"model": "cwf_deeplabv3plus", "batch": s.train_batch, **training_images_per_sec(s)}
        results["training"] = t
        print(
            f"training cwf_deeplabv3plus, batch {s.train_batch}: {t['images_per_sec']:.1f} images/s "
            f"(median step {t['median_ms']:.1f} ms)"
        )
    results["tensorflow_imported"] = "tensorflow" in sys.modules
    keras.config.set_dtype_policy("float32")
    if s.out:
        Path(s.out).write_text(json.dumps(results, indent=2))
        print(f"wrote {s.out}")
    return 0


def child_latency(name: str, size: int, width: float, runs: int, warmup: int) -> dict:
    """Batch-1 latency of one model in this process's Keras backend (``tf.function`` or ``jax.jit``)."""
    import keras  # lazy: Keras picks its backend at import

    keras.utils.set_random_seed(0)
    model = build_model(name, 6, (size, size, 3), width=width)
    image = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    if keras.backend.backend() == "jax":
        import jax  # lazy: JAX

        forward, x = jax_forward(model), jax.numpy.asarray(image)
        timing = time_calls(lambda i: forward(x).block_until_ready(), runs, warmup)
    else:
        import tensorflow as tf  # lazy: only in the TensorFlow child of --backend both

        forward, x = tf.function(lambda t: model(t, training=False)), tf.constant(image)
        timing = time_calls(lambda i: forward(x).numpy(), runs, warmup)
    return {
        "backend": keras.backend.backend(),
        "median_ms": timing.median_ms,
        "times_ms": [1e3 * t for t in timing.seconds],
    }


def _child(backend: str, name: str, s) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    args = [name, str(s.size), str(s.width), str(s.runs), str(s.warmup)]
    proc = subprocess.run([sys.executable, "-m", __name__, *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the {backend} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_both(s, backends=("tensorflow", "jax")) -> int:
    """The same model under each backend in alternating rounds of child processes (module docstring)."""
    name = (s.models or ["cwf_deeplabv3plus"])[0]
    print(f"{name} at {s.size}x{s.size}, width {s.width}, batch 1, on {cpu_line()}")
    medians = {b: [] for b in backends}
    for r in range(s.rounds):
        for backend in backends:
            medians[backend].append(_child(backend, name, s)["median_ms"])
            print(f"round {r + 1}: {backend:10s} median {medians[backend][-1]:.1f} ms", flush=True)
    summary = {b: statistics.median(v) for b, v in medians.items()}
    for backend, value in summary.items():
        print(f"{backend:10s} median over {s.rounds} rounds: {value:.1f} ms ({1e3 / value:.2f} FPS)")
    print(f"JAX / TensorFlow latency ratio: {summary['jax'] / summary['tensorflow']:.2f}")
    return 0


if __name__ == "__main__":  # the child of bench_both: NAME SIZE WIDTH RUNS WARMUP
    name, size, width, runs, warmup = sys.argv[1:6]
    print(json.dumps(child_latency(name, int(size), float(width), int(runs), int(warmup))))
