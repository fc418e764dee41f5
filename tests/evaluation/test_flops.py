"""The FLOP counter against hand counts and TensorFlow's profiler, and the CPU peak (issue 20).

FLOPs = 2 x multiply-accumulates of the convolutions; an atrous convolution counts the
pixels it returns, not the padded space-to-batch grid TensorFlow computes (and its
profiler counts). The peak is the best matmul over sizes and libraries."""

from __future__ import annotations

import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from xray_seg.evaluation.flops import count_flops  # noqa: E402


def _model(layer, shape=(32, 32, 4)):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


def _profiler_flops(model, shape) -> int:
    spec = tf.TensorSpec((1, *shape), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder(tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
    return tf.compat.v1.profiler.profile(graph, options=opts.with_empty_output().build(), cmd="op").total_float_ops


@pytest.mark.parametrize(
    "layer, macs",
    [
        (keras.layers.Conv2D(8, 1, use_bias=False), 32 * 32 * 4 * 8),
        (keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False), 16 * 16 * 9 * 4 * 8),
        (keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False), 32 * 32 * 9 * 4),
        (keras.layers.Dense(8, use_bias=False), 32 * 32 * 4 * 8),
    ],
)
def test_counts_are_two_flops_per_multiply_accumulate(layer, macs):
    count = count_flops(_model(layer), (32, 32, 4))
    assert count.macs == macs and count.flops == 2 * macs
    assert count.flops == _profiler_flops(_model(layer), (32, 32, 4))  # TensorFlow's own float_ops agree


@pytest.mark.parametrize("rate", [2, 6, 12, 18])
@pytest.mark.parametrize("depthwise", [True, False])
def test_atrous_convolutions_count_the_pixels_they_return(rate, depthwise):
    layer = (
        keras.layers.DepthwiseConv2D(3, dilation_rate=rate, padding="same", use_bias=False)
        if depthwise
        else keras.layers.Conv2D(8, 3, dilation_rate=rate, padding="same", use_bias=False)
    )
    model = _model(layer)
    macs = 32 * 32 * 9 * 4 * (1 if depthwise else 8)
    assert count_flops(model, (32, 32, 4)).macs == macs
    profiler = _profiler_flops(model, (32, 32, 4))
    if rate >= 6:  # the space-to-batch grid is padded: 36 blocks of 6x6 outputs for 32x32 at rate 6
        assert profiler == 2 * macs * 1296 // 1024
    else:
        assert profiler == 2 * macs


def test_a_whole_model_agrees_with_the_profiler_within_its_atrous_padding():
    from xray_seg.models.registry import build_model

    model = build_model("cwf_deeplabv3plus", 3, (64, 64, 3), width=0.0625)
    count = count_flops(model, (64, 64, 3))
    profiler = _profiler_flops(model, (64, 64, 3))
    assert count.flops + count.other_flops <= profiler <= 1.3 * (count.flops + count.other_flops)


def test_cpu_description_and_theoretical_peak():
    from xray_seg.evaluation.peak import fp32_flops_per_cycle, theoretical_peak_gflops
    from xray_seg.evaluation.timing import cpu_description

    info = "model name\t: Test CPU\ncpu MHz\t\t: 2600.0\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f amx_tile\n"
    cpu = cpu_description(info)
    assert cpu["model"] == "Test CPU" and cpu["mhz"] == 2600.0
    assert cpu["vector"] == ["sse4_2", "avx", "avx2", "fma", "avx512f", "amx_tile"]
    assert fp32_flops_per_cycle(cpu["vector"]) == 64
    assert fp32_flops_per_cycle(["avx", "avx2", "fma"]) == 32 and fp32_flops_per_cycle([]) == 8
    assert theoretical_peak_gflops(cpu) == pytest.approx(cpu["cores"] * 2.6 * 64)
    assert theoretical_peak_gflops({**cpu, "mhz": None}) is None
    assert cpu_description()["cores"] >= 1  # this machine


def test_matmul_peak_is_the_best_over_sizes_and_libraries():
    from xray_seg.evaluation.peak import measure_matmul_peak

    peak = measure_matmul_peak((32, 64), repeats=2)
    assert [(r["backend"], r["n"]) for r in peak["runs"]] == [
        ("tensorflow", 32),
        ("tensorflow", 64),
        ("numpy", 32),
        ("numpy", 64),
    ]
    assert peak["gflops"] == max(r["gflops"] for r in peak["runs"]) > 0
    assert (peak["best"]["backend"], peak["best"]["n"]) in [(r["backend"], r["n"]) for r in peak["runs"]]
