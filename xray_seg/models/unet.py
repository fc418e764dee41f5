"""U-Net (Ronneberger et al. 2015), one of paper 1's baselines (section 4.3, Table 3).

Architecture (U-Net paper, section 2 and Fig. 1) at ``width=1.0``:

- contracting path: five levels of two 3x3 conv-BN-ReLU with 64, 128, 256, 512 and
  1024 channels, a 2x2 max pool (stride 2) between levels (4 downsamplings);
- expanding path: four 2x upsamplings, each followed by concatenation with the
  contracting path's features of the same size and two 3x3 conv-BN-ReLU (512, 256,
  128, 64 channels);
- a 1x1 conv classifier to ``num_classes`` logits.

Choices and deviations from the original, all deliberate:

- "same" padding everywhere, so the logits have the input's size and no cropping of
  the skip features is needed (the original uses unpadded convs and outputs a 388x388
  map for a 572x572 input, then tiles the image with overlap).
- batch normalisation after every 3x3 conv (the 2015 network predates BN; every
  common re-implementation, and paper 1's other networks, use it). Dropout at the
  bottom of the original's contracting path is left out.
- upsampling is the original "up-convolution": a 2x2 transposed conv, stride 2, that
  halves the channels (``upsampling="transpose"``, default). ``upsampling="bilinear"``
  instead does a bilinear 2x resize followed by a 3x3 conv-BN-ReLU that halves the
  channels (no checkerboard artefacts; 34.5M instead of 31.0M weights, 3x3 vs 2x2
  kernels).
- for sizes not divisible by 16 (or unknown until run time) the pools use "same"
  padding (ceil) and each upsampled map is bilinearly resized to its skip's size
  before concatenation; for multiples of 16 no resize layer is inserted at all.
- U-Net has no auxiliary heads, so ``aux=True`` is refused with a ModelError rather
  than silently ignored: a trainer asking for auxiliary losses should learn it cannot
  have them.
"""

from __future__ import annotations

import keras

from xray_seg.core.errors import ModelError
from xray_seg.layers.conv import ConvBNAct, ResizeTo, scale_channels
from xray_seg.models.model_io import image_input, segmentation_model

LEVEL_CHANNELS = (64, 128, 256, 512, 1024)  # U-Net Fig. 1: 4 downsamplings, 5 levels
UPSAMPLING_MODES = ("transpose", "bilinear")


def _double_conv(x, filters: int, name: str):
    """Two 3x3 conv-BN-ReLU (the U-Net paper's unit at every level)."""
    x = ConvBNAct(filters, 3, name=f"{name}_conv1")(x)
    return ConvBNAct(filters, 3, name=f"{name}_conv2")(x)


def _upsample(x, filters: int, mode: str, name: str):
    """2x upsampling to ``filters`` channels: 2x2 transposed conv or bilinear + 3x3 conv."""
    if mode == "transpose":
        return keras.layers.Conv2DTranspose(
            filters, 2, strides=2, padding="same", kernel_initializer="he_normal", name=name
        )(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
    return ConvBNAct(filters, 3, name=name)(x)


def _sizes_divisible(input_shape, factor: int) -> bool:
    height, width = input_shape[0], input_shape[1]
    return height is not None and width is not None and height % factor == 0 and width % factor == 0


def build_unet(
    num_classes: int,
    input_shape=(512, 512, 3),
    *,
    width: float = 1.0,
    aux: bool = False,
    upsampling: str = "transpose",
) -> keras.Model:
    """Build U-Net for raw 0..255 images; returns logits ``[B, H, W, num_classes]``.

    Args:
        num_classes: number of classes K (background included).
        input_shape: (height, width, channels); height/width may be None.
        width: channel multiplier (1.0 = 64 channels at the top level, 1024 at the bottom).
        aux: must be False; U-Net has no auxiliary heads.
        upsampling: "transpose" (2x2 up-convolution, as the paper) or "bilinear".

    Raises:
        ModelError: ``aux=True``, an unknown ``upsampling`` or non-positive sizes.

    Example:
        >>> from xray_seg.models.registry import build_model
        >>> model = build_model("unet", num_classes=6, input_shape=(64, 64, 3), width=0.0625)
        >>> tuple(model.output.shape)
        (None, 64, 64, 6)
    """
    if aux:
        raise ModelError(
            "unet has no auxiliary heads, so aux=True cannot be honoured",
            fix="set the auxiliary-loss option off (aux=False) for unet, or pick a model with aux heads such as bisenetv2",
        )
    if upsampling not in UPSAMPLING_MODES:
        raise ModelError(f"unknown unet upsampling {upsampling!r}", fix=f"use one of: {', '.join(UPSAMPLING_MODES)}")
    if num_classes < 1 or width <= 0:
        raise ModelError(
            f"unet needs num_classes >= 1 and width > 0 (got {num_classes}, {width})",
            fix="check the model section of the config",
        )
    depth = len(LEVEL_CHANNELS) - 1
    needs_resize = not _sizes_divisible(input_shape, 2**depth)
    channels = [scale_channels(c, width) for c in LEVEL_CHANNELS]

    image, x = image_input(input_shape)
    skips = []
    for level in range(depth):
        x = _double_conv(x, channels[level], name=f"down{level + 1}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool{level + 1}")(x)
    x = _double_conv(x, channels[depth], name="bottleneck")
    for level in reversed(range(depth)):
        x = _upsample(x, channels[level], upsampling, name=f"up{level + 1}")
        if needs_resize:
            x = ResizeTo("bilinear", name=f"up{level + 1}_match")([x, skips[level]])
        x = keras.layers.Concatenate(name=f"up{level + 1}_concat")([skips[level], x])
        x = _double_conv(x, channels[level], name=f"up{level + 1}")
    logits = keras.layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    return segmentation_model(image, logits, name="unet")
