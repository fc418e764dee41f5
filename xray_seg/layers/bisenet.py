"""The building blocks of BiSeNet V2 (Yu et al. 2021, IJCV 129:3051-3068).

BiSeNet V2 is one of paper 1's baselines (section 4.3, Table 3). The blocks here follow
the BiSeNet V2 paper, section 4 ("Bilateral Segmentation Network") and its Figures 4-7:

- :class:`StemBlock` (Fig. 4a): the Semantic Branch's fast 4x downsampling stem.
- :class:`GatherExpand` (Fig. 5b/5c): the gather-and-expansion layer, stride 1 or 2.
- :class:`ContextEmbedding` (Fig. 4b): global context added back to the 1/32 features.
- :class:`BilateralGuidedAggregation` (Fig. 6): fuses the 1/8 Detail and 1/32 Semantic
  branches, each guiding the other through a sigmoid gate.
- :class:`SegHead` (Fig. 7): 3x3 conv-BN-ReLU, dropout, 1x1 classifier; used for the
  main head and the booster (auxiliary) heads.

Convolutions use "same" padding, so every stride-2 step maps a size ``n`` to ``ceil(n/2)``
in both branches and the 1/8 and 1/32 feature maps stay consistent for any input size.
"""

from __future__ import annotations

import keras

from xray_seg.layers.base import ConfigLayer
from xray_seg.layers.conv import ConvBNAct, ResizeTo, SeparableConvBNAct, conv2d, depthwise_conv2d, half_channels
from xray_seg.layers.norm import BatchNorm


@keras.saving.register_keras_serializable(package="xray_seg")
class StemBlock(ConfigLayer):
    """BiSeNet V2 stem block (Yu et al. 2021, section 4.2, Fig. 4a): 4x downsampling.

    3x3 conv (stride 2) -> two branches, [1x1 conv to C/2 -> 3x3 conv stride 2] and
    [3x3 max pool stride 2], concatenated -> 3x3 conv. Every conv is conv-BN-ReLU.

    Args:
        filters: output channels C (16 in the paper's Table 1).
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.bisenet import StemBlock
        >>> tuple(StemBlock(16)(np.zeros((1, 64, 64, 3), "float32")).shape)
        (1, 16, 16, 16)
    """

    CONFIG = ("filters",)

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.conv = ConvBNAct(filters, 3, strides=2, name="conv")
        self.left_reduce = ConvBNAct(half_channels(filters), 1, name="left_reduce")
        self.left_down = ConvBNAct(filters, 3, strides=2, name="left_down")
        self.right_pool = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="right_pool")
        self.concat = keras.layers.Concatenate(axis=-1, name="concat")
        self.fuse = ConvBNAct(filters, 3, name="fuse")

    def build(self, input_shape):
        self.conv.build(input_shape)
        half = self.conv.compute_output_shape(input_shape)
        self.left_reduce.build(half)
        self.left_down.build(self.left_reduce.compute_output_shape(half))
        quarter = self.left_down.compute_output_shape(half)
        self.fuse.build(tuple(quarter[:-1]) + (2 * self.filters,))

    def call(self, inputs, training=None):
        x = self.conv(inputs, training=training)
        left = self.left_down(self.left_reduce(x, training=training), training=training)
        right = self.right_pool(x)
        return self.fuse(self.concat([left, right]), training=training)

    def compute_output_shape(self, input_shape):
        half = self.conv.compute_output_shape(input_shape)
        return self.left_down.compute_output_shape(half)


