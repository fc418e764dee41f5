"""Weighted feature fusion: fast normalised fusion, paper 1's DWFF module, and IFBFNet's
inter-level feature balanced fusion (:class:`FeatureBalancedFusion`, IFBFNet section 3.2).

Paper 1 (Zhang, Gao, Miao, "DeepLabv3+ ... Optimized by Double Weighted Feature
Fusion"), section 3.3, eqs. 1-3 and Fig. 4. The weight normalisation is EfficientDet's
"fast normalized fusion" (Tan et al. 2020, section 3.3; the BiFPN ``FNode`` of
google/automl ``efficientdet_keras.py``).
"""

from __future__ import annotations

import keras
from keras import ops

from xray_seg.layers.base import ConfigLayer

FUSION_MODES = ("sum", "concat")


@keras.saving.register_keras_serializable(package="xray_seg")
class FastNormalizedFusion(ConfigLayer):
    """Fast normalised weighted fusion of n feature maps (paper 1, eqs. 1-3).

    One learnable scalar ``w_i`` per input, initialised to 1. The normalised weights are

        W_i = relu(w_i) / (sum_j relu(w_j) + epsilon)            (eq. 1)

    and the output is

        sum:    swish(sum_i W_i * P_i)                           (eq. 2, F_add)
        concat: swish(concat_i(W_i * P_i))  on the channel axis  (eq. 3, F_concat)

    Eq. 1 of the paper writes ``w_i / (sum_j w_j + eps)`` without the ReLU; the ReLU is
    EfficientDet's way to keep every ``W_i >= 0``, which the text
    implies ("importance" weights). With the ReLU the weights are non-negative and sum to
    ``S / (S + eps)`` with ``S = sum_j relu(w_j)``, i.e. to 1 up to eps.

    Args:
        mode: "sum" (all inputs must have the same shape; output has their channels) or
            "concat" (inputs must share batch and spatial size; output channels are the
            sum of the input channels).
        epsilon: the small constant of eq. 1 (EfficientDet uses 1e-4).
        activation: activation after the fusion; the paper's sigma is swish.
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.fusion import FastNormalizedFusion
        >>> a, b = np.ones((1, 8, 8, 16), "float32"), np.ones((1, 8, 8, 16), "float32")
        >>> tuple(FastNormalizedFusion("sum")([a, b]).shape), tuple(FastNormalizedFusion("concat")([a, b]).shape)
        ((1, 8, 8, 16), (1, 8, 8, 32))
    """

    CONFIG = ("mode", "epsilon", "activation")

    def __init__(self, mode: str = "sum", epsilon: float = 1e-4, activation: str | None = "swish", **kwargs):
        super().__init__(**kwargs)
        if mode not in FUSION_MODES:
            raise ValueError(f"mode must be one of {FUSION_MODES}, got {mode!r}")
        self.store_config(locals())
        self._act = keras.activations.get(activation) if activation else None

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or not input_shape
            or not isinstance(input_shape[0], (list, tuple))
        ):
            raise ValueError("FastNormalizedFusion takes a list of feature maps")
        self.fusion_weights = self.add_weight(
            name="fusion_weights",
            shape=(len(input_shape),),
            initializer="ones",
            trainable=True,
        )

    def normalized_weights(self):
        """The weights ``W_i`` of eq. 1 (non-negative, summing to 1 up to epsilon)."""
        w = ops.relu(self.fusion_weights)
        return w / (ops.sum(w) + self.epsilon)

    def call(self, inputs):
        weights = ops.cast(self.normalized_weights(), inputs[0].dtype)
        weighted = [weights[i] * x for i, x in enumerate(inputs)]
        if self.mode == "sum":
            out = weighted[0]
            for x in weighted[1:]:
                out = out + x
        else:
            out = ops.concatenate(weighted, axis=-1)
        return self._act(out) if self._act is not None else out

    def compute_output_shape(self, input_shape):
        first = tuple(input_shape[0])
        if self.mode == "sum":
            return first
        channels = [s[-1] for s in input_shape]
        total = None if any(c is None for c in channels) else sum(channels)
        return first[:-1] + (total,)


