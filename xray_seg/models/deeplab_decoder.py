"""The DeepLabv3+ encoder-decoder shared by CWF-DeepLabv3+ and the DeepLabv3+ baselines.

Paper 1, section 2 (Fig. 1) and section 3.1 (Fig. 2); Chen et al. 2018, section 3.1.

Encoder: backbone -> (DWFF-)ASPP on the high-level feature (256 channels).
Decoder: the low-level feature (stride 4) is compressed by a 1x1 conv to 48 channels;
the encoder output is upsampled (bilinear) by 4 to the low-level size; the two are
concatenated; two 3x3 convs (256 channels) refine them; a 1x1 classifier gives the
logits, which are upsampled by 4 (bilinear) to the input size. No softmax.

Choices where the papers are silent:

- The 3x3 convs of ASPP and decoder are atrous *separable* convs by default (Chen et al.
  2018 apply "atrous separable convolution to both ASPP and decoder modules" for
  Xception; paper 1 follows that network). ``separable=False`` gives regular convs.
- Both upsamplings resize to the *actual* size of the low-level feature / input
  (:class:`~xray_seg.layers.conv.ResizeTo`), which is x4 each at output stride 16 when
  the input size is a multiple of 16, and also handles other sizes
  (``input_shape=(None, None, 3)`` works: image pooling is shape-agnostic).
- Pixel normalisation ([0, 255] -> [-1, 1]) is the model's first layer.
- The logits (final resize) are float32 even under a mixed-precision policy.
- The DeepLab family has no auxiliary heads: ``aux=True`` is accepted (registry
  contract) and the model still returns the logits tensor alone.
"""

from __future__ import annotations

import keras

from xray_seg.layers.aspp import ASPP, DWFFASPP, aspp_rates
from xray_seg.layers.conv import ConvBNAct, ResizeTo, SeparableConvBNAct, divisible_channels
from xray_seg.models.backbones.common import check_output_stride
from xray_seg.models.model_io import image_input, segmentation_model, upsampled_logits

ASPP_FILTERS = 256
DECODER_LOW_FILTERS = 48
DECODER_FILTERS = 256


def build_deeplabv3plus_model(
    backbone_fn,
    num_classes: int,
    input_shape=(512, 512, 3),
    *,
    fusion: str = "concat",
    width: float = 1.0,
    aux: bool = False,
    output_stride: int = 16,
    separable: bool = True,
    dropout: float = 0.1,
    name: str = "deeplabv3plus",
) -> keras.Model:
    """Assemble backbone + (DWFF-)ASPP + decoder into a segmentation model.

    Args:
        backbone_fn: ``backbone_fn(input_shape, width=, output_stride=) -> keras.Model``
            with outputs ``[low_level (stride 4), high_level (stride output_stride)]``.
        num_classes: number of classes (background included).
        input_shape: (H, W, 3), raw 0..255 pixels; H, W may be None.
        fusion: "concat" (DeepLabv3+ ASPP) or "dwff" (DWFF-ASPP of CWF-DeepLabv3+).
        width: channel multiplier of backbone and head (ASPP 256, decoder 48/256 at 1.0).
        aux: accepted for the registry contract; the DeepLab family has no auxiliary heads.
        output_stride: 16 or 8 (sets the ASPP rates; the backbone must match).
        separable: separable 3x3 convs in ASPP and decoder.
        dropout: dropout after the ASPP projection.
        name: model name.

    Returns:
        ``keras.Model`` mapping ``[B, H, W, 3]`` pixels to ``[B, H, W, num_classes]`` logits.

    Example:
        >>> from xray_seg.models.backbones.mobilenetv2 import build_mobilenetv2
        >>> from xray_seg.models.deeplab_decoder import build_deeplabv3plus_model
        >>> model = build_deeplabv3plus_model(build_mobilenetv2, 6, (64, 64, 3), fusion="concat", width=0.25, name="demo")
        >>> tuple(model.output.shape)
        (None, 64, 64, 6)
    """
    del aux  # no auxiliary heads (module docstring)
    check_output_stride(output_stride)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    aspp_filters = divisible_channels(ASPP_FILTERS, width)
    low_filters = divisible_channels(DECODER_LOW_FILTERS, width)
    decoder_filters = divisible_channels(DECODER_FILTERS, width)
    conv3 = SeparableConvBNAct if separable else ConvBNAct
    extra = {"depth_activation": True} if separable else {}

    image, pixels = image_input(input_shape)
    low, high = backbone_fn(tuple(input_shape), width=width, output_stride=output_stride)(pixels)

    aspp_cls = DWFFASPP if fusion == "dwff" else ASPP
    if fusion not in ("concat", "dwff"):
        raise ValueError(f"fusion must be 'concat' or 'dwff', got {fusion!r}")
    encoded = aspp_cls(aspp_filters, aspp_rates(output_stride), separable=separable, dropout=dropout, name="aspp")(high)

    low = ConvBNAct(low_filters, 1, name="decoder_low_1x1")(low)
    x = ResizeTo(name="decoder_upsample")([encoded, low])
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    x = conv3(decoder_filters, 3, name="decoder_conv1", **extra)(x)
    x = conv3(decoder_filters, 3, name="decoder_conv2", **extra)(x)
    logits = upsampled_logits(x, num_classes, image, dtype="float32")
    return segmentation_model(image, logits, name=name)
