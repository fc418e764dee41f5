"""Aligned Xception backbone of DeepLabv3+ (Chen et al. 2018, section 3.2 and Fig. 4).

The "modified aligned Xception" (Xception-65): entry flow, middle flow of 16 repeated
blocks and exit flow, with every max pooling replaced by a strided depthwise separable
conv and BN + ReLU after each 3x3 depthwise conv (see
:class:`~xray_seg.layers.blocks.XceptionBlock`).

======================  =========================================  ======  ===========
flow                    module                                     stride  channels
======================  =========================================  ======  ===========
entry                   conv3x3 32 s2, conv3x3 64                  2       64
entry block1            sep x3 (128), s2, projection               4       128
entry block2            sep x3 (256), s2, projection; low level    8       256
                        is the 2nd sep conv (stride 4, 256 ch)
entry block3            sep x3 (728), s2, projection               16      728
middle x16              sep x3 (728), identity                     16      728
exit block1             sep (728, 1024, 1024), s2, projection      (32)    1024
exit block2             sep (1536, 1536, 2048), no residual        (32)    2048
======================  =========================================  ======  ===========

At output stride 16 the stride of exit block1 becomes atrous rate 2 (DeepLab's rule);
at output stride 8 entry block3 also runs at stride 1, the middle flow at rate 2 and
the exit flow at rate 4. A 512x512 image gives low level 128x128x256 and high level
32x32x2048 at output stride 16.
"""

from __future__ import annotations

import keras

from xray_seg.layers.blocks import XceptionBlock
from xray_seg.layers.conv import ConvBNAct, divisible_channels
from xray_seg.models.backbones.common import StrideSchedule, check_output_stride


def build_aligned_xception(
    input_shape=(512, 512, 3),
    *,
    width: float = 1.0,
    middle_blocks: int = 16,
    output_stride: int = 16,
    name: str = "aligned_xception",
) -> keras.Model:
    """Build aligned Xception as a model with outputs ``[low_level, high_level]``.

    Args:
        input_shape: (H, W, C) of the normalised input; H, W may be None.
        width: channel multiplier (1.0 = Xception-65).
        middle_blocks: repeats of the middle-flow block (16 in Xception-65, 8 in Xception-41).
        output_stride: 16 (paper) or 8.
        name: model name.

    Example:
        >>> from xray_seg.models.backbones.xception import build_aligned_xception
        >>> low, high = build_aligned_xception((64, 64, 3), width=0.25, middle_blocks=2).outputs
        >>> tuple(low.shape), tuple(high.shape)
        ((None, 16, 16, 64), (None, 4, 4, 512))
    """
    check_output_stride(output_stride)
    c = lambda n: divisible_channels(n, width)  # noqa: E731
    schedule = StrideSchedule(output_stride)

    inputs = keras.Input(input_shape, name="input")
    x = ConvBNAct(c(32), 3, strides=schedule.step(2)[0], name="entry_conv1")(inputs)
    x = ConvBNAct(c(64), 3, name="entry_conv2")(x)
    stride, rate = schedule.step(2)
    x = XceptionBlock(c(128), strides=stride, dilation_rate=rate, name="entry_block1")(x)
    stride, rate = schedule.step(2)
    x, low = XceptionBlock(c(256), strides=stride, dilation_rate=rate, return_skip=True, name="entry_block2")(x)
    stride, rate = schedule.step(2)
    x = XceptionBlock(c(728), strides=stride, dilation_rate=rate, name="entry_block3")(x)
    for i in range(middle_blocks):
        x = XceptionBlock(c(728), dilation_rate=schedule.rate, name=f"middle_block{i + 1}")(x)
    stride, rate = schedule.step(2)
    x = XceptionBlock((c(728), c(1024), c(1024)), strides=stride, dilation_rate=rate, name="exit_block1")(x)
    high = XceptionBlock((c(1536), c(1536), c(2048)), dilation_rate=schedule.rate, residual="none", name="exit_block2")(
        x
    )
    return keras.Model(inputs, [low, high], name=name)
