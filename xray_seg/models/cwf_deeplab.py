"""CWF-DeepLabv3+ (paper 1, section 3, Fig. 2): CSP-Xception + DWFF-ASPP + DeepLabv3+ decoder.

The encoder runs the CSP-Xception backbone (section 3.2,
:func:`~xray_seg.models.backbones.csp_xception.build_csp_xception`: low level
128x128x256, high level 32x32x1024 at 512x512) and feeds the high-level feature to
DWFF-ASPP (section 3.3, :class:`~xray_seg.layers.aspp.DWFFASPP`). The decoder is
DeepLabv3+'s (:func:`~xray_seg.models.deeplab_decoder.build_deeplabv3plus_model`): 1x1 conv to
48 channels on the low-level feature, x4 upsampling of the encoder output, concat,
two 3x3 convs (256), classifier, x4 upsampling to logits at input resolution.
"""

from __future__ import annotations

from functools import partial

import keras

from xray_seg.models.backbones.csp_xception import build_csp_xception
from xray_seg.models.deeplab_decoder import build_deeplabv3plus_model


def build_cwf_deeplabv3plus(
    num_classes: int, input_shape=(512, 512, 3), *, csp_units=(1, 1, 1, 1), csp_separable: bool = False, **head
) -> keras.Model:
    """Build CWF-DeepLabv3+.

    Args:
        num_classes: classes including background.
        input_shape: (H, W, 3) raw pixels; (None, None, 3) for any size.
        csp_units: residual units N of the four CSP blocks (paper silent; 1 each).
        csp_separable: separable 3x3 convs inside the CSP residual units.
        **head: ``width`` (1.0 = the paper), ``aux``, ``output_stride``, ``separable``
            (DWFF-ASPP and decoder) and ``dropout``, the options of the shared head,
            :func:`~xray_seg.models.deeplab_decoder.build_deeplabv3plus_model`.

    Example:
        >>> from xray_seg.models.registry import build_model
        >>> model = build_model("cwf_deeplabv3plus", num_classes=6, input_shape=(64, 64, 3), width=0.25)
        >>> type(model.get_layer("aspp")).__name__, tuple(model.output.shape)
        ('DWFFASPP', (None, 64, 64, 6))
    """
    backbone_fn = partial(build_csp_xception, units=csp_units, separable=csp_separable)
    return build_deeplabv3plus_model(
        backbone_fn, num_classes, input_shape, fusion="dwff", name="cwf_deeplabv3plus", **head
    )