@keras.saving.register_keras_serializable(package="xray_seg")
class GatherExpand(ConfigLayer):
    """Gather-and-expansion layer (Yu et al. 2021, section 4.2, Fig. 5b and 5c).

    Stride 1 (Fig. 5b): 3x3 conv-BN-ReLU (C_in) -> 3x3 depthwise conv expanding the
    channels ``expansion`` times -> BN -> ReLU -> 1x1 projection conv -> BN, plus the
    identity shortcut, then ReLU. Needs ``filters`` equal to the input channels.

    Stride 2 (Fig. 5c): 3x3 conv-BN-ReLU (C_in) -> 3x3 depthwise conv stride 2 with
    ``expansion`` x channels -> BN -> a second 3x3 depthwise conv -> BN -> ReLU -> 1x1
    projection -> BN; the shortcut is a separable conv (3x3 depthwise stride 2 -> BN
    -> 1x1 conv -> BN); sum, then ReLU.

    The paper's figure shows no ReLU after the (last) depthwise conv; as in the
    authors' released code we apply one there, so the expanded features are rectified
    before the projection (the MobileNetV2 inverted residual does the same).

    Args:
        filters: output channels.
        strides: 1 or 2.
        expansion: expansion ratio e of the depthwise conv (6 in the paper's Table 1).
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.bisenet import GatherExpand
        >>> x = np.zeros((1, 16, 16, 32), "float32")
        >>> tuple(GatherExpand(32)(x).shape), tuple(GatherExpand(64, strides=2)(x).shape)
        ((1, 16, 16, 32), (1, 8, 8, 64))
    """

    CONFIG = ("filters", "strides", "expansion")

    def __init__(self, filters: int, strides: int = 1, expansion: int = 6, **kwargs):
        super().__init__(**kwargs)
        if strides not in (1, 2):
            raise ValueError(f"GatherExpand strides must be 1 or 2, got {strides}")
        self.store_config(locals())
        self.expand_dw = depthwise_conv2d(strides=strides, depth_multiplier=expansion, name="expand_dw")
        self.expand_bn = BatchNorm(name="expand_bn")
        if strides == 2:
            self.second_dw = depthwise_conv2d(name="second_dw")
            self.second_bn = BatchNorm(name="second_bn")
            self.shortcut = SeparableConvBNAct(filters, 3, strides=2, activation=None, name="shortcut")
        else:
            self.second_dw = self.second_bn = self.shortcut = None
        self.project = ConvBNAct(filters, 1, activation=None, name="project")
        self.relu = keras.layers.ReLU(name="relu")

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        if self.strides == 1 and in_channels != self.filters:
            raise ValueError(
                f"a stride-1 GatherExpand needs filters == input channels, got {self.filters} and {in_channels}"
            )
        self.gather = ConvBNAct(in_channels, 3, name="gather")
        self.gather.build(input_shape)
        self.expand_dw.build(input_shape)
        expanded = self.expand_dw.compute_output_shape(input_shape)
        self.expand_bn.build(expanded)
        if self.strides == 2:
            self.second_dw.build(expanded)
            self.second_bn.build(expanded)
            self.shortcut.build(input_shape)
        self.project.build(expanded)

    def call(self, inputs, training=None):
        x = self.gather(inputs, training=training)
        x = self.expand_bn(self.expand_dw(x), training=training)
        if self.strides == 2:
            x = self.second_bn(self.second_dw(x), training=training)
            shortcut = self.shortcut(inputs, training=training)
        else:
            shortcut = inputs
        x = self.project(self.relu(x), training=training)
        return self.relu(x + shortcut)

    def compute_output_shape(self, input_shape):
        out = self.project.compute_output_shape(self.expand_dw.compute_output_shape(input_shape))
        return tuple(out[:-1]) + (self.filters,)


@keras.saving.register_keras_serializable(package="xray_seg")
class ContextEmbedding(keras.layers.Layer):
    """Context embedding block (Yu et al. 2021, section 4.2, Fig. 4b).

    Global average pooling -> BN -> 1x1 conv-BN-ReLU, broadcast-added to the input,
    -> 3x3 conv. The output has the input's channels (128 in the paper's Table 1). The
    paper draws the last 3x3 conv bare; as in the authors' released code it is
    conv-BN-ReLU here.

    Args:
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.bisenet import ContextEmbedding
        >>> tuple(ContextEmbedding()(np.zeros((1, 2, 2, 128), "float32")).shape)
        (1, 2, 2, 128)
    """

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.pool_bn = BatchNorm(name="pool_bn")
        self.pool_conv = ConvBNAct(channels, 1, name="pool_conv")
        self.fuse = ConvBNAct(channels, 3, name="fuse")
        pooled = (input_shape[0], 1, 1, channels)
        self.pool_bn.build(pooled)
        self.pool_conv.build(pooled)
        self.fuse.build(input_shape)

    def call(self, inputs, training=None):
        context = keras.ops.mean(inputs, axis=(1, 2), keepdims=True)
        context = self.pool_conv(self.pool_bn(context, training=training), training=training)
        return self.fuse(inputs + context, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="xray_seg")
