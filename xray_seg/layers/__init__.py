"""Reusable Keras 3 layers (keras.ops only; no TensorFlow imports)."""
