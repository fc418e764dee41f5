"""Synthetic scans with real proportions: `xray-seg synth --size WIDTHxHEIGHT` and `--aspect-mix pidray`."""

import json

import numpy as np
import pytest

from xray_seg.cli import main
from xray_seg.core.errors import ConfigError
from xray_seg.synthesis.scene import PIDRAY_ASPECTS, SynthConfig, render_sample


def test_size_width_x_height_writes_belt_scans(tmp_path):
    out = tmp_path / "belt"
    assert main(["synth", str(out), "--size", "160x48", "--num", "3", "--workers", "1", "--quiet"]) == 0
    records = [json.loads(p.read_text()) for p in sorted(out.glob("xray_*.json"))]
    assert len(records) == 3
    for record in records:
        assert (record["imageWidth"], record["imageHeight"]) == (160, 48)
        for shape in record["shapes"]:
            points = np.asarray(shape["points"])
            assert points[:, 0].min() >= 0 and points[:, 0].max() <= 160 and points[:, 1].max() <= 48


def test_bag_sits_in_its_square_on_a_canvas_of_air():
    config = SynthConfig(size=64, width=256, seed=2)
    image, shapes, info = render_sample(config, 0, debug=True)
    assert image.shape == (64, 256, 3)
    bright = image.min(axis=(0, 2)) > 200  # columns of pure air (the detector noise stays bright)
    assert bright.sum() >= 256 - 64 - 4  # everything outside the bag's 64-pixel square is air
    columns = np.nonzero(info["threat_mask"].any(axis=0))[0]
    if columns.size:  # the threats lie inside one 64-pixel square
        assert columns.max() - columns.min() < 64
        xs = np.concatenate([np.asarray(s["points"])[:, 0] for s in shapes])
        assert xs.min() >= columns.min() - 1 and xs.max() <= columns.max() + 2


def test_square_size_is_unchanged_and_tall_scans_work():
    square, _ = render_sample(SynthConfig(size=64, seed=5), 1)
    same, _ = render_sample(SynthConfig(size=64, width=64, seed=5), 1)  # WxH with W == H is square
    np.testing.assert_array_equal(square, same)
    tall, _ = render_sample(SynthConfig(size=200, width=64, seed=5), 1)
    assert tall.shape == (200, 64, 3)


def test_pidray_aspect_mix():
    config = SynthConfig(size=48, aspect_mix="pidray", seed=0)
    ratios = {round(config.scan_shape(i)[1] / 48, 1) for i in range(60)}
    assert all(config.scan_shape(i)[0] == 48 for i in range(10))
    assert ratios <= {round(r, 1) for r, _ in PIDRAY_ASPECTS} and len(ratios) >= 4
    assert render_sample(config, 3)[0].shape[:2] == config.scan_shape(3)


def test_bad_sizes_are_refused(capsys):
    assert main(["synth", "/tmp/never", "--size", "12x34x5"]) == 2
    assert "bad size '12x34x5'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="width"):
        SynthConfig(size=64, width=10).validate()
    with pytest.raises(ConfigError, match="square"):
        SynthConfig(size=64, width=128, style="photo").validate()
