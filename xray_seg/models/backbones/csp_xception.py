"""CSP-Xception backbone of CWF-DeepLabv3+ (paper 1, section 3.2, Fig. 3a).

Paper 1: four CSP_blocks and two Xception_blocks; a 512x512x3 image gives a low-level feature
of 128x128x256 and a high-level feature of 32x32x1024. The layout where the paper is silent
(stem, block order, strides, N; the reasons: docs/models.md, "Paper 1 (CWF-DeepLabv3+):
readings of the paper"):

==========  ==============================  ============  =================
stage       layer                           stride        out (512 input)
==========  ==============================  ============  =================
stem        conv3x3 32, s2; conv3x3 64, s2  4             128x128x64
csp1        CSPBlock(256, N=1)              4             128x128x256 (low)
xception1   XceptionBlock(512, s2)          8             64x64x512
csp2        CSPBlock(512, N=1)              8             64x64x512
xception2   XceptionBlock(1024, s2)         16            32x32x1024
csp3        CSPBlock(1024, N=1)             16            32x32x1024
csp4        CSPBlock(1024, N=1)             16            32x32x1024 (high)
==========  ==============================  ============  =================

CSP blocks keep the resolution; the Xception blocks downsample through their strided third
separable conv and 1x1 projection. The low-level feature is csp1's output, the high-level one
csp4's. ``units=(1, 1, 1, 1)`` and ``separable=False`` (regular 3x3 convs in the units) are the
defaults; both are options. Output stride 8: xception2 runs at stride 1 and the later 3x3 convs
at rate 2 (:class:`~xray_seg.models.backbones.common.StrideSchedule`).
"""

from __future__ import annotations

import keras

from xray_seg.layers.blocks import CSPBlock, XceptionBlock
from xray_seg.layers.conv import ConvBNAct, divisible_channels
from xray_seg.models.backbones.common import StrideSchedule, check_output_stride

#: Channels of stem conv 1, stem conv 2, csp1 (low level), xception1/csp2, xception2/csp3/csp4 (high level).
CSP_XCEPTION_CHANNELS = (32, 64, 256, 512, 1024)


def build_csp_xception(
    input_shape=(512, 512, 3),
    *,
    width: float = 1.0,
    units=(1, 1, 1, 1),
    separable: bool = False,
    output_stride: int = 16,
    name: str = "csp_xception",
) -> keras.Model:
    """Build the CSP-Xception backbone as a model with outputs ``[low_level, high_level]``.

    Args:
        input_shape: (H, W, C) of the (already normalised) input; H, W may be None.
        width: channel multiplier (1.0 = the paper: 256 low-level, 1024 high-level channels).
        units: N, residual units of the four CSP blocks.
        separable: depthwise separable 3x3 convs inside the CSP residual units.
        output_stride: 16 (paper) or 8.
        name: model name.

    Returns:
        ``keras.Model(inputs, [low, high])`` with low at stride 4, high at ``output_stride``.

    Example:
        >>> from xray_seg.models.backbones.csp_xception import build_csp_xception
        >>> low, high = build_csp_xception((64, 64, 3), width=0.25).outputs
        >>> tuple(low.shape), tuple(high.shape)
        ((None, 16, 16, 64), (None, 4, 4, 256))
    """
    check_output_stride(output_stride)
    units = tuple(int(u) for u in units)
    if len(units) != 4 or min(units) < 0:
        raise ValueError(f"units must be four non-negative ints (one per CSP block), got {units}")
    c_stem1, c_stem2, c_low, c_mid, c_high = (divisible_channels(c, width) for c in CSP_XCEPTION_CHANNELS)
    schedule = StrideSchedule(output_stride)

    inputs = keras.Input(input_shape, name="input")
    x = ConvBNAct(c_stem1, 3, strides=schedule.step(2)[0], name="stem_conv1")(inputs)
    x = ConvBNAct(c_stem2, 3, strides=schedule.step(2)[0], name="stem_conv2")(x)
    low = CSPBlock(c_low, units[0], separable=separable, name="csp1")(x)

    stride, rate = schedule.step(2)
    x = XceptionBlock(c_mid, strides=stride, dilation_rate=rate, name="xception1")(low)
    x = CSPBlock(c_mid, units[1], dilation_rate=schedule.rate, separable=separable, name="csp2")(x)

    stride, rate = schedule.step(2)
    x = XceptionBlock(c_high, strides=stride, dilation_rate=rate, name="xception2")(x)
    x = CSPBlock(c_high, units[2], dilation_rate=schedule.rate, separable=separable, name="csp3")(x)
    high = CSPBlock(c_high, units[3], dilation_rate=schedule.rate, separable=separable, name="csp4")(x)
    return keras.Model(inputs, [low, high], name=name)
