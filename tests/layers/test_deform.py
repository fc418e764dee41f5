"""ModulatedDeformConv2D (DCNv2, CycleNet section 3.2 eq. 4) against standard convolutions
and finite differences."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from xray_seg.layers.deform import ModulatedDeformConv2D, deform_conv_flops  # noqa: E402

K = 3
TAPS = K * K


def _pair(filters, strides=1, dilation=1, groups=1, use_bias=True, channels=3, size=(8, 8), seed=0):
    """A Keras Conv2D and a deformable conv with the same kernel/bias, plus an input."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, *size, channels)).astype("float32")
    conv = keras.layers.Conv2D(
        filters, K, strides=strides, dilation_rate=dilation, groups=groups, padding="same", use_bias=use_bias
    )
    reference = keras.ops.convert_to_numpy(conv(x))
    if use_bias:
        conv.bias.assign(rng.normal(size=conv.bias.shape).astype("float32"))
        reference = keras.ops.convert_to_numpy(conv(x))
    deform = ModulatedDeformConv2D(
        filters, K, strides=strides, dilation_rate=dilation, groups=groups, use_bias=use_bias
    )
    out_h, out_w = reference.shape[1:3]
    deform.build([x.shape, (2, out_h, out_w, 2 * TAPS), (2, out_h, out_w, TAPS)])
    deform.set_weights(conv.get_weights())
    return conv, deform, x, reference


def _zeros_ones(batch, out_h, out_w, groups=1):
    offset = np.zeros((batch, out_h, out_w, 2 * TAPS * groups), "float32")
    mask = np.ones((batch, out_h, out_w, TAPS * groups), "float32")
    return offset, mask


def _shifted_conv(conv, x, dy, dx, pad=6):
    """A stride-1 ``conv`` on the zero-extended image, read at (y + dy, x + dx).

    This is what a deformable conv with the same integer offset (dy, dx) at every tap
    computes: tap n at output p reads x[p + p_n + (dy, dx)], zero outside the image.
    """
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    full = keras.ops.convert_to_numpy(conv(padded))
    height, width = x.shape[1:3]
    return full[:, pad + dy : pad + dy + height, pad + dx : pad + dx + width]


@pytest.mark.parametrize(
    "strides, dilation, groups, channels, size",
    [(1, 1, 1, 3, (8, 8)), (2, 1, 1, 3, (8, 8)), (2, 1, 1, 3, (7, 9)), (1, 2, 1, 3, (8, 8)), (1, 1, 2, 4, (8, 8))],
)
def test_zero_offset_unit_mask_equals_standard_conv(strides, dilation, groups, channels, size):
    _, deform, x, reference = _pair(6, strides, dilation, groups, channels=channels, size=size)
    offset, mask = _zeros_ones(2, *reference.shape[1:3])
    out = keras.ops.convert_to_numpy(deform([x, offset, mask]))
    assert out.shape == reference.shape
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


