"""Shared test set-up: quiet TensorFlow, a fixed seed, the shared/ folder."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def tiny_voc(tmp_path_factory) -> Path:
    """A small real dataset: 12 synthetic 64x64 X-ray bags, converted to VOC (8 train / 4 val)."""
    from xray_seg.conversion.convert import ConvertConfig, convert
    from xray_seg.synthesis.scene import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("tiny")
    synthesize(root / "labelme", SynthConfig(size=64, num=12, seed=3, workers=1), progress=False)
    convert(
        root / "labelme",
        root / "voc",
        ConvertConfig(labels=str(root / "labelme" / "labels.txt"), workers=1, val_ratio=0.34),
        progress=False,
    )
    return root / "voc"
