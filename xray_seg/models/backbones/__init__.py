"""Backbones: CSP-Xception, aligned Xception, MobileNetV2, ResNet."""
