"""Convolution building blocks shared by every model.

All layers use Keras 3 only (no ``tf.*``), so the models run on the TensorFlow, JAX
and PyTorch backends. Batch norm is :class:`~xray_seg.layers.norm.BatchNorm` (Keras's,
with TensorFlow's fused kernel as a fast path on that backend; momentum 0.9, epsilon 1e-5).
"""

from __future__ import annotations

import keras

from xray_seg.layers.base import ConfigLayer
from xray_seg.layers.norm import BatchNorm


def conv2d(
    filters: int,
    kernel_size: int,
    *,
    strides: int = 1,
    dilation_rate: int = 1,
    padding: str = "same",
    use_bias: bool = False,
    name: str | None = None,
) -> keras.layers.Conv2D:
    """The models' ``Conv2D``: He-initialised, "same" padding, no bias by default (a BN follows)."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        dilation_rate=dilation_rate,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer="he_normal",
        name=name,
    )


def depthwise_conv2d(
    kernel_size: int = 3,
    *,
    strides: int = 1,
    dilation_rate: int = 1,
    depth_multiplier: int = 1,
    name: str = "depthwise",
) -> keras.layers.DepthwiseConv2D:
    """The models' ``DepthwiseConv2D``: He-initialised, "same" padding, no bias (a BN follows)."""
    return keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        dilation_rate=dilation_rate,
        depth_multiplier=depth_multiplier,
        padding="same",
        use_bias=False,
        depthwise_initializer="he_normal",
        name=name,
    )


def activation_layer(activation: str | None) -> keras.layers.Layer | None:
    """A Keras activation layer by name, or None for ``None``/``"linear"``."""
    if activation in (None, "linear"):
        return None
    return keras.layers.Activation(activation)


@keras.saving.register_keras_serializable(package="xray_seg")
class ConvBNAct(ConfigLayer):
    """Conv2D (no bias) -> BatchNorm -> activation.

    The standard "conv unit" of DeepLabv3+ (Chen et al. 2018) and of paper 1, Fig. 2-3.

    Args:
        filters: output channels.
        kernel_size: kernel size (int).
        strides: stride (int).
        dilation_rate: atrous rate (int); padding is "same" so the spatial size is
            ``ceil(input / strides)``.
        activation: activation name (e.g. "relu", "swish") or None.
        use_bn: apply batch norm (if False the conv gets a bias instead).
        **kwargs: standard layer arguments (name, dtype, ...).

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.conv import ConvBNAct
        >>> layer = ConvBNAct(16, 3, strides=2, activation="relu")
        >>> tuple(layer(np.zeros((1, 32, 32, 3), "float32")).shape)
        (1, 16, 16, 16)
    """

    CONFIG = ("filters", "kernel_size", "strides", "dilation_rate", "activation", "use_bn")

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        dilation_rate: int = 1,
        activation: str | None = "relu",
        use_bn: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.conv = conv2d(
            filters, kernel_size, strides=strides, dilation_rate=dilation_rate, use_bias=not use_bn, name="conv"
        )
        self.bn = BatchNorm(name="bn") if use_bn else None
        self.act = activation_layer(activation)

    def build(self, input_shape):
        self.conv.build(input_shape)
        out_shape = self.conv.compute_output_shape(input_shape)
        if self.bn is not None:
            self.bn.build(out_shape)

    def call(self, inputs, training=None):
        x = self.conv(inputs)
        if self.bn is not None:
            x = self.bn(x, training=training)
        if self.act is not None:
            x = self.act(x)
        return x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package="xray_seg")