class BilateralGuidedAggregation(ConfigLayer):
    """Bilateral guided aggregation layer (Yu et al. 2021, section 4.3, Fig. 6).

    Takes ``[detail, semantic]`` (1/8 and 1/32 of the input) and returns 1/8 features:

    - detail kept at 1/8: 3x3 depthwise conv -> BN -> 1x1 conv;
    - detail brought to 1/32: 3x3 conv stride 2 -> BN -> 3x3 average pool stride 2;
    - semantic gate at 1/8: 3x3 conv -> BN -> bilinear 4x up -> sigmoid;
    - semantic gate at 1/32: 3x3 depthwise conv -> BN -> 1x1 conv -> sigmoid;
    - ``detail_1/8 * gate_1/8 + up4(detail_1/32 * gate_1/32)`` -> 3x3 conv-BN-ReLU.

    The "4x up" resizes to the detail map's size, so sizes that are not multiples of 32
    work. The semantic-side convs map the semantic channels to ``filters``, so the
    layer also works when the two branches differ in width (they are equal, 128, in the
    paper). The ReLU after the final conv is not drawn in Fig. 6 but is in the authors'
    code.

    Args:
        filters: output channels (the Detail Branch's 128 in the paper).
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.bisenet import BilateralGuidedAggregation
        >>> detail, semantic = np.zeros((1, 16, 16, 128), "float32"), np.zeros((1, 4, 4, 128), "float32")
        >>> tuple(BilateralGuidedAggregation(128)([detail, semantic]).shape)
        (1, 16, 16, 128)
    """

    CONFIG = ("filters",)

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.detail_dw = depthwise_conv2d(name="detail_dw")
        self.detail_dw_bn = BatchNorm(name="detail_dw_bn")
        self.detail_pw = conv2d(filters, 1, padding="valid", name="detail_pw")
        self.detail_down = ConvBNAct(filters, 3, strides=2, activation=None, name="detail_down")
        self.detail_pool = keras.layers.AveragePooling2D(3, strides=2, padding="same", name="detail_pool")
        self.semantic_conv = ConvBNAct(filters, 3, activation=None, name="semantic_conv")
        self.semantic_dw = depthwise_conv2d(name="semantic_dw")
        self.semantic_dw_bn = BatchNorm(name="semantic_dw_bn")
        self.semantic_pw = conv2d(filters, 1, padding="valid", name="semantic_pw")
        self.upsample_gate = ResizeTo("bilinear", name="upsample_gate")
        self.upsample_low = ResizeTo("bilinear", name="upsample_low")
        self.fuse = ConvBNAct(filters, 3, name="fuse")

    def build(self, input_shape):
        detail_shape, semantic_shape = input_shape
        self.detail_dw.build(detail_shape)
        self.detail_dw_bn.build(detail_shape)
        self.detail_pw.build(detail_shape)
        self.detail_down.build(detail_shape)
        self.semantic_conv.build(semantic_shape)
        self.semantic_dw.build(semantic_shape)
        self.semantic_dw_bn.build(semantic_shape)
        self.semantic_pw.build(semantic_shape)
        self.fuse.build(tuple(detail_shape[:-1]) + (self.filters,))

    def call(self, inputs, training=None):
        detail, semantic = inputs
        detail_high = self.detail_pw(self.detail_dw_bn(self.detail_dw(detail), training=training))
        detail_low = self.detail_pool(self.detail_down(detail, training=training))
        gate_high = self.upsample_gate([self.semantic_conv(semantic, training=training), detail])
        gate_low = self.semantic_pw(self.semantic_dw_bn(self.semantic_dw(semantic), training=training))
        high = detail_high * keras.ops.sigmoid(gate_high)
        low = self.upsample_low([detail_low * keras.ops.sigmoid(gate_low), detail])
        return self.fuse(high + low, training=training)

    def compute_output_shape(self, input_shape):
        detail_shape, _ = input_shape
        return tuple(detail_shape[:-1]) + (self.filters,)


@keras.saving.register_keras_serializable(package="xray_seg")
class SegHead(ConfigLayer):
    """Segmentation head (Yu et al. 2021, section 4.4, Fig. 7).

    3x3 conv-BN-ReLU to ``filters`` channels (C_t in Fig. 7) -> dropout -> 1x1 conv
    (with bias) to ``num_classes`` logits, at the feature map's resolution; the model
    upsamples the logits to the input size. The same head serves as the main head and
    as the booster heads on the Semantic Branch. The paper does not give C_t or a
    dropout rate; the builder uses C_t = 1024 for the main head and 128 for the boosters
    and dropout 0.1, as in the authors' released code.

    Args:
        filters: channels of the 3x3 conv (C_t).
        num_classes: number of output classes.
        dropout: dropout rate between the two convs (0 disables it).
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.bisenet import SegHead
        >>> tuple(SegHead(64, num_classes=6)(np.zeros((1, 16, 16, 128), "float32")).shape)
        (1, 16, 16, 6)
    """

    CONFIG = ("filters", "num_classes", "dropout")

    def __init__(self, filters: int, num_classes: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.conv = ConvBNAct(filters, 3, name="conv")
        self.drop = keras.layers.Dropout(dropout, name="drop") if dropout > 0 else None
        self.classifier = keras.layers.Conv2D(num_classes, 1, use_bias=True, name="classifier")

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.classifier.build(tuple(input_shape[:-1]) + (self.filters,))

    def call(self, inputs, training=None):
        x = self.conv(inputs, training=training)
        if self.drop is not None:
            x = self.drop(x, training=training)
        return self.classifier(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,)
