"""IFBFNet (Inter-level Feature Balanced Fusion Network): dilated ResNet + ASPP + a decoder
with two feature balanced fusion modules and a shallow spatial stream (section 3, Fig. 2).

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

The trainer weights the auxiliary loss 0.4 (eq. 8, ``loss.aux_weight``) and uses OHEM
with threshold 0.7 (section 3.4/4.3.4, ``loss.type: ohem``); the auxiliary branch and
both fusion modules train at 10x the learning rate (section 4.1) through
``optim.lr_multipliers: {"aux|balanced_fusion": 10.0}``: every layer of the auxiliary
branch has "aux" in its name, the fusion modules are ``balanced_fusion1/2``, and no
other layer name contains either string (tests/test_ifbfnet.py lists the paths).
Multi-scale inference (section 4.3.4 "MS", scales 0.5-1.75, and flipping, section 4.5)
needs nothing here: ``xray_seg.inference.tta.predict_probabilities(model, image,
scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), flip=True)`` runs this model at each scale
(build it with ``input_shape=(None, None, 3)`` for free input sizes).

Choices where the paper is silent or loose (documented here once):

- **Which features each fusion module balances.** The module takes two features
  (eq. 2). Section 3.1 puts the first module *after* the concatenation of ASPP and S1
  and the two 3x3 convs; section 4.3.1 says it balances "ASPP and stage one's low-level
  feature", and Fig. 2 puts one module on "each skip-connection". So each module fuses
  the decoder's current feature (Feat_h, high level) with the skip that was just
  concatenated into it (Feat_l, low level): module 1 with the reduced S1 (64 ch), module
  2 with the spatial stream (128 ch). Module 2's output is then 256 + 128 = 384
  channels, which is exactly the 384 that section 3.1 gives as the input of the first
  final 1x1 conv - the evidence for this reading. Module 1's output (256 + 64 = 320
  channels) is concatenated with the spatial stream (448) before the 1x1 conv to 256.
- **ASPP.** Section 4.3.1: global average pooling and three 3x3 atrous convs (rates 6,
  12, 18), four branches concatenated, a 1x1 conv to 256 - no 1x1 branch, unlike
  DeepLabv3+. ``xray_seg.layers.aspp.ASPP`` always has the 1x1 branch (five branches),
  so IFBFNet's four-branch ASPP is built here from the shared pieces
  (:class:`~xray_seg.layers.aspp.ImagePooling`, :class:`ConvBNAct`) instead of being
  duplicated as a layer. Each branch has 256 channels; the convs are regular (not
  separable) atrous convs; the projection is followed by dropout 0.1 (DeepLabv3 code).
  At ``output_stride=8`` the rates double (12, 24, 36).
- **Conv units.** Every conv except the classifiers and the fusion weight conv is
  conv -> BN -> ReLU (the paper trains with InPlaceABN, i.e. BN + activation). The
  spatial stream's convs too. The classifiers (main and aux) are plain 1x1 convs with
  bias; dropout 0.1 precedes the main classifier (``dropout``), none the auxiliary one.
- **Upsampling** is bilinear to the reference size (S1's size, then the input's), which
  equals "x4" when the input is a multiple of 16 and stays correct when it is not.
- **Auxiliary branch.** Section 3.4: 3x3 conv 256 -> 64 and 1x1 conv to the classes,
  both stride 1 "so the size of the stage one feature is not changed", upsampled x4: it
  branches from S1 itself (c1, 256 ch at stride 4), the only 256-channel *stage one*
  feature; the decoder's 256-channel features would supervise nearly the main path.
- **Width scaling.** ``width`` multiplies every channel count (backbone, 256/64/128 of
  the decoder, ``spatial_channels``, the aux 64), rounded, at least 8 (the ResNet family's
  ``resnet_channels``). At width 1.0 the counts are the paper's.
- **Normalisation.** ``"symmetric"`` maps 0..255 to [-1, 1] (default; the backbone
  trains from scratch by default); ``"imagenet"`` uses the ImageNet mean/std for a
  backbone loaded from ImageNet-pretrained weights (``weights=PATH``).
- **Backbone stem.** The dilated ResNet's "deep" stem (three 3x3 convs), as in the
  InPlaceABN/CCNet codebases IFBFNet builds on; ``stem="standard"`` gives the 7x7 stem.
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
