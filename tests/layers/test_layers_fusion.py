"""Fast normalised fusion, DWFF, ASPP / DWFF-ASPP and the backbone blocks (paper 1, sections 2-3)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from xray_seg.layers.aspp import ASPP, DWFFASPP, ImagePooling, aspp_rates  # noqa: E402
from xray_seg.layers.blocks import CSPBlock, InvertedResidual, ResidualUnit, XceptionBlock  # noqa: E402
from xray_seg.layers.conv import divisible_channels  # noqa: E402
from xray_seg.layers.fusion import DWFF, FastNormalizedFusion  # noqa: E402

RNG = np.random.default_rng(0)


def _maps(n, shape=(2, 4, 4, 8)):
    return [RNG.standard_normal(shape).astype("float32") for _ in range(n)]


def _swish(x):
    return x / (1.0 + np.exp(-x))


def _weights(raw, eps):
    w = np.maximum(raw, 0.0)
    return w / (w.sum() + eps)


def test_fusion_weights_start_at_ones_and_stay_normalised():
    layer = FastNormalizedFusion("sum", epsilon=1e-4)
    layer(_maps(3))
    np.testing.assert_array_equal(layer.fusion_weights.numpy(), np.ones(3))
    for raw in ([1.0, 1.0, 1.0], [-2.0, 0.5, 3.0], [0.0, -1.0, 1e-3], [5.0, 0.0, 0.0]):
        layer.fusion_weights.assign(np.array(raw, "float32"))
        w = keras.ops.convert_to_numpy(layer.normalized_weights())
        assert (w >= 0).all()
        s = np.maximum(raw, 0).sum()
        np.testing.assert_allclose(w.sum(), s / (s + 1e-4), rtol=1e-6)
        assert abs(w.sum() - 1.0) <= 1e-4 / s + 1e-6


@pytest.mark.parametrize("mode", ["sum", "concat"])
def test_fusion_matches_equations_2_and_3(mode):
    maps = _maps(3)
    layer = FastNormalizedFusion(mode, epsilon=1e-4)
    layer(maps)
    raw = np.array([0.3, -1.0, 2.0], "float32")
    layer.fusion_weights.assign(raw)
    w = _weights(raw, 1e-4)
    weighted = [w[i] * m for i, m in enumerate(maps)]
    expected = _swish(sum(weighted) if mode == "sum" else np.concatenate(weighted, axis=-1))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(maps)), expected, rtol=1e-5, atol=1e-6)


def test_gradients_reach_every_dwff_fusion_weight():
    maps = [tf.constant(m) for m in _maps(5)]
    layer = DWFF()
    layer(maps)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(maps)))
    grads = tape.gradient(loss, [f.fusion_weights for f in layer.fusions])
    assert len(layer.trainable_weights) == 6
    for fusion, grad in zip(layer.fusions, grads):
        assert grad is not None, fusion.name
        assert np.abs(grad.numpy()).sum() > 0, fusion.name


def test_dwff_follows_the_text_pairs():
    """P'4=F(P0,P4), P'3=F(P3,P'4), P'2=F(P2,P3), P'1=F(P1,P2), P'0=F(P0,P1), then F_concat."""
    p = _maps(5)
    layer = DWFF(epsilon=1e-4)
    layer(p)
    raws = [RNG.uniform(-0.5, 2.0, size=2).astype("float32") for _ in range(5)] + [
        RNG.uniform(0.1, 2.0, 5).astype("float32")
    ]
    for fusion, raw in zip(layer.fusions, raws):
        fusion.fusion_weights.assign(raw)

    def f_add(a, b, raw):
        w = _weights(raw, 1e-4)
        return _swish(w[0] * a + w[1] * b)

    q4 = f_add(p[0], p[4], raws[0])
    q3 = f_add(p[3], q4, raws[1])
    q2 = f_add(p[2], p[3], raws[2])
    q1 = f_add(p[1], p[2], raws[3])
    q0 = f_add(p[0], p[1], raws[4])
    w = _weights(raws[5], 1e-4)
    expected = _swish(np.concatenate([w[i] * q for i, q in enumerate([q0, q1, q2, q3, q4])], axis=-1))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(p)), expected, rtol=1e-5, atol=1e-5)


def test_dwff_aspp_concat_path_has_1280_channels_before_projection():
    x = RNG.standard_normal((1, 4, 4, 64)).astype("float32")
    aspp = DWFFASPP(256)
    out = aspp(x)
    fused = aspp.fuse(x)
    assert tuple(fused.shape) == (1, 4, 4, 1280)
    assert tuple(out.shape) == (1, 4, 4, 256)
    assert aspp.project.filters == 256 and aspp.dwff is not None


@pytest.mark.parametrize("filters", [8, 24])
def test_concat_path_is_five_times_branch_channels(filters):
    x = RNG.standard_normal((1, 6, 5, 16)).astype("float32")
    for layer in (ASPP(filters, fusion="concat"), DWFFASPP(filters)):
        assert tuple(layer.fuse(x).shape) == (1, 6, 5, 5 * filters)
        assert tuple(layer(x).shape) == (1, 6, 5, filters)


def test_aspp_rates_and_branches():
    assert aspp_rates(16) == (6, 12, 18)
    assert aspp_rates(8) == (12, 24, 36)
    aspp = ASPP(16, aspp_rates(16))
    assert [b.dilation_rate for b in aspp.branches[1:4]] == [6, 12, 18]
    assert aspp.branches[0].kernel_size == 1 and isinstance(aspp.branches[4], ImagePooling)
    with pytest.raises(ValueError):
        aspp_rates(32)


def test_image_pooling_is_shape_agnostic_and_constant():
    inp = keras.Input((None, None, 8))
    model = keras.Model(inp, ImagePooling(4)(inp))
    for hw in ((5, 7), (9, 3)):
        out = model.predict(RNG.standard_normal((2, *hw, 8)).astype("float32"), verbose=0)
        assert out.shape == (2, *hw, 4)
        np.testing.assert_allclose(out, np.broadcast_to(out[:, :1, :1], out.shape))


def test_xception_block_residual_edges():
    x = RNG.standard_normal((1, 8, 8, 16)).astype("float32")
    same = XceptionBlock(16)
    assert tuple(same(x).shape) == (1, 8, 8, 16) and same.projection is None
    down = XceptionBlock(32, strides=2, return_skip=True)
    out, skip = down(x)
    assert tuple(out.shape) == (1, 4, 4, 32) and tuple(skip.shape) == (1, 8, 8, 32)
    assert down.projection is not None and down.projection.strides == 2
    assert len(down.seps) == 3
    plain = XceptionBlock((8, 8, 24), residual="none")
    assert tuple(plain(x).shape) == (1, 8, 8, 24) and plain.projection is None


def test_csp_block_paths():
    x = RNG.standard_normal((1, 8, 8, 12)).astype("float32")
    block = CSPBlock(32, num_units=3)
    assert tuple(block(x).shape) == (1, 8, 8, 32)
    assert len(block.units) == 3 and block.path1_in.filters == 16 and block.path2.filters == 16
    assert block.transition.kernel_size == 1 and block.transition.filters == 32
    with pytest.raises(ValueError):
        ResidualUnit(8)(x)  # 12 channels in, 8 expected


def test_scale_channels():
    assert [divisible_channels(c) for c in (32, 48, 256, 728, 1024, 2048)] == [32, 48, 256, 728, 1024, 2048]
    assert divisible_channels(256, 0.125) == 32 and divisible_channels(48, 0.125) == 8
    assert divisible_channels(24, 0.125) == 8


LAYERS = [
    lambda: FastNormalizedFusion("concat", epsilon=1e-3, name="fnf"),
    lambda: DWFF(name="dwff"),
    lambda: ASPP(8, (2, 4, 6), separable=False, dropout=0.0, name="aspp"),
    lambda: DWFFASPP(8, (2, 4, 6), name="dwff_aspp"),
    lambda: XceptionBlock((8, 8, 16), strides=2, dilation_rate=1, name="xb"),
    lambda: CSPBlock(16, num_units=2, dilation_rate=2, separable=True, name="csp"),
    lambda: InvertedResidual(8, expansion=6, strides=1, name="ir"),
]


def _apply(layer, inp):
    if isinstance(layer, (FastNormalizedFusion, DWFF)):
        return layer([inp] * (5 if isinstance(layer, DWFF) else 3))
    return layer(inp)


@pytest.mark.parametrize("make", LAYERS)
def test_layer_config_and_keras_file_round_trip(make, tmp_path):
    layer = make()
    inp = keras.Input((8, 8, 8))
    model = keras.Model(inp, _apply(layer, inp))
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = RNG.standard_normal((2, 8, 8, 8)).astype("float32")
    path = tmp_path / "layer.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
