"""Dilated ResNet-50/101 backbone for segmentation (CycleNet, Qu et al., section 4.1; reused by IFBFNet).

:func:`build_resnet_backbone` builds a standalone ``keras.Model`` that a segmentation model
calls as a nested model::

    backbone = build_resnet_backbone((512, 512, 3), depth=101, output_stride=8)
    feats = backbone(normalised_pixels)      # {"c1", "c2", "c3", "c4"}

- **Bottleneck v1.5**: the stride sits on the 3x3 conv, not on the first 1x1.
- **Stem**: ``"deep"`` (default): three 3x3 convs (64, 64, 128 channels, the first stride 2)
  then a 3x3/2 max pool; ``"standard"``: 7x7/2 conv (64) + 3x3/2 max pool.
- **Dilation** (every 3x3 conv of a dilated stage): output stride 8: stage 3 (stride 1, rate
  2), stage 4 (stride 1, rate 4), the paper's setting; output stride 16: stage 3 (stride 2,
  rate 1), stage 4 (stride 1, rate 2).
- **Zero-initialised residual BN** when ``weights=None``: the last BN gamma of every block
  starts at 0 (Goyal et al. 2017), so each block starts as the identity.
- **Weights**: never downloaded. ``weights=PATH`` loads a file saved from this same backbone
  (:func:`save_backbone_weights`, keyed by variable path such as
  ``stage3_block2_conv2/conv/kernel``; a Keras ``Model.save_weights`` file also works), or
  Keras Applications' ImageNet ResNet50/ResNet101 weights (``stem="standard"``), through the
  loader every backbone shares, :func:`~xray_seg.models.backbones.pretrained.load_backbone_weights`;
  a file that does not match raises :class:`ModelError` naming the file. Layer names do not include
  the model name, so weights move between backbones of the same depth/width whatever ``name``.

Why these choices where the paper is silent: docs/models.md, "Dilated ResNet: readings of the paper".
"""

from __future__ import annotations

from pathlib import Path

import h5py
import keras

from xray_seg.core.errors import ModelError
from xray_seg.core.fileio import atomic_path
from xray_seg.layers.conv import ConvBNAct, scale_channels
from xray_seg.models.backbones.pretrained import BACKBONE_WEIGHTS_FORMAT, load_backbone_weights
from xray_seg.models.model_io import image_input

RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
STAGE_PLANES = (64, 128, 256, 512)
EXPANSION = 4
FEATURE_NAMES = ("c1", "c2", "c3", "c4")


def resnet_channels(channels: int, width: float) -> int:
    """The ResNet family's channel rule (this backbone, CycleNet, IFBFNet): the shared
    :func:`~xray_seg.layers.conv.scale_channels` with a floor of 8 channels (BN on fewer is noisy)."""
    return scale_channels(channels, width, minimum=8)


