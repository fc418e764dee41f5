"""IFBFNet (Inter-level Feature Balanced Fusion Network, Li et al.): dilated ResNet + ASPP + a
decoder with two feature balanced fusion modules and a shallow spatial stream (section 3, Fig. 2).

Data flow at width 1.0 (channel counts of section 3.1; H, W the input size)::

    raw pixels -> normalisation
      encoder:  dilated ResNet-101 (dilations (1, 2), strides (2, 1) in the last two
                stages: output stride 16)
                c4 (H/16, 2048) -> 1x1 conv -> 256 -> ASPP -> 256            (3.1, 4.3.1)
      spatial:  7x7/2 conv 64 -> 3x3/2 conv 64 -> 1x1 conv 128 = SP (H/4)    (3.3)
      decoder:  ASPP x4 (H/4, 256) || 3x3 conv(S1 = c1, 256 -> 64) = L (64)   (3.1)
                -> 3x3 conv 256 -> 3x3 conv 256 = D
                balanced_fusion1(Feat_h = D, Feat_l = L)          -> 320
                || SP (128) -> 1x1 conv 256 = E
                balanced_fusion2(Feat_h = E, Feat_l = SP)         -> 384
                -> 1x1 conv 384 -> 128 -> dropout -> 1x1 conv 128 -> K -> x4 -> logits
      aux (aux=True, section 3.4): S1 (c1: H/4, 256) -> 3x3 conv 256 -> 64
                -> 1x1 conv 64 -> K -> x4 -> aux logits

ASPP (section 4.3.1): image pooling + three 3x3 atrous convs (rates 6, 12, 18; doubled at
``output_stride=8``), 256 channels each, no 1x1 branch, 1x1 projection to 256, dropout 0.1.
Convs are conv -> BN -> ReLU except the classifiers (1x1 with bias) and the fusion weight conv.
Upsampling is bilinear to the reference size. ``width`` multiplies every channel count (at
least 8); ``normalization`` is ``"symmetric"`` ([-1, 1], default) or ``"imagenet"``; ``stem``
is ``"deep"`` (three 3x3 convs, default) or ``"standard"`` (7x7).

Training contract (section 3.4/4.1/4.3.4): aux loss weight 0.4 (eq. 8), OHEM threshold 0.7,
10x learning rate for ``"aux|balanced_fusion"`` (``optim.lr_multipliers``): every auxiliary
layer has "aux" in its name, the fusion modules are ``balanced_fusion1/2``, no other layer
name contains either. Multi-scale + flip inference: :mod:`xray_seg.inference.tta`. Where the
paper is silent and why each reading was chosen: docs/models.md, "IFBFNet: readings of the paper".
"""

from __future__ import annotations

from functools import partial

import keras

from xray_seg.core.errors import ModelError
from xray_seg.layers.aspp import ImagePooling, aspp_rates
from xray_seg.layers.conv import ConvBNAct, ResizeTo
from xray_seg.layers.fusion import FeatureBalancedFusion
from xray_seg.models.backbones.resnet import resnet_channels, resnet_features
from xray_seg.models.model_io import segmentation_model, upsampled_logits


def ifbf_aspp(x, *, filters: int, rates, dropout: float, name: str = "aspp"):
    """IFBFNet's ASPP (section 4.3.1): image pooling + three 3x3 atrous convs, concatenated,
    1x1 conv to ``filters`` (BN, ReLU), dropout. Built functionally from shared layers."""
    branches = [ImagePooling(filters, name=f"{name}_pool")(x)]
    branches += [ConvBNAct(filters, 3, dilation_rate=int(r), name=f"{name}_rate{int(r)}")(x) for r in rates]
    y = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    y = ConvBNAct(filters, 1, name=f"{name}_project")(y)
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)
    return y


def spatial_stream(pixels, *, mid_channels: int, out_channels: int, name: str = "spatial"):
    """The shallow spatial stream (section 3.3, Fig. 4): 7x7/2 conv, 3x3/2 conv, 1x1 conv
    (stride 4 overall, ``out_channels`` = 128 by default, Table 3)."""
    x = ConvBNAct(mid_channels, 7, strides=2, name=f"{name}_conv1")(pixels)
    x = ConvBNAct(mid_channels, 3, strides=2, name=f"{name}_conv2")(x)
    return ConvBNAct(out_channels, 1, name=f"{name}_conv3")(x)


