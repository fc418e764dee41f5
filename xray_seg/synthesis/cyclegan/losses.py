"""CycleGAN objectives (Zhu et al. 2017, section 3 and 4), in ``keras.ops``.

* adversarial: least squares (Mao et al. 2017), as the paper uses for stability: a
  generator minimises ``(D(G(x)) - 1)^2``, a discriminator
  ``0.5 * ((D(y) - 1)^2 + D(G(x))^2)``;
* cycle consistency: ``|F(G(x)) - x|_1`` both ways, weight ``lambda_cycle`` (10);
* identity: ``|G(y) - y|_1`` both ways, weight ``lambda_identity * lambda_cycle`` (5),
  which keeps colour composition when nothing needs changing.

Images are raw pixels (0..255); L1 distances are taken on the [-1, 1] scale the paper
uses, so the weights mean what they mean there.
"""

from __future__ import annotations

from keras import ops

PIXEL_SCALE = 127.5


def least_squares_generator(fake_logits):
    """Adversarial loss of a generator: mean ``(D(fake) - 1)^2``."""
    return ops.mean(ops.square(fake_logits - 1.0))


def least_squares_discriminator(real_logits, fake_logits):
    """Loss of a discriminator: ``0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2)``."""
    return 0.5 * (ops.mean(ops.square(real_logits - 1.0)) + ops.mean(ops.square(fake_logits)))


def pixel_l1(x, y):
    """Mean absolute difference of two pixel images on the [-1, 1] scale."""
    return ops.mean(ops.abs(x - y)) / PIXEL_SCALE
