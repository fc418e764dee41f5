"""The DeepLab family (CWF-DeepLabv3+, DeepLabv3+ Xception, MobileNetV2-DeepLabv3+): input sizes,
options, and the baselines' backbones (paper 1, Table 3; Chen et al. 2018; Sandler et al. 2018).
The generic contract (outputs, round trip, training steps, other backends) is in test_model_contract.py."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from xray_seg.core.errors import ModelError  # noqa: E402
from xray_seg.evaluation.flops import count_flops, count_params  # noqa: E402
from xray_seg.layers.blocks import XceptionBlock  # noqa: E402
from xray_seg.models.backbones.mobilenetv2 import build_mobilenetv2  # noqa: E402
from xray_seg.models.backbones.xception import build_aligned_xception  # noqa: E402
from xray_seg.models.registry import available_models, build_model  # noqa: E402

MODELS = ["cwf_deeplabv3plus", "deeplabv3plus", "mobilenetv2_deeplabv3plus"]
TINY = {"width": 0.125}
SMALL_OPTIONS = {"deeplabv3plus": {"middle_blocks": 2}}


def _tiny(name, input_shape=(64, 64, 3), **options):
    return build_model(name, 3, input_shape, **TINY, **SMALL_OPTIONS.get(name, {}), **options)


def _infer(model, x):
    """Eager inference (no tf.function tracing: keeps the tests fast on 2 busy cores)."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def _pixels(n=2, size=64, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("name", MODELS)
def test_any_input_size(name):
    model = _tiny(name, input_shape=(None, None, 3))
    for hw in ((64, 96), (48, 48)):
        x = np.random.default_rng(3).uniform(0, 255, (1, *hw, 3)).astype("float32")
        assert _infer(model, x).shape == (1, *hw, 3)


@pytest.mark.parametrize("name", MODELS)
def test_bad_output_stride_is_a_model_error(name):
    with pytest.raises(ModelError):
        _tiny(name, output_stride=32)


def test_aligned_xception_flows_and_shapes():
    backbone = build_aligned_xception((128, 128, 3))
    low, high = backbone.outputs
    assert tuple(low.shape) == (None, 32, 32, 256)  # stride 4
    assert tuple(high.shape) == (None, 8, 8, 2048)  # output stride 16
    names = [layer.name for layer in backbone.layers if isinstance(layer, XceptionBlock)]
    assert sum(n.startswith("middle_block") for n in names) == 16
    assert [n for n in names if not n.startswith("middle")] == [
        "entry_block1",
        "entry_block2",
        "entry_block3",
        "exit_block1",
        "exit_block2",
    ]
    exit1 = backbone.get_layer("exit_block1")
    assert exit1.filters == (728, 1024, 1024) and exit1.strides == 1  # stride -> rate at OS16
    assert backbone.get_layer("exit_block2").dilation_rate == 2
    assert backbone.get_layer("exit_block2").filters == (1536, 1536, 2048)


def test_aligned_xception_output_stride_8():
    backbone = build_aligned_xception((64, 64, 3), width=0.125, middle_blocks=1, output_stride=8)
    low, high = backbone.outputs
    assert tuple(low.shape)[1:3] == (16, 16) and tuple(high.shape)[1:3] == (8, 8)
    assert backbone.get_layer("middle_block1").dilation_rate == 2
    assert backbone.get_layer("exit_block2").dilation_rate == 4


@pytest.mark.parametrize("output_stride, high_hw", [(16, 8), (8, 16)])
def test_mobilenetv2_shapes(output_stride, high_hw):
    backbone = build_mobilenetv2((128, 128, 3), output_stride=output_stride)
    low, high = backbone.outputs
    assert tuple(low.shape) == (None, 32, 32, 24)
    assert tuple(high.shape) == (None, high_hw, high_hw, 320)


def test_flop_counter_matches_hand_count():
    from xray_seg.evaluation.flops import count_flops

    inp = keras.Input((16, 16, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x)
    model = keras.Model(inp, x)
    counted = count_flops(model, (16, 16, 4))
    assert counted.macs == 16 * 16 * 9 * 4 * 8 + 8 * 8 * 9 * 8
    assert counted.flops == 2 * counted.macs


def test_models_command_lists_every_registered_model(capsys):
    from xray_seg.cli import main

    assert main(["models", "mobilenetv2_deeplabv3plus", "--size", "128", "--width", "0.25"]) == 0
    line = [row for row in capsys.readouterr().out.splitlines() if row.startswith("mobilenetv2_deeplabv3plus")][0]
    params, gmacs, gflops = (float(v) for v in line.split()[1:4])
    model = build_model("mobilenetv2_deeplabv3plus", 6, (128, 128, 3), width=0.25)  # the command's 6 classes
    flops = count_flops(model, (128, 128, 3))
    assert params == round(sum(count_params(model)) / 1e6, 2)
    assert (gmacs, gflops) == (round(flops.gmacs, 3), round(flops.gflops, 3))
    assert main(["models", "--names-only"]) == 0
    listed = {row.split()[0] for row in capsys.readouterr().out.splitlines()}
    assert {s.name for s in available_models()} <= listed
    assert main(["models", "no_such_model"]) == 2