def stage_strides_and_dilations(output_stride: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-stage (stride, dilation) for stages 1-4 at output stride 8, 16 or 32."""
    if output_stride == 8:
        return (1, 2, 1, 1), (1, 1, 2, 4)
    if output_stride == 16:
        return (1, 2, 2, 1), (1, 1, 1, 2)
    if output_stride == 32:
        return (1, 2, 2, 2), (1, 1, 1, 1)
    raise ModelError(
        f"output_stride must be 8, 16 or 32, got {output_stride!r}",
        fix="use output_stride=8 (CycleNet, section 4.1) or 16",
    )


def _bottleneck(x, planes: int, stride: int, dilation: int, prefix: str, zero_init_residual: bool):
    """One v1.5 bottleneck: 1x1 -> 3x3 (stride, dilation) -> 1x1 (x4), projection shortcut if needed."""
    out_channels = planes * EXPANSION
    y = ConvBNAct(planes, 1, name=f"{prefix}_conv1")(x)
    y = ConvBNAct(planes, 3, strides=stride, dilation_rate=dilation, name=f"{prefix}_conv2")(y)
    last = ConvBNAct(out_channels, 1, activation=None, name=f"{prefix}_conv3")
    y = last(y)
    if zero_init_residual:
        last.bn.gamma.assign(keras.ops.zeros_like(last.bn.gamma))
    if stride != 1 or x.shape[-1] != out_channels:
        x = ConvBNAct(out_channels, 1, strides=stride, activation=None, name=f"{prefix}_shortcut")(x)
    y = keras.layers.Add(name=f"{prefix}_add")([x, y])
    return keras.layers.Activation("relu", name=f"{prefix}_out")(y)


def _stem(x, kind: str, width: float):
    if kind == "deep":
        x = ConvBNAct(resnet_channels(64, width), 3, strides=2, name="stem_conv1")(x)
        x = ConvBNAct(resnet_channels(64, width), 3, name="stem_conv2")(x)
        x = ConvBNAct(resnet_channels(128, width), 3, name="stem_conv3")(x)
    elif kind == "standard":
        x = ConvBNAct(resnet_channels(64, width), 7, strides=2, name="stem_conv1")(x)
    else:
        raise ModelError(f"unknown ResNet stem {kind!r}", fix='use stem="deep" or stem="standard"')
    return keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)


def build_resnet_backbone(
    input_tensor_or_shape=(512, 512, 3),
    *,
    depth: int = 101,
    output_stride: int = 8,
    width: float = 1.0,
    weights: str | Path | None = None,
    blocks: tuple[int, int, int, int] | None = None,
    stem: str = "deep",
    name: str | None = None,
) -> keras.Model:
    """Build a dilated ResNet returning its four stage features.

    Args:
        input_tensor_or_shape: the input shape ``(H, W, C)`` (H, W may be None), or a
            Keras tensor whose shape is used. The backbone is always a standalone model
            (it takes already-normalised pixels); call it on a tensor to nest it.
        depth: 50 or 101 (block counts (3, 4, 6, 3) / (3, 4, 23, 3)).
        output_stride: 8 (paper), 16 or 32; see the module docstring.
        width: channel multiplier (1.0 = ResNet; tests use tiny widths).
        weights: None (random init) or the path of a weights file saved from this same
            backbone configuration; never downloaded.
        blocks: override the per-stage block counts, e.g. ``(1, 1, 1, 1)`` for tests.
        stem: "deep" (3x 3x3 conv, default) or "standard" (7x7 conv).
        name: model name (default ``resnet{depth}``).

    Returns:
        ``keras.Model`` with dict outputs ``c1`` (stride 4, 256*width ch, ADC/decoder
        low-level feature), ``c2`` (stride 8, 512*width), ``c3`` (stride 8 or 16,
        1024*width, where the auxiliary head attaches) and ``c4`` (stride
        ``output_stride``, 2048*width).

    Example:
        >>> from xray_seg.models.backbones.resnet import build_resnet_backbone
        >>> backbone = build_resnet_backbone((64, 64, 3), depth=50, output_stride=8, width=0.125, blocks=(1, 1, 1, 1))
        >>> {name: tuple(t.shape) for name, t in backbone.output.items()}
        {'c1': (None, 16, 16, 32), 'c2': (None, 8, 8, 64), 'c3': (None, 8, 8, 128), 'c4': (None, 8, 8, 256)}
    """
    if blocks is None:
        if depth not in RESNET_BLOCKS:
            raise ModelError(f"ResNet depth must be 50 or 101, got {depth!r}", fix="use depth=50 or depth=101")
        blocks = RESNET_BLOCKS[depth]
    blocks = tuple(int(b) for b in blocks)
    if len(blocks) != 4 or min(blocks) < 1:
        raise ModelError(f"blocks must be four positive counts, got {blocks!r}", fix="e.g. blocks=(1, 1, 1, 1)")
    strides, dilations = stage_strides_and_dilations(output_stride)

    shape = (
        tuple(input_tensor_or_shape.shape[1:])
        if hasattr(input_tensor_or_shape, "shape")
        else tuple(input_tensor_or_shape)
    )
    inputs = keras.Input(shape, name="pixels")
    x = _stem(inputs, stem, width)
    features = {}
    for stage, (count, planes, stride, dilation) in enumerate(zip(blocks, STAGE_PLANES, strides, dilations), start=1):
        for index in range(count):
            x = _bottleneck(
                x,
                resnet_channels(planes, width),
                stride if index == 0 else 1,
                dilation,
                prefix=f"stage{stage}_block{index + 1}",
                zero_init_residual=weights is None,
            )
        features[FEATURE_NAMES[stage - 1]] = x
    model = keras.Model(inputs, features, name=name or f"resnet{depth}")
    if weights is not None:
        load_backbone_weights(model, weights)
    return model


def save_backbone_weights(model: keras.Model, path: str | Path) -> None:
    """Save every variable of ``model`` keyed by its path (``layer/sublayer/var``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = BACKBONE_WEIGHTS_FORMAT
        for variable in model.weights:
            f.create_dataset(variable.path, data=keras.ops.convert_to_numpy(variable))


def resnet_features(
    input_shape,
    *,
    width: float,
    output_stride: int,
    backbone_depth: int = 101,
    backbone_blocks: tuple[int, int, int, int] | None = None,
    weights: str | Path | None = None,
    stem: str = "deep",
    normalization: str = "symmetric",
):
    """The raw-pixel input, its normalisation and the dilated ResNet features of CycleNet and IFBFNet.

    Their builders pass their backbone options through to here.

    Args:
        input_shape: (H, W, 3) of the raw 0..255 input (H, W may be None).
        width, output_stride: as for :func:`build_resnet_backbone`.
        backbone_depth: 101 (the papers) or 50.
        backbone_blocks: per-stage block counts overriding ``backbone_depth`` (tests).
        weights: optional backbone weights file (see :func:`build_resnet_backbone`); the
            default trains from scratch. Never downloaded.
        stem: ResNet stem, "deep" or "standard".
        normalization: "symmetric" ([-1, 1]) or "imagenet" (mean/std), see
            :func:`~xray_seg.models.model_io.input_normalization`.

    Returns:
        ``(image input, normalised pixels, {"c1", "c2", "c3", "c4"})``.
    """
    inputs, pixels = image_input(input_shape, normalization)
    backbone = build_resnet_backbone(
        tuple(input_shape),
        depth=backbone_depth,
        output_stride=output_stride,
        width=width,
        weights=weights,
        blocks=backbone_blocks,
        stem=stem,
        name=f"resnet{backbone_depth}" if backbone_blocks is None else "resnet",
    )
    return inputs, pixels, backbone(pixels)