def test_integer_offset_equals_shifted_conv():
    conv, deform, x, _ = _pair(5, use_bias=False, size=(8, 8))
    offset, mask = _zeros_ones(2, 8, 8)
    offset[..., 0::2] = 1.0  # dy for every tap
    offset[..., 1::2] = -2.0  # dx for every tap
    out = keras.ops.convert_to_numpy(deform([x, offset, mask]))
    expected = _shifted_conv(conv, x, 1, -2)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_single_tap_offset_moves_only_that_tap():
    """Offset channels are interleaved (dy, dx) per row-major tap: moving tap n=5 (centre
    row, right column) by dx=+1 equals a kernel whose tap (1, 2) reads x shifted by one."""
    conv, deform, x, _ = _pair(4, use_bias=False, size=(8, 8), seed=3)
    offset, mask = _zeros_ones(2, 8, 8)
    offset[..., 2 * 5 + 1] = 1.0
    out = keras.ops.convert_to_numpy(deform([x, offset, mask]))
    kernel = keras.ops.convert_to_numpy(conv.kernel)
    only_tap = np.zeros_like(kernel)
    only_tap[1, 2] = kernel[1, 2]
    rest = kernel - only_tap
    conv.kernel.assign(rest)
    expected = _shifted_conv(conv, x, 0, 0)
    conv.kernel.assign(only_tap)
    expected += _shifted_conv(conv, x, 0, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_half_pixel_offset_is_bilinear_and_mask_scales():
    conv, deform, x, _ = _pair(4, use_bias=False, size=(8, 8), seed=1)
    offset, mask = _zeros_ones(2, 8, 8)
    offset[..., 0::2] = 0.5
    mask[:] = 0.25
    out = keras.ops.convert_to_numpy(deform([x, offset, mask]))
    expected = 0.25 * (0.5 * _shifted_conv(conv, x, 0, 0) + 0.5 * _shifted_conv(conv, x, 1, 0))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_deformable_groups_use_their_own_offsets():
    """Group 0 (first half of the channels) unshifted, group 1 shifted by (dy, dx) = (-1, 2)."""
    conv, _, x, _ = _pair(5, use_bias=False, channels=4, seed=2)
    deform = ModulatedDeformConv2D(5, K, deformable_groups=2, use_bias=False)
    offset, mask = _zeros_ones(2, 8, 8, groups=2)
    offset[..., 2 * TAPS :: 2] = -1.0
    offset[..., 2 * TAPS + 1 :: 2] = 2.0
    deform([x, offset, mask])
    deform.set_weights(conv.get_weights())
    out = keras.ops.convert_to_numpy(deform([x, offset, mask]))
    first, second = x.copy(), x.copy()
    first[..., 2:] = 0.0
    second[..., :2] = 0.0
    expected = _shifted_conv(conv, first, 0, 0) + _shifted_conv(conv, second, -1, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_far_outside_samples_are_zero():
    _, deform, x, reference = _pair(3, use_bias=True, size=(8, 8))
    offset, mask = _zeros_ones(2, 8, 8)
    offset[:] = 100.0
    out = keras.ops.convert_to_numpy(deform([x, offset, mask]))
    bias = keras.ops.convert_to_numpy(deform.bias)
    np.testing.assert_allclose(out, np.broadcast_to(bias, reference.shape), atol=1e-6)


def test_gradients_match_finite_differences():
    """float64; offsets keep every sampling point >= 0.2 px from integer positions, where
    bilinear interpolation (and the inside/outside switch) is not differentiable."""
    rng = np.random.default_rng(4)
    batch, size, channels, filters = 1, 5, 2, 3
    layer = ModulatedDeformConv2D(filters, K, strides=1, dilation_rate=1, dtype="float64")
    x = tf.constant(rng.normal(size=(batch, size, size, channels)))
    whole = rng.integers(-2, 2, size=(batch, size, size, 2 * TAPS)).astype("float64")
    offset = tf.constant(whole + rng.uniform(0.2, 0.8, size=whole.shape))
    mask = tf.constant(rng.uniform(0.1, 0.9, size=(batch, size, size, TAPS)))
    layer([x, offset, mask])
    layer.bias.assign(rng.normal(size=(filters,)))
    weight = tf.constant(rng.normal(size=(batch, size, size, filters)))

    def loss_of(values):
        out = layer([values["x"], values["offset"], values["mask"]])
        return tf.reduce_sum(out * weight)

    inputs = {"x": x, "offset": offset, "mask": mask}
    with tf.GradientTape() as tape:
        tape.watch(list(inputs.values()))
        loss = loss_of(inputs)
    grads = tape.gradient(loss, list(inputs.values()) + [layer.kernel])
    analytic = dict(
        zip(
            ["x", "offset", "mask", "kernel"],
            [g.numpy() if hasattr(g, "numpy") else tf.convert_to_tensor(g).numpy() for g in grads],
        )
    )

    eps = 1e-6
    for name in ["x", "offset", "mask", "kernel"]:
        base = layer.kernel.numpy() if name == "kernel" else inputs[name].numpy()
        flat_indices = rng.choice(base.size, size=12, replace=False)
        for flat in flat_indices:
            index = np.unravel_index(flat, base.shape)
            values = []
            for sign in (1.0, -1.0):
                moved = base.copy()
                moved[index] += sign * eps
                if name == "kernel":
                    layer.kernel.assign(moved)
                    values.append(float(loss_of(inputs)))
                    layer.kernel.assign(base)
                else:
                    values.append(float(loss_of({**inputs, name: tf.constant(moved)})))
            numeric = (values[0] - values[1]) / (2 * eps)
            assert analytic[name][index] == pytest.approx(numeric, rel=1e-5, abs=1e-7), (name, index)


def test_mixed_precision_keeps_positions_in_float32():
    """A half-precision policy computes the conv in float16 but samples at float32 positions."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 40, 40, 4)).astype("float32")
    offset = rng.uniform(-3, 3, size=(1, 40, 40, 2 * TAPS)).astype("float32")
    mask = rng.uniform(0, 1, size=(1, 40, 40, TAPS)).astype("float32")
    full = ModulatedDeformConv2D(3)
    expected = keras.ops.convert_to_numpy(full([x, offset, mask]))
    half = ModulatedDeformConv2D(3, dtype="mixed_float16")
    half([x, offset, mask])
    half.set_weights(full.get_weights())
    got = half([x, offset, mask])
    assert keras.backend.standardize_dtype(got.dtype) == "float16"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got).astype("float32"), expected, rtol=2e-2, atol=2e-2)


def test_config_round_trip_and_symbolic_shape():
    layer = ModulatedDeformConv2D(
        7, 3, strides=2, dilation_rate=1, groups=1, deformable_groups=1, use_bias=False, name="d"
    )
    clone = ModulatedDeformConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = keras.Input((9, 10, 4))
    out = clone([x, keras.Input((5, 5, 18)), keras.Input((5, 5, 9))])
    assert tuple(out.shape) == (None, 5, 5, 7)


def test_flop_formula_matmul_term():
    # 1x1 output, one channel in and out, 3x3: 2*9 matmul FLOPs + 8*9 sampling + 40*9 weights.
    assert deform_conv_flops(1, 1, 1, 1) == 18 + 72 + 360
