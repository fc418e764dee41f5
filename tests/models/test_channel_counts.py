"""Channel counts of every registered model at widths 0.25 and 1.0, pinned.

``channel_counts.json`` was recorded before the channel-rounding rules were gathered
into ``xray_seg/layers/conv.py``: :func:`~xray_seg.layers.conv.scale_channels` (plain
rounding), :func:`~xray_seg.layers.conv.divisible_channels` (MobileNet's
``make_divisible``) and :func:`~xray_seg.layers.conv.half_channels`, with the ResNet
family's floor of 8 named :func:`~xray_seg.models.backbones.resnet.resnet_channels`. A change of a rule,
or of a builder's use of one, changes a model's parameter count
or the multiset of its kernels' output channels and fails here. Models are built at
64x64 (channel counts do not depend on the input size), with auxiliary heads where the
model has them.
"""

import collections
import json
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

from xray_seg.core.errors import ModelError  # noqa: E402
from xray_seg.models.registry import available_models, build_model  # noqa: E402

PINNED = json.loads((Path(__file__).with_name("channel_counts.json")).read_text())
WIDTHS = (0.25, 1.0)


def fingerprint(model) -> dict:
    """Parameter count and ``{output channels: number of kernels}`` over every weight of rank >= 2."""
    counts = collections.Counter(int(w.shape[-1]) for w in model.weights if len(w.shape) >= 2)
    return {"params": int(model.count_params()), "kernel_out_channels": {str(k): counts[k] for k in sorted(counts)}}


def test_every_registered_model_is_pinned():
    assert sorted(PINNED) == sorted(f"{spec.name}@{w}" for spec in available_models() for w in WIDTHS)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", [spec.name for spec in available_models()])
def test_channel_counts_unchanged(name, width):
    try:
        model = build_model(name, 6, (64, 64, 3), width=width, aux=True)
    except ModelError:  # no auxiliary heads (unet)
        model = build_model(name, 6, (64, 64, 3), width=width)
    try:
        assert fingerprint(model) == PINNED[f"{name}@{width}"]
    finally:
        keras.backend.clear_session()
