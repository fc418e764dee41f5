"""BiSeNet V2 (Yu et al. 2021, IJCV), one of paper 1's baselines (section 4.3, Table 3).

Architecture, at ``width=1.0`` exactly as the BiSeNet V2 paper's Table 1:

- Detail Branch (section 4.1): conv-BN-ReLU stages S1 (64, 64; stride 2), S2 (64, 64,
  64; stride 2), S3 (128, 128, 128; stride 2) -> 1/8 of the input, 128 channels.
- Semantic Branch (section 4.2), channel ratio lambda = 1/4 of the Detail Branch:
  stem block (1/4, 16 ch), gather-and-expansion layers with expansion 6 in S3 (32 ch,
  1/8), S4 (64, 1/16), S5 (128, 1/32; one stride-2 GE then three stride-1 GE), then
  the context embedding block -> 1/32, 128 channels.
- Bilateral guided aggregation (section 4.3) -> 1/8, 128 channels.
- Segmentation head (section 4.4), logits bilinearly upsampled to the input size.
- Booster training (section 4.4): with ``aux=True`` four more heads read the stem, S3,
  S4 and S5 (before the context embedding) outputs of the Semantic Branch.

Channel choices the paper leaves open (documented in :mod:`xray_seg.layers.bisenet`):
the head's hidden channels C_t (1024 for the main head, 128 for the boosters) and the
head dropout (0.1), both as in the authors' released code.
"""

from __future__ import annotations

import keras

from xray_seg.core.errors import ModelError
from xray_seg.layers.bisenet import (
    BilateralGuidedAggregation,
    ContextEmbedding,
    GatherExpand,
    SegHead,
    StemBlock,
)
from xray_seg.layers.conv import ConvBNAct, ResizeTo, scale_channels
from xray_seg.models.model_io import image_input, segmentation_model

# Names of the layers whose outputs are the two branches' features (tests read them).
DETAIL_OUTPUT = "detail_s3_3"
SEMANTIC_OUTPUT = "semantic_ce"
#: aux output key -> the Semantic Branch layer whose output its booster head reads.
BOOSTER_INPUTS = {
    "aux": "semantic_stem",
    "aux2": "semantic_s3_2",
    "aux3": "semantic_s4_2",
    "aux4": "semantic_s5_4",
}

DETAIL_STAGES = ((64, 64), (64, 64, 64), (128, 128, 128))  # Table 1, Detail Branch


def _detail_branch(x, width: float):
    """Detail Branch (section 4.1): wide, shallow; the first conv of each stage has stride 2."""
    for stage, channels in enumerate(DETAIL_STAGES, start=1):
        for i, filters in enumerate(channels, start=1):
            x = ConvBNAct(scale_channels(filters, width), 3, strides=2 if i == 1 else 1, name=f"detail_s{stage}_{i}")(x)
    return x


def _semantic_branch(x, width: float, semantic_ratio: float, expansion: int):
    """Semantic Branch (section 4.2); returns the final features and the booster taps."""
    stem_channels = scale_channels(64 * semantic_ratio, width)  # lambda * Detail S1/S2 (16)
    s3_channels = scale_channels(128 * semantic_ratio, width)  # lambda * Detail S3 (32)
    stages = (("s3", s3_channels, 2), ("s4", 2 * s3_channels, 2), ("s5", 4 * s3_channels, 4))
    taps = {}
    x = StemBlock(stem_channels, name="semantic_stem")(x)
    taps["semantic_stem"] = x
    for stage, filters, repeats in stages:
        for i in range(1, repeats + 1):
            x = GatherExpand(filters, strides=2 if i == 1 else 1, expansion=expansion, name=f"semantic_{stage}_{i}")(x)
        taps[f"semantic_{stage}_{repeats}"] = x
    x = ContextEmbedding(name=SEMANTIC_OUTPUT)(x)
    return x, taps


def build_bisenetv2(
    num_classes: int,
    input_shape=(512, 512, 3),
    *,
    width: float = 1.0,
    aux: bool = False,
    semantic_ratio: float = 0.25,
    expansion: int = 6,
    head_channels: int = 1024,
    aux_head_channels: int = 128,
    dropout: float = 0.1,
) -> keras.Model:
    """Build BiSeNet V2 for raw 0..255 images; returns logits at input resolution.

    Args:
        num_classes: number of classes K (background included).
        input_shape: (height, width, channels); height/width may be None.
        width: channel multiplier for every conv (1.0 = the paper's Table 1).
        aux: also return the four booster heads' logits (training only), as
            ``{"logits", "aux" (stem), "aux2" (S3), "aux3" (S4), "aux4" (S5)}``,
            every entry ``[B, H, W, K]``.
        semantic_ratio: lambda, the Semantic Branch's channels relative to the Detail
            Branch (1/4 in the paper): stem = 64*lambda, S3 = 128*lambda, S4 and S5
            double it in turn.
        expansion: the gather-and-expansion ratio e (6 in the paper).
        head_channels: C_t of the main segmentation head (scaled by ``width``).
        aux_head_channels: C_t of the booster heads (scaled by ``width``).
        dropout: dropout rate inside every segmentation head.

    Raises:
        ModelError: a non-positive ``num_classes``, ``width`` or ``semantic_ratio``.

    Example:
        >>> from xray_seg.models.registry import build_model
        >>> model = build_model("bisenetv2", num_classes=6, input_shape=(64, 64, 3), width=0.125, aux=True)
        >>> sorted(model.output), tuple(model.output["logits"].shape)
        (['aux', 'aux2', 'aux3', 'aux4', 'logits'], (None, 64, 64, 6))
    """
    if num_classes < 1 or width <= 0 or semantic_ratio <= 0:
        raise ModelError(
            f"bisenetv2 needs num_classes >= 1, width > 0 and semantic_ratio > 0 "
            f"(got {num_classes}, {width}, {semantic_ratio})",
            fix="check the model section of the config",
        )
    image, x = image_input(input_shape)
    detail = _detail_branch(x, width)
    semantic, taps = _semantic_branch(x, width, semantic_ratio, expansion)
    fused = BilateralGuidedAggregation(scale_channels(DETAIL_STAGES[-1][-1], width), name="bga")([detail, semantic])
    logits = SegHead(scale_channels(head_channels, width), num_classes, dropout, name="head")(fused)
    logits = ResizeTo("bilinear", dtype="float32", name="logits")([logits, image])
    boosters = {}
    if aux:
        for key, tap in BOOSTER_INPUTS.items():
            head = SegHead(scale_channels(aux_head_channels, width), num_classes, dropout, name=f"{key}_head")
            boosters[key] = ResizeTo("bilinear", dtype="float32", name=key)([head(taps[tap]), image])
    return segmentation_model(image, logits, boosters, name="bisenetv2")