@keras.saving.register_keras_serializable(package="xray_seg")
class DWFF(ConfigLayer):
    """Double Weighted Feature Fusion of the five ASPP outputs (paper 1, section 3.3, Fig. 4).

    Input: the list ``[P0, P1, P2, P3, P4]`` of ASPP branch outputs (the 1x1 conv, the
    three atrous convs at rates 6/12/18, and image pooling; 32x32x256 each at a
    512x512 input). Output: ``5 * C`` channels (1280 at full width); the 1x1 conv that
    reduces them to 256 is the ASPP projection (:class:`xray_seg.layers.aspp.ASPP`),
    so that DWFF replaces exactly the plain concatenation of DeepLabv3+.

    First weighted fusion block, five two-input ``F_add`` fusions (eq. 2), exactly as the
    text of section 3.3 gives them::

        P'4 = F_add(P0, P4)
        P'3 = F_add(P3, P'4)
        P'2 = F_add(P2, P3)
        P'1 = F_add(P1, P2)
        P'0 = F_add(P0, P1)

    Second weighted fusion block: one five-input ``F_concat`` fusion (eq. 3) of
    ``P'0..P'4`` (concatenated in that order), giving ``5 * C`` channels.

    This follows the text of section 3.3 where Fig. 4 could be read as a BiFPN-style
    top-down chain (docs/models.md, "Paper 1 (CWF-DeepLabv3+): readings of the paper").

    Args:
        epsilon: epsilon of eq. 1 for all six fusions.
        activation: the sigma of eqs. 2-3 (swish).
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.fusion import DWFF
        >>> branches = [np.ones((1, 4, 4, 8), "float32") for _ in range(5)]
        >>> tuple(DWFF()(branches).shape)
        (1, 4, 4, 40)
    """

    CONFIG = ("epsilon", "activation")

    def __init__(self, epsilon: float = 1e-4, activation: str | None = "swish", **kwargs):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.fuse_p4 = FastNormalizedFusion("sum", epsilon, activation, name="fuse_p4")
        self.fuse_p3 = FastNormalizedFusion("sum", epsilon, activation, name="fuse_p3")
        self.fuse_p2 = FastNormalizedFusion("sum", epsilon, activation, name="fuse_p2")
        self.fuse_p1 = FastNormalizedFusion("sum", epsilon, activation, name="fuse_p1")
        self.fuse_p0 = FastNormalizedFusion("sum", epsilon, activation, name="fuse_p0")
        self.fuse_concat = FastNormalizedFusion("concat", epsilon, activation, name="fuse_concat")

    @property
    def fusions(self) -> list[FastNormalizedFusion]:
        """All six fusion layers (first block P'4..P'0, then the concat fusion)."""
        return [self.fuse_p4, self.fuse_p3, self.fuse_p2, self.fuse_p1, self.fuse_p0, self.fuse_concat]

    def build(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(f"DWFF takes the five ASPP outputs [P0..P4], got {len(input_shape)} inputs")
        shape = tuple(input_shape[0])
        for fusion in self.fusions[:5]:
            fusion.build([shape, shape])
        self.fuse_concat.build([shape] * 5)

    def call(self, inputs):
        p0, p1, p2, p3, p4 = inputs
        q4 = self.fuse_p4([p0, p4])
        q3 = self.fuse_p3([p3, q4])
        q2 = self.fuse_p2([p2, p3])
        q1 = self.fuse_p1([p1, p2])
        q0 = self.fuse_p0([p0, p1])
        return self.fuse_concat([q0, q1, q2, q3, q4])

    def compute_output_shape(self, input_shape):
        return self.fuse_concat.compute_output_shape([tuple(input_shape[0])] * 5)


# --- IFBFNet (section 3.2): inter-level feature balanced fusion ---------------------


@keras.saving.register_keras_serializable(package="xray_seg")
class FeatureBalancedFusion(ConfigLayer):
    """Inter-level feature balanced fusion of a high- and a low-level feature.

    IFBFNet (section 3.2, eqs. 2-3, Fig. 3)::

        Z = Feat_h ||_c Feat_l                                  (concatenation)
        W = W_h ||_c W_l = sigmoid(conv1x1(avgpool(Z)))         (eq. 2)
        Z_balanced = (W_h * Feat_h) ||_c (W_l * Feat_l) = W * Z (eq. 3)
        out = Z_balanced + Z                                    (the residual, "adding the
                                                                 unprocessed features")

    ``W`` has one weight per channel and image (``[B, 1, 1, C_h + C_l]``), so the
    convolution that follows the module sees ``W_hi Feat_hi`` and ``W_li Feat_li`` (eq. 4).
    The output has ``C_h + C_l`` channels at the inputs' spatial size.

    Average pooling is global; the 1x1 conv has a bias and no batch norm, Glorot-uniform kernel
    and zero bias, so the module starts near ``1.5 x Z`` (why: docs/models.md, "IFBFNet:
    readings of the paper"). The default name ``feature_balanced_fusion`` matches the
    ``optim.lr_multipliers`` regex ``balanced_fusion`` (IFBFNet section 4.1: 10x learning rate).

    Args:
        residual: add the unweighted concatenation to the weighted one (the paper's
            residual structure); False gives ``W * Z`` alone (for ablation).
        **kwargs: standard layer arguments (name, dtype, ...).

    Call arguments:
        inputs: a list ``[feat_h, feat_l]`` of tensors ``[B, H, W, C_h]`` and
            ``[B, H, W, C_l]`` with the same batch and spatial size.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.fusion import FeatureBalancedFusion
        >>> high, low = np.ones((1, 8, 8, 16), "float32"), np.ones((1, 8, 8, 8), "float32")
        >>> tuple(FeatureBalancedFusion()([high, low]).shape)
        (1, 8, 8, 24)
    """

    CONFIG = ("residual",)

    def __init__(self, residual: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.store_config(locals())
        self.weight_conv = None

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not isinstance(input_shape[0], (list, tuple))
        ):
            raise ValueError(f"FeatureBalancedFusion takes [feat_h, feat_l], got input shape {input_shape}")
        high, low = input_shape
        if high[-1] is None or low[-1] is None:
            raise ValueError(f"FeatureBalancedFusion needs known channel counts, got {input_shape}")
        channels = int(high[-1]) + int(low[-1])
        self.weight_conv = keras.layers.Conv2D(channels, 1, use_bias=True, name="weight_conv")
        self.weight_conv.build((high[0], 1, 1, channels))

    def _concat(self, inputs):
        feat_h, feat_l = inputs
        return ops.concatenate([feat_h, feat_l], axis=-1)

    def _weights_of(self, concatenated):
        pooled = ops.mean(concatenated, axis=(1, 2), keepdims=True)
        return ops.sigmoid(self.weight_conv(pooled))

    def balance_weights(self, inputs):
        """The balance weights ``W = [W_h, W_l]``, shape ``[B, 1, 1, C_h + C_l]`` (eq. 2)."""
        if not self.built:
            self.build([tuple(x.shape) for x in inputs])
        return self._weights_of(self._concat(inputs))

    def call(self, inputs):
        concatenated = self._concat(inputs)
        balanced = self._weights_of(concatenated) * concatenated
        if self.residual:
            return balanced + concatenated
        return balanced

    def compute_output_shape(self, input_shape):
        high, low = input_shape
        channels = None if high[-1] is None or low[-1] is None else int(high[-1]) + int(low[-1])
        return tuple(high[:-1]) + (channels,)