class SeparableConvBNAct(ConfigLayer):
    """Depthwise conv -> BN -> pointwise 1x1 conv -> BN -> activation.

    The depthwise separable convolution of Xception and DeepLabv3+ (Chen et al. 2018,
    section 3.2: "batch normalization and ReLU after each 3x3 depthwise convolution"
    is optional; here BN follows both convolutions and the activation follows the
    pointwise one, as in paper 1's Xception_block, Fig. 3b).

    Args:
        filters: output channels of the pointwise conv.
        kernel_size: depthwise kernel size.
        strides: depthwise stride.
        dilation_rate: depthwise atrous rate.
        activation: activation after the pointwise BN, or None.
        depth_activation: also apply the activation after the depthwise BN.
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.conv import SeparableConvBNAct
        >>> layer = SeparableConvBNAct(32, 3, dilation_rate=2)
        >>> tuple(layer(np.zeros((1, 32, 32, 8), "float32")).shape)
        (1, 32, 32, 32)
    """

    CONFIG = ("filters", "kernel_size", "strides", "dilation_rate", "activation", "depth_activation")

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        dilation_rate: int = 1,
        activation: str | None = "relu",
        depth_activation: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.depthwise = depthwise_conv2d(kernel_size, strides=strides, dilation_rate=dilation_rate)
        self.depth_bn = BatchNorm(name="depth_bn")
        self.depth_act = activation_layer(activation) if depth_activation else None
        self.pointwise = conv2d(filters, 1, padding="valid", name="pointwise")
        self.point_bn = BatchNorm(name="point_bn")
        self.act = activation_layer(activation)

    def build(self, input_shape):
        self.depthwise.build(input_shape)
        depth_shape = self.depthwise.compute_output_shape(input_shape)
        self.depth_bn.build(depth_shape)
        self.pointwise.build(depth_shape)
        self.point_bn.build(self.pointwise.compute_output_shape(depth_shape))

    def call(self, inputs, training=None):
        x = self.depth_bn(self.depthwise(inputs), training=training)
        if self.depth_act is not None:
            x = self.depth_act(x)
        x = self.point_bn(self.pointwise(x), training=training)
        if self.act is not None:
            x = self.act(x)
        return x

    def compute_output_shape(self, input_shape):
        return self.pointwise.compute_output_shape(self.depthwise.compute_output_shape(input_shape))


def scale_channels(channels: int, width: float, minimum: int = 1) -> int:
    """``channels * width`` rounded to an int, at least ``minimum`` (the builders' ``width`` option)."""
    return max(minimum, int(round(channels * width)))


def divisible_channels(channels: int, width: float = 1.0, divisor: int = 8, min_value: int | None = None) -> int:
    """``channels * width`` rounded to a multiple of ``divisor`` (MobileNet's ``make_divisible``).

    The DeepLab family scales channels this way; :func:`scale_channels`
    (plain rounding) is the other models' rule. The names differ so the two are not confused.

    Never goes below ``min_value`` (default ``divisor``) and never more than 10% below
    ``channels * width``. ``width=1.0`` leaves paper channel counts that are multiples of
    ``divisor`` unchanged (all of ours are, e.g. 728 = 8 * 91).
    """
    min_value = divisor if min_value is None else min_value
    value = channels * width
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def half_channels(filters: int) -> int:
    """Half of ``filters``, at least 1: a branch that splits or reduces a block's channels
    (BiSeNet V2's stem left branch, Table 1; CSPNet's two paths)."""
    return max(1, filters // 2)


@keras.saving.register_keras_serializable(package="xray_seg")
class ResizeTo(ConfigLayer):
    """Bilinear resize of the first input to the spatial size of the second (or a fixed size).

    Replaces the ``Lambda`` + ``tf.image.resize`` pattern of popular DeepLabv3+ repos
    (docs/architecture.md "To avoid"). Used for decoder upsampling and logits-to-input resizing.

    Args:
        interpolation: "bilinear" or "nearest".
        size: optional fixed (height, width); if None, ``call`` takes ``[x, reference]``.
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.conv import ResizeTo
        >>> logits, image = np.zeros((1, 8, 8, 6), "float32"), np.zeros((1, 32, 32, 3), "float32")
        >>> tuple(ResizeTo("bilinear")([logits, image]).shape)
        (1, 32, 32, 6)
        >>> tuple(ResizeTo(size=(16, 16))(logits).shape)
        (1, 16, 16, 6)
    """

    CONFIG = ("interpolation", "size")

    def __init__(self, interpolation: str = "bilinear", size=None, **kwargs):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.size = None if size is None else tuple(size)

    def call(self, inputs):
        if self.size is None:
            x, reference = inputs
            height, width = keras.ops.shape(reference)[1], keras.ops.shape(reference)[2]
        else:
            x = inputs
            height, width = self.size
        return keras.ops.image.resize(x, (height, width), interpolation=self.interpolation)

    def compute_output_shape(self, input_shape):
        if self.size is None:
            x_shape, ref_shape = input_shape
            return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])
        return (input_shape[0], self.size[0], self.size[1], input_shape[3])
