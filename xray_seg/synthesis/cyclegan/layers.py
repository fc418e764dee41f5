"""Layers of the CycleGAN networks (Zhu et al. 2017, appendix 7.2), in ``keras.ops`` only.

Instance normalisation is ``keras.layers.GroupNormalization(groups=-1)`` (one group
per channel: each sample's channel is normalised over its own pixels), see
:func:`instance_norm`.
"""

from __future__ import annotations

import keras
from keras import ops

#: Epsilon of instance normalisation, as PyTorch's ``InstanceNorm2d`` (the authors' code).
INSTANCE_NORM_EPSILON = 1e-5


def instance_norm(name: str | None = None) -> keras.layers.Layer:
    """Instance normalisation (Ulyanov et al. 2016) with a learnt scale and offset."""
    return keras.layers.GroupNormalization(groups=-1, epsilon=INSTANCE_NORM_EPSILON, name=name)


@keras.saving.register_keras_serializable(package="xray_seg")
class ReflectionPad2D(keras.layers.Layer):
    """Pad height and width by mirroring the border (no repeated edge pixel).

    The CycleGAN generator pads this way before its 7x7 and 3x3 convolutions so that
    the image border does not turn into an artificial dark frame.

    Args:
        padding: pixels added on each side of height and width (int).
        **kwargs: standard layer arguments.
    """

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = 2 * self.padding
        return (n, None if h is None else h + grow, None if w is None else w + grow, c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="xray_seg")
class ResidualBlock(keras.layers.Layer):
    """The generator's residual block: x + IN(conv3(pad(ReLU(IN(conv3(pad(x))))))).

    Zhu et al. 2017 (appendix 7.2, "R256"), after Johnson et al. 2016: two 3x3
    convolutions with the same number of filters, reflection padding, instance norm,
    and no activation after the sum.

    Args:
        filters: channels (must equal the input's).
        **kwargs: standard layer arguments.
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.pad1 = ReflectionPad2D(1, name="pad1")
        self.conv1 = keras.layers.Conv2D(filters, 3, padding="valid", kernel_initializer=_init(), name="conv1")
        self.norm1 = instance_norm("norm1")
        self.pad2 = ReflectionPad2D(1, name="pad2")
        self.conv2 = keras.layers.Conv2D(filters, 3, padding="valid", kernel_initializer=_init(), name="conv2")
        self.norm2 = instance_norm("norm2")

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        padded = tuple(self.pad1.compute_output_shape(input_shape))
        self.conv1.build(padded)
        self.norm1.build(input_shape[:-1] + (self.filters,))
        self.conv2.build(padded[:-1] + (self.filters,))
        self.norm2.build(input_shape[:-1] + (self.filters,))

    def call(self, inputs):
        x = ops.relu(self.norm1(self.conv1(self.pad1(inputs))))
        x = self.norm2(self.conv2(self.pad2(x)))
        return inputs + x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def _init():
    """Weights drawn from N(0, 0.02), as in the authors' code."""
    return keras.initializers.RandomNormal(0.0, 0.02)
