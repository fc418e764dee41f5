"""CycleNet (Qu et al.): dilated ResNet + CycleASPP + ADC decoder (+ auxiliary FCN head).

Data flow (Fig. 1, sections 3-4.1)::

    raw pixels -> normalisation -> dilated ResNet-101 (output stride 8)
        c4 (2048 ch, stride 8) -> CycleASPP (section 3.1) -> X_high (6 x 64 ch)
        c1 (256 ch, stride 4)  -> 1x1 conv -> X_low
        ADC (section 3.2): X_high -> 1x1 conv (adc_channels) -> bilinear to X_low's size
            offsets/mask = convs(concat[X_low, X_high_up])      (zero-initialised)
            X~_high = DCNv2(X_high_up, offsets, mask)           (eq. 4)
            Y_context = convs(concat[X_low, X~_high])           (eq. 5)
        classifier -> bilinear upsampling to the input size -> logits
    aux=True: c3 (block 3) -> 3x3 conv 256 -> dropout -> 1x1 classifier -> upsampling
              (auxiliary supervision, section 4.1; the trainer weights it 0.4)

Choices where the paper is silent:

- **Normalisation**: ``normalization="symmetric"`` (default) maps 0..255 to [-1, 1]
  with the shared :func:`~xray_seg.models.model_io.pixel_normalization` (the backbone trains from scratch by
  default); ``"imagenet"`` uses the ImageNet mean/std, for a backbone loaded from
  ImageNet-pretrained weights.
- **ADC widths**: X_high is reduced to ``adc_channels`` = 128 (x width) by a 1x1 conv
  *before* upsampling (cheaper, and it bounds the deformable conv's memory: it gathers
  4 neighbours x H/4 x W/4 x 9 taps x 128 channels = 75 M values per image at 512x512,
  302 MB in float32, kept for the backward pass; 256 channels would double that); X_low is reduced
  to 48 channels (the DeepLabv3+ low-level reduction). The offset/mask predictor is
  3x3 ConvBNAct(adc_channels) then two zero-initialised 3x3 convs giving 18 offsets
  (interleaved dy, dx) and 9 mask logits (sigmoid), so ADC starts as a plain conv
  with mask 0.5. The deformable conv (3x3, ``adc_channels`` out, BN + ReLU) is
  followed by f of eq. 5 = two 3x3 ConvBNAct(256), dropout 0.1, 1x1 classifier.
"""

from __future__ import annotations

from functools import partial

import keras

from xray_seg.core.errors import ModelError
from xray_seg.layers.conv import ConvBNAct, ResizeTo
from xray_seg.layers.cycle_aspp import CycleASPP
from xray_seg.layers.deform import ModulatedDeformConv2D
from xray_seg.layers.norm import BatchNorm
from xray_seg.models.backbones.resnet import resnet_channels, resnet_features
from xray_seg.models.model_io import segmentation_model, upsampled_logits

DEFORM_KERNEL = 3


def adc_module(x_high, x_low, *, channels: int, decoder_channels: int, name: str = "adc"):
    """Alignment with Deformable Convolution (section 3.2, eqs. 4-5), built functionally.

    ``x_high``: CycleASPP output (stride 8); ``x_low``: reduced block-1 feature (stride 4).
    Returns ``Y_context`` at ``x_low``'s resolution with ``decoder_channels`` channels.
    """
    high = ConvBNAct(channels, 1, name=f"{name}_high_reduce")(x_high)
    high = ResizeTo(name=f"{name}_high_upsample")([high, x_low])
    both = keras.layers.Concatenate(name=f"{name}_concat_offset_input")([x_low, high])
    hidden = ConvBNAct(channels, 3, name=f"{name}_offset_conv")(both)
    taps = DEFORM_KERNEL * DEFORM_KERNEL
    offset = keras.layers.Conv2D(
        2 * taps, 3, padding="same", kernel_initializer="zeros", bias_initializer="zeros", name=f"{name}_offset"
    )(hidden)
    mask = keras.layers.Conv2D(
        taps, 3, padding="same", kernel_initializer="zeros", bias_initializer="zeros", name=f"{name}_mask_logits"
    )(hidden)
    mask = keras.layers.Activation("sigmoid", name=f"{name}_mask")(mask)
    aligned = ModulatedDeformConv2D(channels, DEFORM_KERNEL, use_bias=False, name=f"{name}_deform")(
        [high, offset, mask]
    )
    aligned = BatchNorm(name=f"{name}_deform_bn")(aligned)
    aligned = keras.layers.Activation("relu", name=f"{name}_deform_relu")(aligned)
    y = keras.layers.Concatenate(name=f"{name}_concat")([x_low, aligned])
    y = ConvBNAct(decoder_channels, 3, name=f"{name}_fuse_conv1")(y)
    return ConvBNAct(decoder_channels, 3, name=f"{name}_fuse_conv2")(y)


