"""Batch normalisation with TensorFlow's fused kernel on the TensorFlow backend.

Every model in xray-seg is conv -> batch norm -> activation (DeepLabv3+, paper 1 Fig. 2-3,
CycleNet, IFBFNet). Keras 3's ``BatchNormalization`` computes batch norm from separate
element-wise ops (``tf.nn.moments`` + ``tf.nn.batch_normalization``) and lets autodiff
differentiate them; on a CPU those element-wise passes over the activations cost more
than the convolutions. TensorFlow's ``FusedBatchNormV3`` does the forward pass in one
kernel and has a one-kernel gradient (oneDNN on CPU, cuDNN on GPU). Measured share and
speed-up (``xray-seg bench --suite train-step --bn both``): docs/benchmarks.md, "Why the
demo recipe".

:class:`BatchNorm` is ``keras.layers.BatchNormalization`` (same arguments, weights, moving
statistics and results) with that kernel as a fast path. The fast path is the one place a
layer reaches TensorFlow, through :mod:`xray_seg.core.tf_kernels` (imported only when the
backend is TensorFlow, so this module itself imports no TensorFlow); it is taken only on
the TensorFlow backend, for float32 inputs normalised over the last axis, without a mask,
renorm or synchronised statistics.
Everything else (JAX, PyTorch, mixed precision, sync-BN under a distribution strategy)
goes through Keras's own implementation, so the models stay backend-independent.

Moving statistics follow Keras's rule exactly: ``moving = momentum * moving + (1 -
momentum) * batch``, with the *biased* batch variance (the fused kernel returns the
unbiased one; it is rescaled by ``(n - 1) / n``). The fused kernel uses epsilon
``max(epsilon, 1.001e-5)``, as ``tf.compat.v1.nn.fused_batch_norm`` does (cuDNN's minimum); at
xray-seg's 1e-5 this changes outputs by ~1e-7 relative.
"""

from __future__ import annotations

import keras
from keras import ops

#: BN momentum 0.9 (PyTorch's 0.1), what the papers' PyTorch/Caffe training used; it adapts
#: fast enough for short CPU runs. Epsilon 1e-5 for the same reason.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="xray_seg")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with TensorFlow's fused kernel as a fast path.

    See the module docstring for when the fused kernel is used and why. Arguments are those
    of ``keras.layers.BatchNormalization``; the defaults here are xray-seg's
    (momentum 0.9, epsilon 1e-5).

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.norm import BatchNorm
        >>> tuple(BatchNorm()(np.ones((2, 8, 8, 4), "float32"), training=False).shape)
        (2, 8, 8, 4)
    """

    def __init__(self, momentum: float = BN_MOMENTUM, epsilon: float = BN_EPSILON, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)

    def _can_fuse(self, inputs, mask) -> bool:
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and self.scale
            and self.center
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and keras.backend.standardize_dtype(inputs.dtype) == "float32"
            and self.compute_dtype == "float32"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        if training and self.trainable:
            return self._fused_training(inputs)
        from xray_seg.core.tf_kernels import fused_batch_norm  # lazy: TensorFlow, only on its backend

        return fused_batch_norm(
            inputs, self.gamma, self.beta, self.moving_mean, self.moving_variance, self.epsilon, training=False
        )[0]

    def _fused_training(self, inputs):
        from xray_seg.core.tf_kernels import fused_batch_norm  # lazy: TensorFlow, only on its backend

        outputs, mean, variance = fused_batch_norm(
            inputs, self.gamma, self.beta, None, None, self.epsilon, training=True
        )
        count = ops.cast(ops.size(inputs) // ops.shape(inputs)[-1], "float32")
        biased_variance = variance * ops.maximum(count - 1.0, 0.0) / ops.maximum(count, 1.0)
        mean, biased_variance = ops.stop_gradient(mean), ops.stop_gradient(biased_variance)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + biased_variance * (1.0 - self.momentum))
        return outputs
