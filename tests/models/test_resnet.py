"""Dilated ResNet backbone (CycleNet section 4.1): strides, dilations, widths, weights files."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from xray_seg.core.errors import ModelError  # noqa: E402
from xray_seg.models.backbones.resnet import (  # noqa: E402
    build_resnet_backbone,
    save_backbone_weights,
)

TINY = dict(width=0.125, blocks=(1, 1, 1, 1))


@pytest.mark.parametrize("output_stride, c3_c4_stride", [(8, 8), (16, 16)])
def test_feature_strides_and_channels(output_stride, c3_c4_stride):
    model = build_resnet_backbone((64, 64, 3), output_stride=output_stride, **TINY)
    feats = model(np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32"))
    size = 64 // c3_c4_stride
    assert tuple(feats["c1"].shape) == (2, 16, 16, 32)  # stride 4, 256 * width
    assert tuple(feats["c2"].shape) == (2, 8, 8, 64)  # stride 8, 512 * width
    assert tuple(feats["c3"].shape) == (2, size, size, 128)
    assert tuple(feats["c4"].shape) == (2, size, size, 256)


def test_dilated_stages_follow_the_paper():
    """OS8: the last two stages keep stride 1 and use rates 2 and 4 (section 4.1); OS16:
    stage 3 strides, stage 4 uses rate 2. Stride sits on the 3x3 conv (v1.5)."""
    blocks = (1, 1, 2, 2)
    os8 = build_resnet_backbone((64, 64, 3), output_stride=8, width=0.125, blocks=blocks)
    for stage, rate in ((3, 2), (4, 4)):
        for block in (1, 2):
            conv = os8.get_layer(f"stage{stage}_block{block}_conv2")
            assert (conv.strides, conv.dilation_rate) == (1, rate)
    assert os8.get_layer("stage2_block1_conv2").strides == 2
    assert os8.get_layer("stage2_block1_conv1").strides == 1
    os16 = build_resnet_backbone((64, 64, 3), output_stride=16, width=0.125, blocks=blocks)
    assert (os16.get_layer("stage3_block1_conv2").strides, os16.get_layer("stage3_block1_conv2").dilation_rate) == (
        2,
        1,
    )
    assert (os16.get_layer("stage4_block2_conv2").strides, os16.get_layer("stage4_block2_conv2").dilation_rate) == (
        1,
        2,
    )


@pytest.mark.parametrize("depth, expected", [(50, 23_508_032), (101, 42_500_160)])
def test_standard_stem_matches_reference_resnet_parameter_count(depth, expected):
    """torchvision's ResNet-50/101 minus the 1000-class fc (2,049,000 parameters)."""
    model = build_resnet_backbone((64, 64, 3), depth=depth, stem="standard")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == expected
    bottlenecks = {layer.name.rsplit("_", 1)[0] for layer in model.layers if layer.name.endswith("_add")}
    assert len(bottlenecks) == {50: 16, 101: 33}[depth]


def test_deep_stem_and_zero_initialised_residual_branch():
    model = build_resnet_backbone((64, 64, 3), **TINY)
    assert [model.get_layer(f"stem_conv{i}").filters for i in (1, 2, 3)] == [8, 8, 16]
    gamma = keras.ops.convert_to_numpy(model.get_layer("stage1_block1_conv3").bn.gamma)
    assert np.all(gamma == 0.0)


def test_weights_round_trip_by_layer_name(tmp_path):
    source = build_resnet_backbone((32, 32, 3), name="first", **TINY)
    path = tmp_path / "backbone.weights.h5"
    save_backbone_weights(source, path)
    target = build_resnet_backbone((32, 32, 3), name="second", weights=path, **TINY)
    x = np.random.default_rng(1).normal(size=(1, 32, 32, 3)).astype("float32")
    a, b = source(x), target(x)
    for key in ("c1", "c2", "c3", "c4"):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a[key]), keras.ops.convert_to_numpy(b[key]))


def test_keras_weights_file_of_the_same_backbone_loads(tmp_path):
    source = build_resnet_backbone((32, 32, 3), **TINY)
    path = tmp_path / "keras.weights.h5"
    source.save_weights(path)
    target = build_resnet_backbone((32, 32, 3), weights=path, **TINY)
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


@pytest.mark.parametrize("saver", ["by_name", "keras"])
def test_mismatched_weights_raise_model_error_naming_the_file(tmp_path, saver):
    source = build_resnet_backbone((32, 32, 3), width=0.25, blocks=(1, 1, 1, 1))
    path = tmp_path / f"{saver}.weights.h5"
    if saver == "by_name":
        save_backbone_weights(source, path)
    else:
        source.save_weights(path)
    with pytest.raises(ModelError) as err:
        build_resnet_backbone((32, 32, 3), weights=path, **TINY)
    assert str(path) in err.value.message


def test_missing_weights_file_and_bad_options(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        build_resnet_backbone((32, 32, 3), weights=tmp_path / "none.weights.h5", **TINY)
    with pytest.raises(ModelError):
        build_resnet_backbone((32, 32, 3), depth=34)
    with pytest.raises(ModelError):
        build_resnet_backbone((32, 32, 3), output_stride=4, **TINY)
