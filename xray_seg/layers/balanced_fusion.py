"""Inter-level feature balanced fusion (IFBFNet, section 3.2, eqs. 2-4, Fig. 3).

Self-contained (Keras 3 only, ``keras.ops``), so it can move into ``layers/fusion.py``
beside DWFF unchanged.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="xray_seg")
class FeatureBalancedFusion(keras.layers.Layer):
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

    Choices where the paper is silent: the 1x1 convolution has a bias and no batch norm
    (it acts on a 1x1 pooled vector; batch statistics of one value per image would be
    noisy); it is initialised with Keras' default Glorot-uniform kernel and a zero bias,
    so the module starts near ``1.5 x Z``. Average pooling is global (over the whole
    feature map), as "compress the spatial information ... into a one-dimensional
    concentrated expression ``W in R^{(C_h + C_l) x 1 x 1}``" states.

    The default layer name is ``feature_balanced_fusion`` (Keras derives it from the
    class name), so the trainer's ``optim.lr_multipliers`` regex ``balanced_fusion``
    matches this module's variables (IFBFNet section 4.1: 10x learning rate).

    Args:
        residual: add the unweighted concatenation to the weighted one (the paper's
            residual structure); False gives ``W * Z`` alone (for ablation).
        **kwargs: standard layer arguments (name, dtype, ...).

    Call arguments:
        inputs: a list ``[feat_h, feat_l]`` of tensors ``[B, H, W, C_h]`` and
            ``[B, H, W, C_l]`` with the same batch and spatial size.
    """

    def __init__(self, residual: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.residual = residual
        self.weight_conv = None

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not isinstance(
            input_shape[0], (list, tuple)
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

    def get_config(self):
        config = super().get_config()
        config.update(residual=self.residual)
        return config
