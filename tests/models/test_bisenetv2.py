"""BiSeNet V2 baseline (Yu et al. 2021; paper 1, section 4.3, Table 3)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from xray_seg.layers.bisenet import (  # noqa: E402
    BilateralGuidedAggregation,
    ContextEmbedding,
    GatherExpand,
    SegHead,
    StemBlock,
)
from xray_seg.layers.conv import SeparableConvBNAct, scale_channels  # noqa: E402
from xray_seg.models.bisenetv2 import (  # noqa: E402
    BOOSTER_INPUTS,
    DETAIL_OUTPUT,
    SEMANTIC_OUTPUT,
    build_bisenetv2,
)

TINY = 0.125
NUM_CLASSES = 6
AUX_KEYS = {"logits", "aux", "aux2", "aux3", "aux4"}


def _spatial_and_channels(model, name):
    shape = model.get_layer(name).output.shape
    return shape[1], shape[2], shape[3]


def test_aux_returns_booster_logits_at_input_resolution(toy_batch):
    model = build_bisenetv2(NUM_CLASSES, (64, 64, 3), width=TINY, aux=True)
    images, _ = toy_batch()
    out = model(images)
    assert set(out) == AUX_KEYS
    for key, value in out.items():
        assert tuple(value.shape) == (2, 64, 64, NUM_CLASSES), key
    # the boosters are extra heads on the same network: the main logits do not change
    plain = build_bisenetv2(NUM_CLASSES, (64, 64, 3), width=TINY)
    for layer in plain.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    np.testing.assert_allclose(plain.predict(images, verbose=0), model.predict(images, verbose=0)["logits"], atol=1e-5)


def test_branch_resolutions_and_table1_channels():
    """Detail Branch at 1/8 (128 ch), Semantic Branch stem 1/4 (16), S3 1/8 (32), S4 1/16 (64), S5 1/32 (128)."""
    for width in (1.0, TINY):
        model = build_bisenetv2(NUM_CLASSES, (64, 64, 3), width=width)
        c = lambda n, width=width: scale_channels(n, width)  # noqa: E731
        assert _spatial_and_channels(model, "detail_s1_2") == (32, 32, c(64))
        assert _spatial_and_channels(model, "detail_s2_3") == (16, 16, c(64))
        assert _spatial_and_channels(model, DETAIL_OUTPUT) == (8, 8, c(128))
        assert _spatial_and_channels(model, "semantic_stem") == (16, 16, c(16))
        assert _spatial_and_channels(model, "semantic_s3_2") == (8, 8, c(32))
        assert _spatial_and_channels(model, "semantic_s4_2") == (4, 4, c(64))
        assert _spatial_and_channels(model, "semantic_s5_4") == (2, 2, c(128))
        assert _spatial_and_channels(model, SEMANTIC_OUTPUT) == (2, 2, c(128))
        assert _spatial_and_channels(model, "bga") == (8, 8, c(128))
    assert set(BOOSTER_INPUTS) == AUX_KEYS - {"logits"}


def test_semantic_ratio_scales_the_semantic_branch_only():
    model = build_bisenetv2(NUM_CLASSES, (64, 64, 3), width=0.25, semantic_ratio=0.5)
    assert _spatial_and_channels(model, "semantic_stem")[2] == 8  # 64 * 0.5 * 0.25
    assert _spatial_and_channels(model, SEMANTIC_OUTPUT)[2] == 64  # 4 * (128 * 0.5) * 0.25
    assert _spatial_and_channels(model, DETAIL_OUTPUT)[2] == 32  # unchanged: 128 * 0.25
    assert tuple(model.output.shape) == (None, 64, 64, NUM_CLASSES)


def test_gather_expand_structure():
    """Fig. 5: stride 2 has two depthwise convs (expansion 6) and a separable shortcut."""
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 8)).astype("float32")
    down = GatherExpand(16, strides=2, expansion=6)
    assert tuple(down(x).shape) == (1, 8, 8, 16)
    assert tuple(down.expand_dw.kernel.shape) == (3, 3, 8, 6)  # 8 -> 48 channels, stride 2
    assert down.expand_dw.strides == (2, 2)
    assert tuple(down.second_dw.kernel.shape) == (3, 3, 48, 1)
    assert isinstance(down.shortcut, SeparableConvBNAct) and down.shortcut.strides == 2
    same = GatherExpand(8, strides=1)
    assert tuple(same(x).shape) == (1, 16, 16, 8)
    assert same.second_dw is None and same.shortcut is None
    with pytest.raises(ValueError, match="filters == input channels"):
        GatherExpand(12, strides=1)(x)
    with pytest.raises(ValueError, match="strides"):
        GatherExpand(8, strides=3)


@pytest.mark.parametrize(
    "make_layer, shapes",
    [
        (lambda: StemBlock(8), [(1, 32, 32, 3)]),
        (lambda: GatherExpand(16, strides=2, expansion=6), [(1, 16, 16, 8)]),
        (lambda: GatherExpand(8, strides=1, expansion=4), [(1, 16, 16, 8)]),
        (lambda: ContextEmbedding(), [(1, 4, 4, 8)]),
        (lambda: BilateralGuidedAggregation(8), [(1, 16, 16, 8), (1, 4, 4, 6)]),
        (lambda: SegHead(8, 3, dropout=0.2), [(1, 8, 8, 8)]),
    ],
)
def test_layer_get_config_round_trip(make_layer, shapes):
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=s).astype("float32") for s in shapes]
    inputs = inputs[0] if len(inputs) == 1 else inputs
    layer = make_layer()
    out = layer(inputs)
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    clone(inputs)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == config
    np.testing.assert_allclose(np.asarray(clone(inputs)), np.asarray(out), atol=1e-6)
    # also through Keras' registered-name serialisation
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer) and revived.get_config() == config


def test_input_size_not_a_multiple_of_32():
    model = build_bisenetv2(NUM_CLASSES, (None, None, 3), width=TINY, aux=True)
    images = np.random.default_rng(2).uniform(0, 255, (1, 72, 40, 3)).astype("float32")
    for value in model(images).values():
        assert tuple(value.shape) == (1, 72, 40, NUM_CLASSES)


def test_full_size_parameter_count():
    """At width 1.0 the main path has ~3.4M weights (BiSeNet V2 paper); the boosters add ~0.28M."""
    main = build_bisenetv2(19, (64, 64, 3))
    trainable = sum(int(np.prod(w.shape)) for w in main.trainable_weights)
    assert 3.3e6 < trainable < 3.5e6, trainable
    with_aux = build_bisenetv2(19, (64, 64, 3), aux=True)
    extra = sum(int(np.prod(w.shape)) for w in with_aux.trainable_weights) - trainable
    assert 0.2e6 < extra < 0.4e6, extra
