"""MobileNetV2 backbone for MobileNetV2-DeepLabv3+ (Sandler et al. 2018, Table 2).

Paper 1's baseline "improved DeepLabv3+ based on MobileNetV2" (its ref. [16], Cao et al.
2021) swaps DeepLabv3+'s Xception for MobileNetV2. Layout (t expansion, c channels,
n repeats, s stride of the first repeat), after a 3x3 conv 32 s2:

    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)

The final 1x1 conv to 1280 channels of the classifier network is dropped (as in
DeepLab's MobileNetV2 feature extractor). The low-level feature is the output of the
24-channel stage (stride 4: 128x128x24 at 512), the high-level feature the 320-channel
stage (stride 16 at output stride 16: the 160-channel stage then runs at stride 1 with
rate 2; 32x32x320 at 512). Width multiplies every channel count with MobileNet's
round-to-8 rule.
"""

from __future__ import annotations

import keras

from xray_seg.layers.blocks import InvertedResidual
from xray_seg.layers.conv import ConvBNAct, divisible_channels
from xray_seg.models.backbones.common import StrideSchedule, check_output_stride

#: (expansion t, channels c, repeats n, stride s) of Sandler et al. 2018, Table 2.
MOBILENETV2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
#: Index of the stage whose output is the low-level (stride-4) feature.
LOW_LEVEL_STAGE = 1


def build_mobilenetv2(
    input_shape=(512, 512, 3), *, width: float = 1.0, output_stride: int = 16, name: str = "mobilenetv2"
) -> keras.Model:
    """Build MobileNetV2 as a model with outputs ``[low_level, high_level]``.

    Args:
        input_shape: (H, W, C) of the normalised input; H, W may be None.
        width: MobileNetV2's width multiplier alpha (1.0 = the paper).
        output_stride: 16 (paper) or 8.
        name: model name.

    Example:
        >>> from xray_seg.models.backbones.mobilenetv2 import build_mobilenetv2
        >>> backbone = build_mobilenetv2((64, 64, 3), width=0.5, output_stride=8)
        >>> [tuple(feature.shape) for feature in backbone.outputs]
        [(None, 16, 16, 16), (None, 8, 8, 160)]
    """
    check_output_stride(output_stride)
    schedule = StrideSchedule(output_stride)
    inputs = keras.Input(input_shape, name="input")
    x = ConvBNAct(divisible_channels(32, width), 3, strides=schedule.step(2)[0], activation="relu6", name="stem")(
        inputs
    )
    low = None
    for stage, (t, c, n, s) in enumerate(MOBILENETV2_STAGES):
        for i in range(n):
            stride, rate = schedule.step(s if i == 0 else 1)
            x = InvertedResidual(
                divisible_channels(c, width),
                expansion=t,
                strides=stride,
                dilation_rate=rate,
                name=f"stage{stage + 1}_unit{i + 1}",
            )(x)
        if stage == LOW_LEVEL_STAGE:
            low = x
    return keras.Model(inputs, [low, x], name=name)
