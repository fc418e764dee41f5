"""Segmentation models and their registry (keras.ops only; no TensorFlow imports)."""
