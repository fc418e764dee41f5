"""CWF-DeepLabv3+ specifics (paper 1, section 3): CSP-Xception shapes, DWFF-ASPP, decoder.

The generic model contract (forward, save/load, training, other backends) is in
test_model_contract.py, parametrised over every registered model.
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from xray_seg.layers.aspp import DWFFASPP  # noqa: E402
from xray_seg.layers.blocks import CSPBlock, XceptionBlock  # noqa: E402
from xray_seg.models.backbones.csp_xception import build_csp_xception  # noqa: E402
from xray_seg.models.cwf_deeplab import build_cwf_deeplabv3plus  # noqa: E402


def test_csp_xception_paper_shapes_at_512():
    """Section 3.2: 512x512x3 -> low level 128x128x256, high level 32x32x1024."""
    backbone = build_csp_xception((512, 512, 3))
    x = np.random.default_rng(0).uniform(-1, 1, (1, 512, 512, 3)).astype("float32")
    low, high = backbone(x, training=False)
    assert tuple(low.shape) == (1, 128, 128, 256)
    assert tuple(high.shape) == (1, 32, 32, 1024)
    assert np.isfinite(keras.ops.convert_to_numpy(high)).all()


def test_csp_xception_is_four_csp_and_two_xception_blocks():
    """Fig. 3a: four CSP_blocks and two Xception_blocks."""
    backbone = build_csp_xception((64, 64, 3), width=0.25, units=(1, 2, 3, 1))
    csp = [layer for layer in backbone.layers if isinstance(layer, CSPBlock)]
    xcp = [layer for layer in backbone.layers if isinstance(layer, XceptionBlock)]
    assert len(csp) == 4 and len(xcp) == 2
    assert [len(b.units) for b in csp] == [1, 2, 3, 1]


def test_csp_xception_tiny_width_shapes():
    backbone = build_csp_xception((64, 64, 3), width=0.125)
    low, high = backbone(np.zeros((2, 64, 64, 3), "float32"))
    assert tuple(low.shape) == (2, 16, 16, 32)
    assert tuple(high.shape) == (2, 4, 4, 128)


def test_csp_xception_output_stride_8():
    backbone = build_csp_xception((64, 64, 3), width=0.125, output_stride=8)
    low, high = backbone.outputs
    assert tuple(low.shape)[1:3] == (16, 16) and tuple(high.shape)[1:3] == (8, 8)
    assert backbone.get_layer("xception2").strides == 1
    assert backbone.get_layer("csp4").dilation_rate == 2


def test_cwf_uses_dwff_aspp_and_the_decoder_of_section_3_1():
    model = build_cwf_deeplabv3plus(6, (64, 64, 3), width=0.125)
    aspp = model.get_layer("aspp")
    assert isinstance(aspp, DWFFASPP) and aspp.rates == (6, 12, 18)
    assert model.get_layer("decoder_low_1x1").filters == 8  # 48 * 0.125 rounded to 8
    assert model.get_layer("decoder_conv1").filters == 32 and model.get_layer("decoder_conv2").filters == 32
    assert model.get_layer("decoder_conv1").kernel_size == 3
    assert model.get_layer("classifier").filters == 6
    # encoder output (stride 16) is upsampled to the low-level size (stride 4): x4
    up = model.get_layer("decoder_upsample")
    assert tuple(up.output.shape)[1:3] == (16, 16)
    assert tuple(model.get_layer("aspp").output.shape)[1:3] == (4, 4)
    # full width: 1280 channels before the 1x1 projection, 256 after
    full = DWFFASPP(256)
    x = np.zeros((1, 2, 2, 1024), "float32")
    assert tuple(full.fuse(x).shape)[-1] == 1280 and tuple(full(x).shape)[-1] == 256


def test_cwf_output_stride_8_doubles_the_rates():
    model = build_cwf_deeplabv3plus(3, (64, 64, 3), width=0.125, output_stride=8)
    assert model.get_layer("aspp").rates == (12, 24, 36)
    assert tuple(model(np.zeros((1, 64, 64, 3), "float32"), training=False).shape) == (1, 64, 64, 3)