def build_cyclenet(
    num_classes: int,
    input_shape=(512, 512, 3),
    *,
    width: float = 1.0,
    aux: bool = False,
    backbone_depth: int = 101,
    output_stride: int = 8,
    rates=(3, 6, 12, 18, 24, 30),
    feedback_steps: int = 1,
    share_weights: bool = True,
    adc_channels: int = 128,
    low_level_channels: int = 48,
    decoder_channels: int = 256,
    dropout: float = 0.1,
    name: str | None = None,
    **backbone,
) -> keras.Model:
    """Build CycleNet (see the module docstring).

    Args:
        num_classes: K (background included).
        input_shape: (H, W, 3) of the raw 0..255 input.
        width: channel multiplier for backbone and heads (1.0 = paper).
        aux: also return the block-3 auxiliary logits: ``{"logits", "aux"}``.
        backbone_depth: 101 (paper) or 50.
        output_stride: 8 (paper) or 16.
        rates: CycleASPP atrous rates (paper: (3, 6, 12, 18, 24, 30); ADE20K: 5 rates).
        feedback_steps: CycleASPP part-II passes (paper: 1).
        share_weights: CycleASPP part II reuses part I's convolutions (paper).
        adc_channels, low_level_channels, decoder_channels: ADC widths (x width).
        dropout: dropout before the classifiers.
        name: model name (default ``cyclenet{depth}``).
        **backbone: the dilated ResNet's ``backbone_blocks``, ``weights``, ``stem`` and
            ``normalization`` (:func:`~xray_seg.models.backbones.resnet.resnet_features`).

    Returns:
        ``keras.Model`` from raw pixels to logits ``[B, H, W, num_classes]``.

    Example:
        >>> from xray_seg.models.registry import build_model
        >>> model = build_model("cyclenet", num_classes=6, input_shape=(64, 64, 3), width=0.125, aux=True)
        >>> sorted(model.output), tuple(model.output["logits"].shape)
        (['aux', 'logits'], (None, 64, 64, 6))
    """
    if feedback_steps < 0 or len(tuple(rates)) < 2:
        raise ModelError(
            f"CycleASPP needs >= 2 rates and feedback_steps >= 0, got rates={rates!r}, feedback_steps={feedback_steps!r}",
            fix="e.g. rates=(3, 6, 12, 18, 24, 30) feedback_steps=1",
        )

    ch = partial(resnet_channels, width=width)
    inputs, _, feats = resnet_features(
        input_shape, width=width, output_stride=output_stride, backbone_depth=backbone_depth, **backbone
    )
    context = CycleASPP(
        rates=tuple(rates),
        feedback_steps=feedback_steps,
        reduction_filters=ch(512),
        bottleneck_filters=ch(128),
        growth_filters=ch(64),
        share_weights=share_weights,
        name="cycle_aspp",
    )(feats["c4"])
    low = ConvBNAct(ch(low_level_channels), 1, name="low_level_reduce")(feats["c1"])
    y = adc_module(context, low, channels=ch(adc_channels), decoder_channels=ch(decoder_channels))
    y = keras.layers.Dropout(dropout, name="dropout")(y)
    logits = upsampled_logits(y, num_classes, inputs, classifier="main_classifier", name="main_upsample")
    heads = {}
    if aux:
        a = ConvBNAct(ch(256), 3, name="aux_conv")(feats["c3"])
        a = keras.layers.Dropout(dropout, name="aux_dropout")(a)
        heads["aux"] = upsampled_logits(a, num_classes, inputs, classifier="aux_classifier", name="aux_upsample")
    return segmentation_model(inputs, logits, heads, name=name or f"cyclenet{backbone_depth}")
