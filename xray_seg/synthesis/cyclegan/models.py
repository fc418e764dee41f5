"""CycleGAN networks (Zhu et al. 2017, appendix 7.2), Keras 3 functional models.

Both networks take raw pixels (0..255, any height and width; the generator needs a
multiple of 4) and scale them to [-1, 1] inside, as the rest of xray-seg does
(docs/architecture.md: pixel normalisation lives in the model). The generator returns pixels
again (0..255, from a tanh), so ``G_BA(G_AB(a))`` chains without conversions.

* Generator (Johnson et al. 2016): c7s1-ngf, d(2 ngf), d(4 ngf), ``num_blocks`` x
  R(4 ngf), u(2 ngf), u(ngf), c7s1-3. Paper: ngf 64, 9 blocks at 256 px, 6 at 128 px.
* Discriminator, the 70x70 PatchGAN: C64-C128-C256-C512 (4x4 kernels, strides 2, 2,
  2, 1, LeakyReLU 0.2, instance norm except on the first) and a 4x4 convolution to
  one channel: one real/fake logit per overlapping 70x70 patch (at ``num_layers=3``).
"""

from __future__ import annotations

import keras

from xray_seg.synthesis.cyclegan.layers import ReflectionPad2D, ResidualBlock, _init, instance_norm


def build_generator(ngf: int = 64, num_blocks: int = 9, name: str = "generator") -> keras.Model:
    """The ResNet generator, raw pixels in and out.

    Args:
        ngf: filters of the first layer (64 in the paper).
        num_blocks: residual blocks at the bottleneck (9 at 256 px, 6 at 128 px).
        name: model name.
    """
    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit")(inputs)
    x = ReflectionPad2D(3, name="stem_pad")(x)
    x = keras.layers.Conv2D(ngf, 7, kernel_initializer=_init(), name="stem_conv")(x)
    x = keras.layers.ReLU(name="stem_relu")(instance_norm("stem_norm")(x))
    for i, mult in enumerate((2, 4), start=1):
        x = keras.layers.Conv2D(
            ngf * mult, 3, strides=2, padding="same", kernel_initializer=_init(), name=f"down{i}_conv"
        )(x)
        x = keras.layers.ReLU(name=f"down{i}_relu")(instance_norm(f"down{i}_norm")(x))
    for i in range(num_blocks):
        x = ResidualBlock(ngf * 4, name=f"res{i + 1}")(x)
    for i, mult in enumerate((2, 1), start=1):
        x = keras.layers.Conv2DTranspose(
            ngf * mult, 3, strides=2, padding="same", kernel_initializer=_init(), name=f"up{i}_conv"
        )(x)
        x = keras.layers.ReLU(name=f"up{i}_relu")(instance_norm(f"up{i}_norm")(x))
    x = ReflectionPad2D(3, name="head_pad")(x)
    x = keras.layers.Conv2D(3, 7, activation="tanh", kernel_initializer=_init(), name="head_conv")(x)
    outputs = keras.layers.Rescaling(127.5, offset=127.5, name="to_pixels")(x)
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(
    ndf: int = 64, num_layers: int = 3, name: str = "discriminator", use_norm: bool = True
) -> keras.Model:
    """The PatchGAN discriminator: raw pixels in, a map of real/fake logits out.

    Args:
        ndf: filters of the first layer (64 in the paper).
        num_layers: stride-2 layers after the first; 3 gives the 70x70 receptive field.
        name: model name.
        use_norm: instance norm after every convolution but the first and the last
            (switch off only to measure the receptive field, see
            :func:`receptive_field`: instance norm couples all pixels of an image).
    """
    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit")(inputs)
    filters = ndf
    for i in range(num_layers + 1):
        stride = 2 if i < num_layers else 1
        filters = ndf * min(2**i, 8)
        x = keras.layers.ZeroPadding2D(1, name=f"pad{i + 1}")(x)
        x = keras.layers.Conv2D(filters, 4, strides=stride, kernel_initializer=_init(), name=f"conv{i + 1}")(x)
        if i > 0 and use_norm:
            x = instance_norm(f"norm{i + 1}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i + 1}")(x)
    x = keras.layers.ZeroPadding2D(1, name="head_pad")(x)
    outputs = keras.layers.Conv2D(1, 4, kernel_initializer=_init(), name="head_conv")(x)
    return keras.Model(inputs, outputs, name=name)


def receptive_field(model: keras.Model) -> int:
    """Side of the input window that one output pixel sees, from the convolutions' kernels and strides.

    Walks the model's layers in order (a plain chain, as the PatchGAN is); padding
    does not change it.
    """
    field, jump = 1, 1
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, stride = layer.kernel_size[0], layer.strides[0]
            field += (kernel - 1) * jump
            jump *= stride
    return field
