"""IFBFNet: feature balanced fusion (eqs. 2-3), shapes and channel counts (section 3.1),
auxiliary branch (section 3.4), the 10x lr-multiplier regex (section 4.1), presets.
The generic contract (round trip, training steps, other backends) is in test_model_contract.py."""

import re

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from xray_seg.core.config import load_config  # noqa: E402
from xray_seg.core.errors import ModelError  # noqa: E402
from xray_seg.layers.fusion import FeatureBalancedFusion  # noqa: E402
from xray_seg.models.ifbfnet import build_ifbfnet  # noqa: E402
from xray_seg.models.registry import build_model  # noqa: E402
from xray_seg.training.config import TrainConfig  # noqa: E402
from xray_seg.training.optim import build_optimizer  # noqa: E402

TINY = dict(width=0.125, backbone_blocks=(1, 1, 1, 1))
LR_REGEX = "aux|balanced_fusion"
RNG = np.random.default_rng(0)


def _pixels(batch=2, size=64):
    return RNG.uniform(0, 255, size=(batch, size, size, 3)).astype("float32")


def _in_shapes(layer):
    inp = layer.input
    return [tuple(t.shape) for t in inp] if isinstance(inp, (list, tuple)) else [tuple(inp.shape)]


# --- feature balanced fusion (section 3.2) -------------------------------------------------
def _fusion_inputs(c_h=6, c_l=3):
    high = RNG.normal(size=(2, 5, 7, c_h)).astype("float32")
    low = RNG.normal(size=(2, 5, 7, c_l)).astype("float32")
    return high, low


def _zero_conv(layer, bias=0.0):
    conv = layer.weight_conv
    conv.kernel.assign(np.zeros(conv.kernel.shape, "float32"))
    conv.bias.assign(np.full(conv.bias.shape, bias, "float32"))


def test_fusion_weights_lie_in_unit_interval_one_per_channel_and_image():
    high, low = _fusion_inputs()
    layer = FeatureBalancedFusion()
    w = keras.ops.convert_to_numpy(layer.balance_weights([high, low]))
    assert w.shape == (2, 1, 1, 9)
    assert np.all(w > 0) and np.all(w < 1)
    # The two images have different content, so their balance weights differ (eq. 2 pools per image).
    assert not np.allclose(w[0], w[1])
    assert layer.name.startswith("feature_balanced_fusion")  # default name matches the lr regex
    assert re.search(LR_REGEX, layer.weight_conv.kernel.path)


def test_zero_weight_conv_gives_one_and_a_half_times_the_concatenation():
    high, low = _fusion_inputs()
    layer = FeatureBalancedFusion()
    layer.build([high.shape, low.shape])
    _zero_conv(layer)
    out = keras.ops.convert_to_numpy(layer([high, low]))
    expected = 1.5 * np.concatenate([high, low], axis=-1)  # sigmoid(0) = 0.5, plus the residual
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)

    no_residual = FeatureBalancedFusion(residual=False)
    no_residual.build([high.shape, low.shape])
    _zero_conv(no_residual)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(no_residual([high, low])),
        0.5 * np.concatenate([high, low], -1),
        rtol=1e-6,
        atol=1e-6,
    )


def test_weights_scale_high_and_low_parts_separately():
    """W = [W_h, W_l]: drive W_h to 1 and W_l to 0 with the bias; out = [2 Feat_h, Feat_l]."""
    high, low = _fusion_inputs(c_h=4, c_l=2)
    layer = FeatureBalancedFusion()
    layer.build([high.shape, low.shape])
    _zero_conv(layer)
    layer.weight_conv.bias.assign(np.array([40.0] * 4 + [-40.0] * 2, "float32"))
    out = keras.ops.convert_to_numpy(layer([high, low]))
    np.testing.assert_allclose(out[..., :4], 2.0 * high, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[..., 4:], low, rtol=1e-5, atol=1e-5)


