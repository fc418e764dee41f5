"""Inference: load any trained model, TTA and sliding windows, items and overlays."""
