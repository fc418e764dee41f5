"""Paper 1's DeepLabv3+ baselines (Table 3): aligned Xception and MobileNetV2 backbones.

Both use the shared encoder-decoder of :mod:`xray_seg.models.deeplab_decoder` with the plain
(concatenating) ASPP at rates 6/12/18 (output stride 16).

- ``deeplabv3plus``: DeepLabv3+ with aligned Xception-65 (Chen et al. 2018), the
  "original DeepLabv3+" of paper 1, section 2, Fig. 1.
- ``mobilenetv2_deeplabv3plus``: DeepLabv3+ with MobileNetV2 (paper 1's ref. [16]);
  low-level feature 24 channels at stride 4, high-level 320 channels at stride 16. The
  head is the same as DeepLabv3+'s (separable ASPP/decoder convs by default); ref. [16]
  only swaps the backbone.
"""

from __future__ import annotations

from functools import partial

import keras

from xray_seg.models.backbones.mobilenetv2 import build_mobilenetv2
from xray_seg.models.backbones.xception import build_aligned_xception
from xray_seg.models.deeplab_decoder import build_deeplabv3plus_model


def build_deeplabv3plus(num_classes: int, input_shape=(512, 512, 3), *, middle_blocks: int = 16, **head) -> keras.Model:
    """DeepLabv3+ with aligned Xception (16 middle-flow blocks = Xception-65).

    Args:
        num_classes: classes including background.
        input_shape: (H, W, 3) raw pixels; (None, None, 3) for any size.
        middle_blocks: middle-flow repeats.
        **head: the shared DeepLabv3+ head's ``width``, ``aux``, ``output_stride``, ``separable``
            and ``dropout`` (:func:`~xray_seg.models.deeplab_decoder.build_deeplabv3plus_model`).

    Example:
        >>> from xray_seg.models.registry import build_model
        >>> model = build_model("deeplabv3plus", 6, (64, 64, 3), width=0.25, middle_blocks=2)
        >>> [layer.name for layer in model.get_layer("aligned_xception").layers if "middle" in layer.name]
        ['middle_block1', 'middle_block2']
    """
    backbone_fn = partial(build_aligned_xception, middle_blocks=middle_blocks)
    return build_deeplabv3plus_model(
        backbone_fn, num_classes, input_shape, fusion="concat", name="deeplabv3plus", **head
    )


def build_mobilenetv2_deeplabv3plus(num_classes: int, input_shape=(512, 512, 3), **head) -> keras.Model:
    """DeepLabv3+ with a MobileNetV2 backbone (paper 1, section 4.3, ref. [16]).

    Args:
        num_classes: classes including background.
        input_shape: (H, W, 3) raw pixels; (None, None, 3) for any size.
        **head: the options of the shared DeepLabv3+ head (as for :func:`build_deeplabv3plus`;
            ``width`` also scales MobileNetV2, its alpha).

    Example:
        >>> from xray_seg.models.registry import build_model
        >>> model = build_model("mobilenetv2_deeplabv3plus", num_classes=6, input_shape=(64, 64, 3), width=0.25)
        >>> tuple(model.output.shape)
        (None, 64, 64, 6)
    """
    return build_deeplabv3plus_model(
        build_mobilenetv2, num_classes, input_shape, fusion="concat", name="mobilenetv2_deeplabv3plus", **head
    )