def test_fusion_config_round_trip():
    layer = FeatureBalancedFusion(residual=False, name="balanced_fusion_x")
    clone = FeatureBalancedFusion.from_config(layer.get_config())
    assert clone.residual is False and clone.name == "balanced_fusion_x"
    assert layer.compute_output_shape([(None, 8, 8, 5), (None, 8, 8, 3)]) == (None, 8, 8, 8)


# --- the network (section 3.1) -------------------------------------------------------------
def test_tiny_outputs_and_strides():
    model = build_ifbfnet(5, (64, 64, 3), aux=True, **TINY)
    out = model(_pixels())
    assert set(out) == {"logits", "aux"}
    assert tuple(out["logits"].shape) == (2, 64, 64, 5)
    assert tuple(out["aux"].shape) == (2, 64, 64, 5)
    feats = model.get_layer("resnet").output
    assert tuple(feats["c1"].shape)[1:3] == (16, 16)  # S1 at stride 4
    assert tuple(feats["c4"].shape)[1:3] == (4, 4)  # output stride 16
    assert tuple(model.get_layer("aspp_project").output.shape)[1:3] == (4, 4)
    assert tuple(model.get_layer("spatial_conv3").output.shape)[1:3] == (16, 16)  # spatial stream at 1/4
    assert tuple(model.get_layer("classifier").output.shape)[1:3] == (16, 16)  # then x4


def test_full_width_channel_counts_match_section_3():
    """Width 1.0 with one block per stage at 64x64: every channel count of sections 3.1-3.4."""
    model = build_ifbfnet(7, (64, 64, 3), aux=True, backbone_blocks=(1, 1, 1, 1))
    feats = model.get_layer("resnet").output
    assert feats["c1"].shape[-1] == 256 and feats["c4"].shape[-1] == 2048
    # Encoder: 2048 -> 256 before ASPP; ASPP = pooling + rates 6/12/18 (no 1x1 branch) -> 256.
    assert _in_shapes(model.get_layer("encoder_reduce"))[0][-1] == 2048
    assert model.get_layer("encoder_reduce").output.shape[-1] == 256
    rates = sorted(layer.dilation_rate for layer in model.layers if layer.name.startswith("aspp_rate"))
    assert rates == [6, 12, 18]
    assert all(model.get_layer(f"aspp_rate{r}").kernel_size == 3 for r in rates)
    assert [s[-1] for s in _in_shapes(model.get_layer("aspp_concat"))] == [256] * 4
    assert model.get_layer("aspp_project").output.shape[-1] == 256
    # Decoder: S1 256 -> 64 by a 3x3 conv; concat (320) -> two 3x3 convs to 256.
    low = model.get_layer("decoder_low_reduce")
    assert (low.kernel_size, low.output.shape[-1]) == (3, 64)
    assert _in_shapes(model.get_layer("decoder_conv1"))[0][-1] == 320
    for name in ("decoder_conv1", "decoder_conv2"):
        assert (model.get_layer(name).kernel_size, model.get_layer(name).output.shape[-1]) == (3, 256)
    # Fusion 1 balances the decoder feature (high) with the reduced S1 (low).
    assert [s[-1] for s in _in_shapes(model.get_layer("balanced_fusion1"))] == [256, 64]
    # Spatial stream: 7x7/2 64, 3x3/2 64, 1x1 128.
    convs = [model.get_layer(f"spatial_conv{i}") for i in (1, 2, 3)]
    assert [(c.kernel_size, c.strides, c.output.shape[-1]) for c in convs] == [(7, 2, 64), (3, 2, 64), (1, 1, 128)]
    # Concat with the spatial stream -> 1x1 conv to 256 -> fusion 2 (high 256, low spatial 128) = 384.
    conv3 = model.get_layer("decoder_conv3")
    assert (conv3.kernel_size, _in_shapes(conv3)[0][-1], conv3.output.shape[-1]) == (1, 320 + 128, 256)
    assert [s[-1] for s in _in_shapes(model.get_layer("balanced_fusion2"))] == [256, 128]
    # Two 1x1 convs: 384 -> 128 -> classes.
    head = model.get_layer("head_conv")
    assert (head.kernel_size, _in_shapes(head)[0][-1], head.output.shape[-1]) == (1, 384, 128)
    assert _in_shapes(model.get_layer("classifier"))[0][-1] == 128
    assert model.get_layer("classifier").output.shape[-1] == 7
    # Auxiliary branch: S1 (256) -> 3x3 conv 64 -> 1x1 conv to classes, at stride 4.
    aux_conv = model.get_layer("aux_conv")
    assert (aux_conv.kernel_size, _in_shapes(aux_conv)[0][1:], aux_conv.output.shape[-1]) == (3, (16, 16, 256), 64)
    assert model.get_layer("aux_classifier").output.shape[-1] == 7


