"""TensorFlow kernels that Keras 3 does not reach on its own, for the TensorFlow backend.

Layers and models use ``keras.ops`` only (docs/architecture.md), so they also run on JAX and PyTorch.
A layer may call into this module for a faster TensorFlow kernel, but only behind a check
that the backend is TensorFlow, with Keras's own implementation as the fallback; see
:class:`xray_seg.layers.norm.BatchNorm`.
"""

from __future__ import annotations

import tensorflow as tf


def fused_batch_norm(inputs, scale, offset, mean, variance, epsilon, *, training):
    """TensorFlow's ``FusedBatchNormV3`` (NHWC): ``(outputs, batch_mean, batch_variance)``.

    With ``training=True`` ``mean``/``variance`` are ignored and the batch statistics are
    returned (the variance unbiased, as the kernel gives it).
    """
    # cuDNN rejects epsilon below 1e-5; TF's own fused_batch_norm wrapper raises it the same way.
    epsilon = max(float(epsilon), 1.001e-5)
    empty = tf.constant([], tf.float32)
    outputs, batch_mean, batch_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=inputs,
        scale=tf.convert_to_tensor(scale),
        offset=tf.convert_to_tensor(offset),
        mean=empty if training else tf.convert_to_tensor(mean),
        variance=empty if training else tf.convert_to_tensor(variance),
        epsilon=epsilon,
        data_format="NHWC",
        is_training=training,
    )
    return outputs, batch_mean, batch_variance
