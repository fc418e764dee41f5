"""The registered models on this CPU under TensorFlow: ``xray-seg bench --suite models``.

For every model (square input, batch 1): parameters, GMACs and GFLOPs
(:mod:`xray_seg.evaluation.flops`, GFLOPs = 2 x GMACs), and the latency of the inference
function ``tf.function(model(x, training=False))`` per setting: ``noxla``, ``xla``
(``jit_compile``) and ``frozen`` (variables turned into constants, so Grappler folds the
inference batch norms). Each timed model call is paired with an ``n x n`` float32 matmul timed
right before it (the machine is shared); the share of peak is the median over the pairs of
(model GFLOP/s) / (matmul GFLOP/s). A model with a deformable convolution (CycleNet's
``adc_deform``) also gets that layer timed alone and its share of the model's latency.

Targets printed as PASS/FAIL: CWF-DeepLabv3+ uses no more GFLOPs than DeepLabv3+ (Xception),
and reaches at least 50 % of the matmul peak (the exit status uses its best setting).
The JAX backend and the TensorFlow-against-JAX comparison are in
:mod:`xray_seg.evaluation.bench_backends`.
"""

from __future__ import annotations

import statistics

import numpy as np

from xray_seg.evaluation.bench_backends import ModelsSettings
from xray_seg.evaluation.flops import count_flops, count_params
from xray_seg.evaluation.peak import MATMULS
from xray_seg.evaluation.timing import cpu_line, load_line, time_calls, time_rounds
from xray_seg.layers.deform import deform_conv_flops
from xray_seg.models.registry import available_models, build_model

TARGET_FRACTION = 0.5
JIT_SETTINGS = {"both": ["noxla", "xla"], "on": ["xla"], "off": ["noxla"], "all": ["noxla", "xla", "frozen"]}


def inference_function(model, size: int, setting: str):
    """The compiled batch-1 inference function of ``noxla``, ``xla`` or ``frozen`` (module docstring)."""
    import tensorflow as tf  # lazy: TensorFlow

    fn = tf.function(lambda t: model(t, training=False), jit_compile=setting == "xla")
    if setting != "frozen":
        return fn
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec((1, size, size, 3), tf.float32)))
    return lambda t: frozen(t)[0]


def time_setting(model, size: int, setting: str, s: ModelsSettings, matmul) -> tuple[float, list[float]]:
    """(median latency in s, per round: matmul seconds / model seconds), matmul and model interleaved."""
    import tensorflow as tf  # lazy: TensorFlow

    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32"))
    fn = inference_function(model, size, setting)
    timings = time_rounds({"matmul": matmul, "model": lambda: np.asarray(fn(x))}, s.runs, max(1, s.warmup))
    ratios = [m / t for m, t in zip(timings["matmul"].seconds, timings["model"].seconds, strict=True)]
    return timings["model"].median_s, ratios


def deform_share(model, s: ModelsSettings, model_s: float) -> str | None:
    """The deformable conv alone (CycleNet's ``adc_deform``), on its real input shapes: one line."""
    import tensorflow as tf  # lazy: TensorFlow

    try:
        deform = model.get_layer("adc_deform")
    except ValueError:
        return None
    x_shape, offset_shape, mask_shape = (tuple(t.shape) for t in deform.input)
    rng = np.random.default_rng(0)
    inputs = (
        tf.constant(rng.normal(size=(1, *x_shape[1:])).astype("float32")),
        tf.constant(rng.uniform(-2, 2, size=(1, *offset_shape[1:])).astype("float32")),
        tf.constant(rng.uniform(0, 1, size=(1, *mask_shape[1:])).astype("float32")),
    )
    fn = tf.function(lambda a, b, c: deform([a, b, c]))
    timing = time_calls(lambda i: np.asarray(fn(*inputs)), s.runs, max(1, s.warmup))
    gflops = deform_conv_flops(x_shape[1], x_shape[2], x_shape[3], deform.filters, deform.kernel_size) / 1e9
    return (
        f"  {model.name}: ADC deformable conv alone {timing.median_ms:.0f} ms ({gflops:.2f} GFLOPs analytic) "
        f"-> {100 * timing.median_s / model_s:.1f}% of the model"
    )


