"""CycleNet (Qu et al.): shapes, CycleASPP connections (eqs. 2-3), ADC start state.
The generic contract (round trip, training steps, other backends) is in test_model_contract.py."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from xray_seg.core.errors import ModelError  # noqa: E402
from xray_seg.layers.cycle_aspp import CycleASPP  # noqa: E402
from xray_seg.models.cyclenet import build_cyclenet  # noqa: E402
from xray_seg.models.registry import build_model  # noqa: E402

TINY = dict(width=0.125, backbone_blocks=(1, 1, 1, 1))
RNG = np.random.default_rng(0)


def _pixels(batch=2, size=64):
    return RNG.uniform(0, 255, size=(batch, size, size, 3)).astype("float32")


@pytest.mark.parametrize("output_stride", [8, 16])
def test_logits_at_input_resolution_with_aux(output_stride):
    model = build_cyclenet(4, (64, 64, 3), aux=True, output_stride=output_stride, **TINY)
    out = model(_pixels())
    assert set(out) == {"logits", "aux"}
    assert tuple(out["logits"].shape) == (2, 64, 64, 4)
    assert tuple(out["aux"].shape) == (2, 64, 64, 4)
    feats = model.get_layer("resnet").output
    assert feats["c4"].shape[1] == 64 // output_stride
    # CycleASPP output: 6 layers x 64*width channels, at the backbone's output stride.
    assert tuple(model.get_layer("cycle_aspp").output.shape) == (None, 64 // output_stride, 64 // output_stride, 6 * 8)
    # The deformable conv runs at stride 4 (block-1 resolution).
    assert tuple(model.get_layer("adc_deform").output.shape)[1:3] == (16, 16)


def test_registry_builds_plain_logits_and_rejects_unknown_options():
    model = build_model("cyclenet", 3, (32, 32, 3), **TINY)
    assert tuple(model.output.shape) == (None, 32, 32, 3)
    with pytest.raises(ModelError):
        build_model("cyclenet", 3, (32, 32, 3), colour="blue", **TINY)


# --- CycleASPP connection pattern ---------------------------------------------------------
RATES = (3, 6, 12, 18, 24, 30)
C0, GROWTH = 16, 4


def _aspp(**kwargs):
    layer = CycleASPP(rates=RATES, reduction_filters=C0, bottleneck_filters=8, growth_filters=GROWTH, **kwargs)
    layer.build((None, 8, 8, 12))
    return layer


def test_pass_sources_follow_eqs_2_and_3():
    layer = _aspp(feedback_steps=1)
    # Part I (eq. 2): input Y_0 and every earlier output.
    assert layer.pass_sources(0, 1) == [(0, 0)]
    assert layer.pass_sources(0, 4) == [(0, 0), (1, 0), (2, 0), (3, 0)]
    # Part II (eq. 3): all other layers, earlier ones from this pass, later ones from
    # the previous pass, no input.
    assert layer.pass_sources(1, 1) == [(2, 0), (3, 0), (4, 0), (5, 0), (6, 0)]
    assert layer.pass_sources(1, 3) == [(1, 1), (2, 1), (4, 0), (5, 0), (6, 0)]
    assert layer.pass_sources(1, 6) == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]
    two = _aspp(feedback_steps=2)
    assert two.pass_sources(2, 3) == [(1, 2), (2, 2), (4, 1), (5, 1), (6, 1)]


@pytest.mark.parametrize("share_weights", [True, False])
def test_input_channels_of_each_layer_in_each_pass(share_weights):
    """Count the built kernels' input channels of f_{r_j} per pass: part I sees
    C0 + (j-1)*64w, part II sees (J-1)*64w; every atrous conv sees the bottleneck."""
    layer = _aspp(feedback_steps=1, share_weights=share_weights)
    J = len(RATES)
    for j in range(1, J + 1):
        part1 = sum(layer.projection(0, i, j).kernel.shape[2] for i, _ in layer.pass_sources(0, j))
        part2 = sum(layer.projection(1, i, j).kernel.shape[2] for i, _ in layer.pass_sources(1, j))
        assert part1 == C0 + (j - 1) * GROWTH
        assert part2 == (J - 1) * GROWTH
        for step in (0, 1):
            atrous = layer.atrous(step, j)
            assert atrous.kernel.shape[2] == 8 and atrous.dilation_rate == (RATES[j - 1],) * 2
        # Shared (paper): part II reuses part I's atrous conv and forward connections.
        assert (layer.atrous(0, j) is layer.atrous(1, j)) == share_weights
        for i in range(1, j):
            assert (layer.projection(0, i, j) is layer.projection(1, i, j)) == share_weights
    # Shared: one 1x1 per connection i -> j (i in 0..J, i != j) = J*J; unshared:
    # part I has J(J+1)/2 and part II J(J-1).
    expected = J * J if share_weights else J * (J + 1) // 2 + J * (J - 1)
    assert len(layer.projections) == expected


def test_cycle_aspp_output_equals_explicit_concatenation_form():
    """Re-compute eqs. 2-3 literally: one 1x1 conv on concat[...] (kernel = stacked
    per-source kernels), BN, ReLU, atrous conv, BN, ReLU; output = latest Y_1..Y_J."""
    layer = _aspp(feedback_steps=1)
    x = RNG.normal(size=(2, 8, 8, 12)).astype("float32")
    got = keras.ops.convert_to_numpy(layer(x, training=False))
    J = len(RATES)
    relu = keras.ops.relu

    def f(step, j, sources):
        kernel = keras.ops.concatenate([layer.projection(step, i, j).kernel for i, _ in sources], axis=2)
        stacked = keras.ops.concatenate([Y[src] for src in sources], axis=-1)
        h = keras.ops.conv(stacked, kernel, padding="same")
        n = step * J + j - 1
        h = relu(layer.bottleneck_bns[n](h, training=False))
        h = layer.atrous(step, j)(h)
        return relu(layer.output_bns[n](h, training=False))

    Y = {(0, 0): layer.reduce(x, training=False)}
    for j in range(1, J + 1):  # eq. 2
        Y[(j, 0)] = f(0, j, [(0, 0)] + [(i, 0) for i in range(j - 1, 0, -1)])
    for j in range(1, J + 1):  # eq. 3, k = 1
        later = [(i, 0) for i in range(J, j, -1)]
        earlier = [(i, 1) for i in range(j - 1, 0, -1)]
        Y[(j, 1)] = f(1, j, later + earlier)
    expected = keras.ops.convert_to_numpy(keras.ops.concatenate([Y[(j, 1)] for j in range(1, J + 1)], axis=-1))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # The feedback pass changes the result (it is not DenseASPP's output).
    part1 = keras.ops.convert_to_numpy(keras.ops.concatenate([Y[(j, 0)] for j in range(1, J + 1)], axis=-1))
    assert np.abs(got - part1).max() > 1e-3


# --- ADC, serialisation, training ----------------------------------------------------------
def test_adc_starts_with_zero_offsets_and_half_mask():
    model = build_cyclenet(3, (32, 32, 3), **TINY)
    probe = keras.Model(model.input, [model.get_layer("adc_offset").output, model.get_layer("adc_mask").output])
    offset, mask = (keras.ops.convert_to_numpy(t) for t in probe(_pixels(1, 32)))
    assert offset.shape == (1, 8, 8, 18) and mask.shape == (1, 8, 8, 9)
    assert np.all(offset == 0.0) and np.allclose(mask, 0.5)