def test_lr_multiplier_regex_matches_exactly_the_aux_and_fusion_variables():
    model = build_ifbfnet(4, (64, 64, 3), aux=True, **TINY)
    paths = [v.path for v in model.trainable_variables]
    matched = sorted(p for p in paths if re.search(LR_REGEX, p))
    assert matched == sorted(
        [
            "aux_conv/conv/kernel",
            "aux_conv/bn/gamma",
            "aux_conv/bn/beta",
            "aux_classifier/kernel",
            "aux_classifier/bias",
            "balanced_fusion1/weight_conv/kernel",
            "balanced_fusion1/weight_conv/bias",
            "balanced_fusion2/weight_conv/kernel",
            "balanced_fusion2/weight_conv/bias",
        ]
    )
    # The optimizer the trainer builds gives exactly those variables 10x.
    optimizer = build_optimizer("sgd", 0.01, lr_multipliers={LR_REGEX: 10.0})
    tenfold = sorted(p for p in paths if optimizer.multiplier_for(p) == 10.0)
    assert tenfold == matched
    assert sum(optimizer.multiplier_for(p) == 1.0 for p in paths) == len(paths) - len(matched)


def test_registry_options_and_errors():
    model = build_model("ifbfnet", 3, (32, 32, 3), spatial_channels=16, **TINY)
    assert tuple(model.output.shape) == (None, 32, 32, 3)
    assert model.get_layer("spatial_conv3").output.shape[-1] == 8  # 16 x 0.125, at least 8
    with pytest.raises(ModelError):
        build_model("ifbfnet", 3, (32, 32, 3), colour="blue", **TINY)
    with pytest.raises(ModelError):
        build_ifbfnet(3, (32, 32, 3), output_stride=32, **TINY)


def test_any_input_size_for_multi_scale_inference():
    model = build_ifbfnet(3, (None, None, 3), **TINY)
    for size in (40, 72):  # not multiples of 16: upsampling follows the reference sizes
        out = model(_pixels(1, size))
        assert tuple(out.shape) == (1, size, size, 3)


def test_presets_follow_section_4_1():
    for preset in ("ifbfnet_xray512", "ifbfnet_cityscapes"):
        cfg = load_config(TrainConfig, preset)
        assert cfg.model.name == "ifbfnet" and cfg.model.aux is True
        assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (
            "sgd",
            0.01,
            0.9,
            5e-4,
        )
        assert (cfg.optim.schedule, cfg.optim.power) == ("poly", 0.9) and cfg.optim.warmup_epochs > 0
        assert cfg.optim.lr_multipliers == {LR_REGEX: 10.0}
        assert (cfg.loss.type, cfg.loss.ohem_thresh, cfg.loss.aux_weight) == ("ohem", 0.7, 0.4)
        assert tuple(cfg.data.augment.scale_range) == (0.5, 2.0)
    city = load_config(TrainConfig, "ifbfnet_cityscapes")
    assert tuple(city.data.image_size) == (876, 876)
    steps = 2975 // (city.data.batch_size * 2)  # 2 GPUs
    assert abs(city.epochs * steps - 81_000) < steps  # 81k iterations