def measure_model(name: str, s: ModelsSettings, settings: list, matmul) -> dict:
    """Parameters, FLOPs and, per setting, (latency s, median share of the matmul peak) of one model."""
    import keras  # lazy: TensorFlow

    shape = (s.size, s.size, 3)
    model = build_model(name, s.num_classes, shape, width=s.width)
    flops = count_flops(model, shape)
    matmul_flops = 2 * s.matmul_size**3
    timing = {}
    for setting in settings:
        latency, ratios = time_setting(model, s.size, setting, s, matmul)
        timing[setting] = (latency, statistics.median(flops.flops * r / matmul_flops for r in ratios))
    deform = deform_share(model, s, timing[settings[0]][0])
    keras.backend.clear_session()
    return {"params": sum(count_params(model)), "flops": flops, "timing": timing, "deform": deform}


def table_lines(results: dict, s: ModelsSettings, settings: list) -> list[str]:
    header = f"{'model':28s} {'params M':>9s} {'GMACs':>7s} {'GFLOPs':>7s}"
    for setting in settings:
        header += f" {setting + ' ms':>11s} {setting + ' GF/s':>11s} {setting + ' %pk':>10s}"
    lines = [
        f"\n@ {s.size}x{s.size}, width {s.width}, batch 1, medians of {s.runs} runs; "
        "%pk = median over runs of (model GFLOP/s) / (matmul GFLOP/s timed just before)",
        header,
    ]
    for name, r in results.items():
        line = f"{name:28s} {r['params'] / 1e6:9.2f} {r['flops'].gmacs:7.2f} {r['flops'].gflops:7.2f}"
        for setting in settings:
            latency, fraction = r["timing"][setting]
            line += f" {latency * 1e3:11.1f} {r['flops'].gflops / latency:11.1f} {100 * fraction:9.1f}%"
        lines.append(line)
    return lines + [r["deform"] for r in results.values() if r["deform"]]


def target_lines(results: dict, s: ModelsSettings, settings: list) -> tuple[list[str], int]:
    """The CWF-DeepLabv3+ targets (module docstring) and the exit status."""
    if "cwf_deeplabv3plus" not in results:
        return [], 0
    shape = (s.size, s.size, 3)
    cwf = results["cwf_deeplabv3plus"]["flops"].gflops
    base = results["deeplabv3plus"]["flops"].gflops if "deeplabv3plus" in results else None
    if base is None:
        base = count_flops(build_model("deeplabv3plus", s.num_classes, shape, width=s.width), shape).gflops
    lines = [
        f"{'PASS' if cwf <= base else 'FAIL'}: CWF-DeepLabv3+ GFLOPs {cwf:.2f} <= DeepLabv3+ (Xception) {base:.2f}"
    ]
    timing = results["cwf_deeplabv3plus"]["timing"]
    for setting in settings:
        fraction = timing[setting][1]
        lines.append(
            f"{'PASS' if fraction >= TARGET_FRACTION else 'FAIL'}: CWF-DeepLabv3+ [{setting}] reaches "
            f"{100 * fraction:.1f}% of the matmul peak (target >= {100 * TARGET_FRACTION:.0f}%)"
        )
    best = max(timing[k][1] for k in settings)
    return lines, int(cwf > base or best < TARGET_FRACTION)


def bench_models(s: ModelsSettings) -> int:
    """Measure every model and print the table and the targets; the exit status of the targets."""
    import tensorflow as tf  # lazy: TensorFlow

    if s.threads:
        tf.config.threading.set_intra_op_parallelism_threads(s.threads)
    names = s.models or [spec.name for spec in available_models()]
    settings = JIT_SETTINGS[s.jit]
    matmul = MATMULS["tensorflow"](s.matmul_size, seed=0)
    peaks = time_calls(lambda i: matmul(), 5, 1)
    gflops = [2 * s.matmul_size**3 / t / 1e9 for t in peaks.seconds]
    print(
        f"matmul peak ({s.matmul_size}^3 float32): median {statistics.median(gflops):.1f} GFLOP/s "
        f"(5 runs: {', '.join(f'{p:.0f}' for p in gflops)}); CPU: {cpu_line()}; {load_line()}",
        flush=True,
    )
    results = {}
    for name in names:
        results[name] = measure_model(name, s, settings, matmul)
        print(f"measured {name}", flush=True)
    print("\n".join(table_lines(results, s, settings)) + "\n")
    lines, status = target_lines(results, s, settings)
    print("\n".join(lines))
    return status
