"""BatchNorm: Keras's batch norm with TensorFlow's fused kernel; same results, same statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from xray_seg.layers.norm import BN_EPSILON, BN_MOMENTUM, BatchNorm


def _pair(channels=5, seed=0):
    """A BatchNorm and a Keras BatchNormalization with identical, non-trivial weights."""
    fused = BatchNorm(name="fused")
    reference = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="reference")
    shape = (None, 6, 7, channels)
    fused.build(shape)
    reference.build(shape)
    rng = np.random.default_rng(seed)
    weights = [
        rng.uniform(0.5, 2.0, channels),  # gamma
        rng.normal(0.0, 1.0, channels),  # beta
        rng.normal(0.0, 1.0, channels),  # moving mean
        rng.uniform(0.5, 2.0, channels),  # moving variance
    ]
    weights = [w.astype("float32") for w in weights]
    fused.set_weights(weights)
    reference.set_weights(weights)
    return fused, reference


def _inputs(seed=1, channels=5):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.normal(3.0, 2.0, (4, 6, 7, channels)).astype("float32"))


def _graph_ops(layer, x, training):
    fn = tf.function(lambda t: layer(t, training=training))
    return {op.type for op in fn.get_concrete_function(x).graph.get_operations()}


@pytest.mark.parametrize("training", [True, False])
def test_outputs_match_keras_batch_normalization(training):
    fused, reference = _pair()
    x = _inputs()
    np.testing.assert_allclose(fused(x, training=training), reference(x, training=training), rtol=1e-4, atol=1e-4)


def test_training_updates_moving_statistics_like_keras():
    fused, reference = _pair()
    for seed in (1, 2, 3):
        x = _inputs(seed)
        fused(x, training=True)
        reference(x, training=True)
    np.testing.assert_allclose(fused.moving_mean, reference.moving_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance, reference.moving_variance, rtol=1e-5, atol=1e-6)
    # and they did move away from the initial statistics
    assert not np.allclose(fused.moving_mean, _pair()[0].moving_mean)


def test_gradients_match_keras_batch_normalization():
    fused, reference = _pair()
    x = _inputs()
    upstream = tf.constant(np.random.default_rng(5).normal(size=x.shape).astype("float32"))
    grads = []
    for layer in (fused, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        grads.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_fused_kernel_is_used_for_float32_training_and_inference():
    fused, _ = _pair()
    x = _inputs()
    assert "FusedBatchNormV3" in _graph_ops(fused, x, training=True)
    assert "FusedBatchNormV3" in _graph_ops(fused, x, training=False)


def test_falls_back_to_keras_under_mixed_precision_and_sync_bn():
    x = _inputs()
    bf16 = BatchNorm(dtype="mixed_bfloat16")
    bf16.build(x.shape)
    assert "FusedBatchNormV3" not in _graph_ops(bf16, tf.cast(x, "bfloat16"), training=True)
    synced = BatchNorm(synchronized=True)
    synced.build(x.shape)
    assert "FusedBatchNormV3" not in _graph_ops(synced, x, training=True)


def test_frozen_layer_uses_moving_statistics():
    fused, reference = _pair()
    fused.trainable = False
    reference.trainable = False
    x = _inputs()
    before = fused.moving_mean.numpy().copy()
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=False), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(fused.moving_mean, before)


def test_keras_round_trip(tmp_path):
    fused, _ = _pair()
    model = keras.Sequential([keras.Input((6, 7, 5)), fused])
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[0], BatchNorm)
    x = _inputs()
    np.testing.assert_array_equal(model(x, training=False), loaded(x, training=False))
