"""Model-test set-up: a toy batch a tiny model can learn in a few steps."""

import numpy as np
import pytest


def make_toy_batch(size=64, n=2, seed=0, num_classes=6):
    """Raw 0..255 images with a bright square whose pixels are class 1..K-1, rest 0."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 60, (n, size, size, 3)).astype("float32")
    labels = np.zeros((n, size, size), "int32")
    for i in range(n):
        y, x = rng.integers(4, size // 2, 2)
        images[i, y : y + size // 3, x : x + size // 3] += 180
        labels[i, y : y + size // 3, x : x + size // 3] = 1 + i % (num_classes - 1)
    return images, labels


@pytest.fixture
def toy_batch():
    """:func:`make_toy_batch`, for tests that call it (``images, labels = toy_batch()``)."""
    return make_toy_batch
