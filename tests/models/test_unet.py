"""U-Net baseline (Ronneberger et al. 2015; paper 1, section 4.3, Table 3)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from xray_seg.core.errors import ModelError  # noqa: E402
from xray_seg.models.registry import build_model  # noqa: E402
from xray_seg.models.unet import LEVEL_CHANNELS, build_unet  # noqa: E402

TINY = 0.0625  # 4 -> 64 channels
NUM_CLASSES = 6


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_logits_at_input_resolution(upsampling, toy_batch):
    model = build_unet(NUM_CLASSES, (64, 64, 3), width=TINY, upsampling=upsampling)
    images, _ = toy_batch()
    out = model(images)
    assert tuple(out.shape) == (2, 64, 64, NUM_CLASSES)
    assert "softmax" not in [getattr(layer, "activation", None) for layer in model.layers]
    # no softmax: logits are not rows of a probability simplex
    assert not np.allclose(np.asarray(out).sum(-1), 1.0)


def test_levels_channels_and_resolutions():
    """4 downsamplings, 64 -> 1024 channels doubling (scaled by width), 1/16 at the bottom."""
    model = build_unet(NUM_CLASSES, (64, 64, 3), width=TINY)
    for level, channels in enumerate(LEVEL_CHANNELS[:-1], start=1):
        down = model.get_layer(f"down{level}_conv2").output.shape
        up = model.get_layer(f"up{level}_conv2").output.shape
        size = 64 // 2 ** (level - 1)
        assert tuple(down[1:]) == (size, size, round(channels * TINY))
        assert tuple(up[1:]) == (size, size, round(channels * TINY))
    assert tuple(model.get_layer("bottleneck_conv2").output.shape[1:]) == (4, 4, round(1024 * TINY))
    assert list(LEVEL_CHANNELS) == [64, 128, 256, 512, 1024]
    assert model.get_layer("up1").__class__.__name__ == "Conv2DTranspose"


@pytest.mark.parametrize("shape", [(72, 40, 3), (None, None, 3)])
def test_sizes_not_divisible_by_16(shape):
    model = build_unet(NUM_CLASSES, shape, width=TINY)
    images = np.random.default_rng(1).uniform(0, 255, (1, 72, 40, 3)).astype("float32")
    assert tuple(model(images).shape) == (1, 72, 40, NUM_CLASSES)


def test_aux_and_bad_options_are_refused():
    with pytest.raises(ModelError, match="no auxiliary heads"):
        build_unet(NUM_CLASSES, (64, 64, 3), width=TINY, aux=True)
    with pytest.raises(ModelError, match="upsampling"):
        build_unet(NUM_CLASSES, (64, 64, 3), width=TINY, upsampling="pixelshuffle")
    with pytest.raises(ModelError, match="bad option"):
        build_model("unet", NUM_CLASSES, (64, 64, 3), width=TINY, output_stride=16)


def test_full_size_parameter_count():
    """The original U-Net has ~31.0M weights; with BN and a 6-class 1x1 head, 31.04M trainable."""
    model = build_unet(NUM_CLASSES, (64, 64, 3))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert 30.5e6 < trainable < 31.5e6, trainable
