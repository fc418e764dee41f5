"""Backbone building blocks: Xception block, CSP block, residual units, inverted residual.

Paper 1 (CWF-DeepLabv3+), section 3.2 and Fig. 3; aligned Xception (Chen et al. 2018,
"Encoder-Decoder with Atrous Separable Convolution", section 3.2); MobileNetV2
(Sandler et al. 2018). keras.ops / Keras layers only.
"""

from __future__ import annotations

import keras

from xray_seg.layers.base import ConfigLayer
from xray_seg.layers.conv import ConvBNAct, SeparableConvBNAct, activation_layer, depthwise_conv2d, half_channels
from xray_seg.layers.norm import BatchNorm


def _filters_triple(filters) -> tuple[int, int, int]:
    if isinstance(filters, int):
        return (filters, filters, filters)
    filters = tuple(int(f) for f in filters)
    if len(filters) != 3:
        raise ValueError(f"filters must be an int or three ints, got {filters}")
    return filters


@keras.saving.register_keras_serializable(package="xray_seg")
class XceptionBlock(ConfigLayer):
    """Three depthwise separable convolutions joined to the input by a residual edge.

    Paper 1, section 3.2, Fig. 3b ("three times depthwise separable convolution on the
    input feature and then connected with the large residual edge"); the same module
    makes up the aligned Xception of DeepLabv3+ (Chen et al. 2018, Fig. 4).

    Layout: ``sep(f0) -> sep(f1) -> sep(f2, stride)``; each separable conv is
    depthwise 3x3 -> BN [-> ReLU] -> pointwise 1x1 -> BN, with ReLU after the first two.
    The residual edge is the identity when the shape is unchanged, else a strided 1x1
    conv + BN (a "projection"). The sum is followed by ReLU (post-activation, as in
    ResNet/CSPNet; docs/models.md, "Paper 1 (CWF-DeepLabv3+): readings of the paper").

    Args:
        filters: output channels of the three separable convs (int or 3 ints; Xception's
            exit block uses (728, 1024, 1024)).
        strides: stride of the third separable conv (and of the projection).
        dilation_rate: atrous rate of the three depthwise convs (output stride < 32).
        residual: "auto" (identity, or projection if the shape changes) or "none"
            (no residual edge; the last exit-flow module of Xception).
        depth_activation: ReLU also after each depthwise BN (Chen et al. 2018's choice;
            paper 1 Fig. 3b is silent).
        activation: activation name (ReLU in Xception).
        return_skip: also return the output of the second separable conv (the DeepLabv3+
            low-level feature is tapped there, before the stride).
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.blocks import XceptionBlock
        >>> block = XceptionBlock((32, 64, 64), strides=2, return_skip=True)
        >>> out, skip = block(np.zeros((1, 32, 32, 16), "float32"))
        >>> tuple(out.shape), tuple(skip.shape)
        ((1, 16, 16, 64), (1, 32, 32, 64))
    """

    CONFIG = ("filters", "strides", "dilation_rate", "residual", "depth_activation", "activation", "return_skip")

    def __init__(
        self,
        filters,
        strides: int = 1,
        dilation_rate: int = 1,
        residual: str = "auto",
        depth_activation: bool = True,
        activation: str = "relu",
        return_skip: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if residual not in ("auto", "none"):
            raise ValueError(f"residual must be 'auto' or 'none', got {residual!r}")
        self.store_config(locals())
        self.filters = _filters_triple(filters)
        self.seps = [
            SeparableConvBNAct(
                f,
                3,
                strides=strides if i == 2 else 1,
                dilation_rate=dilation_rate,
                activation=activation if i < 2 else None,
                depth_activation=depth_activation,
                name=f"sep{i + 1}",
            )
            for i, f in enumerate(self.filters)
        ]
        self.out_act = activation_layer(activation)
        self.projection = None

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if self.residual == "auto" and (self.strides != 1 or in_channels != self.filters[-1]):
            self.projection = ConvBNAct(self.filters[-1], 1, strides=self.strides, activation=None, name="projection")
            self.projection.build(input_shape)
        shape = tuple(input_shape)
        for sep in self.seps:
            sep.build(shape)
            shape = sep.compute_output_shape(shape)

    def call(self, inputs, training=None):
        x = inputs
        skip = None
        for i, sep in enumerate(self.seps):
            x = sep(x, training=training)
            if i == 1:
                skip = x
        if self.residual == "auto":
            shortcut = self.projection(inputs, training=training) if self.projection is not None else inputs
            x = x + shortcut
        x = self.out_act(x)
        return (x, skip) if self.return_skip else x

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        shapes = []
        for sep in self.seps:
            shape = sep.compute_output_shape(shape)
            shapes.append(shape)
        return (shapes[2], shapes[1]) if self.return_skip else shapes[2]


@keras.saving.register_keras_serializable(package="xray_seg")
class ResidualUnit(ConfigLayer):
    """Darknet/CSPNet residual unit: ``x + conv3x3(conv1x1(x))``.

    The "N times residual" inside paper 1's CSP_block (section 3.2, Fig. 3c). The paper
    does not draw the unit; we use CSPDarknet's (Wang et al. 2020, YOLOv4's CSP stages):
    a 1x1 conv then a 3x3 conv, both conv-BN-activation, added to the input with no
    activation after the sum.

    Args:
        filters: channels (input = output).
        dilation_rate: atrous rate of the 3x3 conv.
        separable: use a depthwise separable 3x3 conv (Xception-style, cheaper in FLOPs but
            memory-bound on CPU) instead of a regular one.
        activation: activation name.
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.blocks import ResidualUnit
        >>> tuple(ResidualUnit(32, dilation_rate=2)(np.zeros((1, 16, 16, 32), "float32")).shape)
        (1, 16, 16, 32)
    """

    CONFIG = ("filters", "dilation_rate", "separable", "activation")

    def __init__(
        self, filters: int, dilation_rate: int = 1, separable: bool = False, activation: str = "relu", **kwargs
    ):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.reduce = ConvBNAct(filters, 1, activation=activation, name="conv1x1")
        conv3 = SeparableConvBNAct if separable else ConvBNAct
        self.conv3 = conv3(filters, 3, dilation_rate=dilation_rate, activation=activation, name="conv3x3")

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.filters:
            raise ValueError(f"ResidualUnit({self.filters}) got {input_shape[-1]} input channels")
        self.reduce.build(input_shape)
        self.conv3.build(input_shape)

    def call(self, inputs, training=None):
        return inputs + self.conv3(self.reduce(inputs, training=training), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="xray_seg")
class CSPBlock(ConfigLayer):
    """Cross Stage Partial block (paper 1, section 3.2, Fig. 3c; Wang et al. 2020, CSPNet).

    The input is split into two paths. Path 1: 1x1 conv -> N residual units -> 1x1 conv.
    Path 2: 1x1 conv. The two are concatenated and a transition 1x1 conv gives the
    output. All convs are conv-BN-activation. The block keeps the spatial size (paper 1
    puts no stride inside it; the downsampling of CSP-Xception is done by the stem and
    the Xception blocks).

    Args:
        filters: output channels (after the transition conv).
        num_units: N, the number of residual units in path 1 (the paper is silent; see
            :func:`xray_seg.models.backbones.csp_xception.build_csp_xception`).
        hidden_filters: channels of each path (default ``filters // 2``, CSPNet's half
            split, so the concatenation has ``filters`` channels).
        dilation_rate: atrous rate of the residual units' 3x3 convs (output stride 8).
        separable: depthwise separable 3x3 convs in the residual units.
        activation: activation name (ReLU, as in the rest of the Xception family; CSPDarknet
            uses Mish/LeakyReLU).
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.blocks import CSPBlock
        >>> tuple(CSPBlock(64, num_units=2)(np.zeros((1, 16, 16, 32), "float32")).shape)
        (1, 16, 16, 64)
    """

    CONFIG = ("filters", "num_units", "hidden_filters", "dilation_rate", "separable", "activation")

    def __init__(
        self,
        filters: int,
        num_units: int = 1,
        hidden_filters: int | None = None,
        dilation_rate: int = 1,
        separable: bool = False,
        activation: str = "relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.store_config(locals())
        hidden = hidden_filters or half_channels(filters)
        self.path1_in = ConvBNAct(hidden, 1, activation=activation, name="path1_in")
        self.units = [
            ResidualUnit(
                hidden, dilation_rate=dilation_rate, separable=separable, activation=activation, name=f"unit{i + 1}"
            )
            for i in range(num_units)
        ]
        self.path1_out = ConvBNAct(hidden, 1, activation=activation, name="path1_out")
        self.path2 = ConvBNAct(hidden, 1, activation=activation, name="path2")
        self.transition = ConvBNAct(filters, 1, activation=activation, name="transition")

    def build(self, input_shape):
        hidden_shape = tuple(input_shape[:-1]) + (self.path1_in.filters,)
        self.path1_in.build(input_shape)
        self.path2.build(input_shape)
        for unit in self.units:
            unit.build(hidden_shape)
        self.path1_out.build(hidden_shape)
        self.transition.build(tuple(input_shape[:-1]) + (2 * self.path1_in.filters,))

    def call(self, inputs, training=None):
        x = self.path1_in(inputs, training=training)
        for unit in self.units:
            x = unit(x, training=training)
        x = self.path1_out(x, training=training)
        y = self.path2(inputs, training=training)
        return self.transition(keras.ops.concatenate([x, y], axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)


@keras.saving.register_keras_serializable(package="xray_seg")
class InvertedResidual(ConfigLayer):
    """MobileNetV2 inverted residual (Sandler et al. 2018, section 3.3, Table 1).

    1x1 expansion conv (ReLU6; skipped when ``expansion == 1``) -> 3x3 depthwise conv
    (BN, ReLU6) -> linear 1x1 projection (BN, no activation), plus the identity when the
    stride is 1 and the channel count is unchanged.

    Args:
        filters: output channels.
        expansion: expansion factor t.
        strides: depthwise stride.
        dilation_rate: depthwise atrous rate (DeepLab output stride 16/8).
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.blocks import InvertedResidual
        >>> tuple(InvertedResidual(24, expansion=6, strides=2)(np.zeros((1, 32, 32, 16), "float32")).shape)
        (1, 16, 16, 24)
    """

    CONFIG = ("filters", "expansion", "strides", "dilation_rate")

    def __init__(self, filters: int, expansion: int = 6, strides: int = 1, dilation_rate: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.expand = None
        self.depthwise = depthwise_conv2d(3, strides=strides, dilation_rate=dilation_rate)
        self.depth_bn = BatchNorm(name="depth_bn")
        self.depth_act = keras.layers.Activation("relu6")
        self.project = ConvBNAct(filters, 1, activation=None, name="project")

    def build(self, input_shape):
        in_channels = input_shape[-1]
        shape = tuple(input_shape)
        if self.expansion != 1:
            self.expand = ConvBNAct(in_channels * self.expansion, 1, activation="relu6", name="expand")
            self.expand.build(shape)
            shape = shape[:-1] + (in_channels * self.expansion,)
        self.depthwise.build(shape)
        shape = self.depthwise.compute_output_shape(shape)
        self.depth_bn.build(shape)
        self.project.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.expand is not None:
            x = self.expand(x, training=training)
        x = self.depth_act(self.depth_bn(self.depthwise(x), training=training))
        x = self.project(x, training=training)
        if self.strides == 1 and inputs.shape[-1] == self.filters:
            x = x + inputs
        return x

    def compute_output_shape(self, input_shape):
        shape = self.depthwise.compute_output_shape(tuple(input_shape))
        return shape[:-1] + (self.filters,)
