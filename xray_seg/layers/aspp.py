"""Atrous Spatial Pyramid Pooling, plain (DeepLabv3+) and with DWFF (CWF-DeepLabv3+).

Paper 1, section 2 (ASPP: a 1x1 conv, three 3x3 atrous convs at rates 6, 12, 18, and
global pooling) and section 3.1/3.3 (DWFF-ASPP: the plain concatenation of the five
branch outputs is replaced by the double weighted feature fusion). Chen et al. 2017/2018
(DeepLabv3, section 3.3; DeepLabv3+, section 3.1) for the image pooling branch, the
projection and the rate doubling at output stride 8.
"""

from __future__ import annotations

import keras
from keras import ops

from xray_seg.layers.base import ConfigLayer
from xray_seg.layers.conv import ConvBNAct, SeparableConvBNAct
from xray_seg.layers.fusion import DWFF

#: ASPP atrous rates at output stride 16 (paper 1, section 2; Chen et al. 2018).
ASPP_RATES_OS16 = (6, 12, 18)


def aspp_rates(output_stride: int) -> tuple[int, ...]:
    """The atrous rates for an output stride: (6, 12, 18) at 16, doubled (12, 24, 36) at 8."""
    if output_stride not in (8, 16):
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
    return tuple(r * 16 // output_stride for r in ASPP_RATES_OS16)


@keras.saving.register_keras_serializable(package="xray_seg")
class ImagePooling(ConfigLayer):
    """The image-level branch of ASPP (Chen et al. 2017, DeepLabv3 section 3.3).

    Global average pooling -> 1x1 conv -> BN -> ReLU -> broadcast back to the input's
    spatial size. Uses ``ops.mean`` and ``ops.broadcast_to`` on the runtime shape, so it
    works for any input size (``input_shape=(None, None, C)``). Note: with a training batch
    of one image the BN of this branch sees a single value per channel; paper 1 trains
    with batch 4.

    Args:
        filters: output channels.
        activation: activation after BN.
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.aspp import ImagePooling
        >>> tuple(ImagePooling(32)(np.zeros((2, 16, 16, 64), "float32")).shape)
        (2, 16, 16, 32)
    """

    CONFIG = ("filters", "activation")

    def __init__(self, filters: int, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.conv = ConvBNAct(filters, 1, activation=activation, name="conv")

    def build(self, input_shape):
        self.conv.build((input_shape[0], 1, 1, input_shape[-1]))

    def call(self, inputs, training=None):
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        pooled = self.conv(pooled, training=training)
        shape = ops.shape(inputs)
        return ops.broadcast_to(pooled, (shape[0], shape[1], shape[2], self.filters))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)


@keras.saving.register_keras_serializable(package="xray_seg")
class ASPP(ConfigLayer):
    """Atrous Spatial Pyramid Pooling (paper 1, section 2 and Fig. 1; Chen et al. 2018).

    Five parallel branches on the backbone's high-level feature, each with ``filters``
    channels: ``P0`` a 1x1 conv, ``P1..P3`` 3x3 atrous convs at ``rates`` (6, 12, 18 at
    output stride 16; doubled at 8), ``P4`` image pooling. They are fused (``fusion``),
    then a 1x1 conv (BN, ReLU) projects to ``filters`` channels, followed by dropout.

    Args:
        filters: channels of every branch and of the output (256 in the papers).
        rates: the three atrous rates.
        fusion: "concat" (DeepLabv3+: plain channel concatenation, 5 * filters channels)
            or "dwff" (CWF-DeepLabv3+: :class:`~xray_seg.layers.fusion.DWFF`, also
            5 * filters channels). Either way the 1x1 projection follows (paper 1,
            section 3.1: "Finally, 1x1 convolution is used to reduce the number of feature
            channels").
        separable: atrous *separable* 3x3 convs (DeepLabv3+ with Xception, Chen et al.
            2018 section 3.2, "atrous separable convolution" applied to ASPP); False gives
            regular atrous convs (DeepLabv3).
        dropout: dropout rate after the projection (0.1 as in the DeepLabv3+ reference
            implementation; paper 1 is silent).
        fusion_epsilon: epsilon of DWFF's fast normalised fusion.
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.aspp import ASPP
        >>> aspp = ASPP(64, rates=(6, 12, 18), fusion="concat")
        >>> tuple(aspp(np.zeros((1, 16, 16, 128), "float32")).shape)
        (1, 16, 16, 64)
    """

    CONFIG = ("filters", "rates", "fusion", "separable", "dropout", "fusion_epsilon")

    def __init__(
        self,
        filters: int = 256,
        rates=ASPP_RATES_OS16,
        fusion: str = "concat",
        separable: bool = True,
        dropout: float = 0.1,
        fusion_epsilon: float = 1e-4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if fusion not in ("concat", "dwff"):
            raise ValueError(f"fusion must be 'concat' or 'dwff', got {fusion!r}")
        self.store_config(locals())
        self.rates = tuple(int(r) for r in rates)
        if len(self.rates) != 3:
            raise ValueError(f"ASPP takes three atrous rates, got {self.rates}")
        atrous = SeparableConvBNAct if separable else ConvBNAct
        extra = {"depth_activation": True} if separable else {}
        self.branches = [ConvBNAct(filters, 1, name="branch0_1x1")]
        self.branches += [
            atrous(filters, 3, dilation_rate=rate, name=f"branch{i + 1}_rate{rate}", **extra)
            for i, rate in enumerate(self.rates)
        ]
        self.branches.append(ImagePooling(filters, name="branch4_pool"))
        self.dwff = DWFF(epsilon=fusion_epsilon, name="dwff") if fusion == "dwff" else None
        self.project = ConvBNAct(filters, 1, name="project")
        self.drop = keras.layers.Dropout(dropout) if dropout else None

    def build(self, input_shape):
        branch_shape = tuple(input_shape[:-1]) + (self.filters,)
        for branch in self.branches:
            branch.build(input_shape)
        if self.dwff is not None:
            self.dwff.build([branch_shape] * 5)
        self.project.build(tuple(input_shape[:-1]) + (5 * self.filters,))

    def fuse(self, inputs, training=None):
        """The five branch outputs ``[P0..P4]`` fused (5 * filters channels, before projection)."""
        if not self.built:
            self.build(tuple(inputs.shape))
        outputs = [branch(inputs, training=training) for branch in self.branches]
        if self.dwff is not None:
            return self.dwff(outputs)
        return ops.concatenate(outputs, axis=-1)

    def call(self, inputs, training=None):
        x = self.project(self.fuse(inputs, training=training), training=training)
        if self.drop is not None:
            x = self.drop(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)


@keras.saving.register_keras_serializable(package="xray_seg")
class DWFFASPP(ASPP):
    """DWFF-ASPP of CWF-DeepLabv3+ (paper 1, sections 3.1 and 3.3, Fig. 2 and Fig. 4).

    :class:`ASPP` whose plain concatenation is replaced by
    :class:`~xray_seg.layers.fusion.DWFF`: five two-input ``F_add`` fusions, one
    five-input ``F_concat`` fusion (1280 channels at full width), then the 1x1 projection
    to 256 channels.

    Args:
        filters, rates, separable, dropout, fusion_epsilon: as for :class:`ASPP`.
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.aspp import DWFFASPP
        >>> tuple(DWFFASPP(64)(np.zeros((1, 16, 16, 128), "float32")).shape)
        (1, 16, 16, 64)
    """

    def __init__(
        self,
        filters: int = 256,
        rates=ASPP_RATES_OS16,
        separable: bool = True,
        dropout: float = 0.1,
        fusion_epsilon: float = 1e-4,
        **kwargs,
    ):
        kwargs.pop("fusion", None)
        super().__init__(
            filters, rates, fusion="dwff", separable=separable, dropout=dropout, fusion_epsilon=fusion_epsilon, **kwargs
        )

    def get_config(self):
        config = super().get_config()
        config.pop("fusion")
        return config