def build_ifbfnet(
    num_classes: int,
    input_shape=(512, 512, 3),
    *,
    width: float = 1.0,
    aux: bool = False,
    backbone_depth: int = 101,
    spatial_channels: int = 128,
    output_stride: int = 16,
    dropout: float = 0.1,
    name: str | None = None,
    **backbone,
) -> keras.Model:
    """Build IFBFNet (see the module docstring for the architecture and choices).

    Args:
        num_classes: K (background included).
        input_shape: (H, W, 3) of the raw 0..255 input (H, W may be None).
        width: channel multiplier (1.0 = paper; tests use tiny widths).
        aux: also return the auxiliary logits: ``{"logits": main, "aux": aux}``.
        backbone_depth: 101 (paper) or 50 (Table 2).
        spatial_channels: output channels of the spatial stream (paper: 128; Table 3
            tried 16-256), scaled by ``width``.
        output_stride: 16 (paper, section 3.1) or 8 (ASPP rates doubled).
        dropout: dropout after ASPP and before the main classifier (0 = none).
        name: model name (default ``ifbfnet``).
        **backbone: the dilated ResNet's ``backbone_blocks``, ``weights`` (trains from scratch
            without), ``stem`` and ``normalization``
            (:func:`~xray_seg.models.backbones.resnet.resnet_features`).

    Returns:
        ``keras.Model`` from raw pixels ``[B, H, W, 3]`` to logits ``[B, H, W, K]``
        (a dict ``{"logits", "aux"}`` with ``aux=True``).

    Example:
        >>> from xray_seg.models.registry import build_model
        >>> model = build_model("ifbfnet", num_classes=6, input_shape=(64, 64, 3), width=0.125, aux=True)
        >>> sorted(model.output), tuple(model.output["logits"].shape)
        (['aux', 'logits'], (None, 64, 64, 6))
    """
    if output_stride not in (8, 16):
        raise ModelError(
            f"IFBFNet output_stride must be 16 or 8, got {output_stride!r}", fix="use output_stride=16 (paper)"
        )
    if int(spatial_channels) < 1:
        raise ModelError(
            f"spatial_channels must be positive, got {spatial_channels!r}", fix="e.g. spatial_channels=128 (Table 3)"
        )

    ch = partial(resnet_channels, width=width)
    inputs, pixels, feats = resnet_features(
        input_shape, width=width, output_stride=output_stride, backbone_depth=backbone_depth, **backbone
    )
    s1 = feats["c1"]

    # Encoder head: 2048 -> 256, then ASPP (sections 3.1, 4.3.1).
    x = ConvBNAct(ch(256), 1, name="encoder_reduce")(feats["c4"])
    x = ifbf_aspp(x, filters=ch(256), rates=aspp_rates(output_stride), dropout=dropout)

    # Spatial stream (section 3.3).
    spatial = spatial_stream(pixels, mid_channels=ch(64), out_channels=ch(int(spatial_channels)))

    # Decoder (section 3.1).
    x = ResizeTo(name="decoder_upsample")([x, s1])
    low = ConvBNAct(ch(64), 3, name="decoder_low_reduce")(s1)
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    x = ConvBNAct(ch(256), 3, name="decoder_conv1")(x)
    x = ConvBNAct(ch(256), 3, name="decoder_conv2")(x)
    x = FeatureBalancedFusion(name="balanced_fusion1")([x, low])
    # The spatial stream and S1 both have size ceil(ceil(H / 2) / 2): no resize needed.
    x = keras.layers.Concatenate(name="spatial_concat")([x, spatial])
    x = ConvBNAct(ch(256), 1, name="decoder_conv3")(x)
    x = FeatureBalancedFusion(name="balanced_fusion2")([x, spatial])
    x = ConvBNAct(ch(128), 1, name="head_conv")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    logits = upsampled_logits(x, num_classes, inputs, name="upsample")
    heads = {}
    if aux:
        a = ConvBNAct(ch(64), 3, name="aux_conv")(s1)
        heads["aux"] = upsampled_logits(a, num_classes, inputs, classifier="aux_classifier", name="aux_upsample")
    return segmentation_model(inputs, logits, heads, name=name or "ifbfnet")
