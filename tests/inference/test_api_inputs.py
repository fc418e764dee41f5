"""Issue 28: API image arrays checked with the fix in the message; TTA scales under the pixel limit."""

from __future__ import annotations

import numpy as np
import pytest

from xray_seg.core.errors import ConfigError, DatasetError
from xray_seg.inference.tta import check_image_array, check_scaled_pixels, predict_probabilities
from xray_seg.segmenter import Segmenter

RGB = np.full((4, 5, 3), 200, dtype=np.uint8)


@pytest.mark.parametrize(
    ("array", "text"),
    [
        (RGB / 255.0, "multiply by 255"),
        (RGB.astype(np.uint16) * 256, "scale 16-bit data to 8 bits"),
        (np.full((4, 5, 3), np.nan, dtype=np.float32), "NaN"),
        (np.full((4, 5, 3), 1e6), "outside 0..255"),
        (RGB.astype(np.int16) - 300, "outside 0..255"),
        (np.zeros((0, 0, 3)), "empty"),
        (np.zeros((4, 5, 4), dtype=np.uint8), "drop the alpha channel"),
        (np.zeros((2, 4, 5, 3), dtype=np.uint8), "expected [H, W, 3]"),
        (np.array([["a"]]), "must be numbers"),
    ],
)
def test_bad_api_arrays_are_refused_with_the_fix(array, text):
    with pytest.raises(DatasetError) as info:
        Segmenter(None).predict(array)  # refused before the model is touched
    assert text in info.value.message and "\n" not in info.value.message


def test_good_api_arrays_become_rgb_float():
    assert check_image_array(RGB).dtype == np.float32
    grey = check_image_array(RGB[..., 0].astype(np.uint16))  # grey, as the file reader replicates it
    assert grey.shape == (4, 5, 3) and (grey == 200).all()
    assert check_image_array(np.zeros((3, 3, 1), dtype=np.float64)).shape == (3, 3, 3)  # an all-black float image


def test_api_array_over_the_pixel_limit(monkeypatch):
    monkeypatch.setenv("XRAY_SEG_MAX_PIXELS", "10")
    with pytest.raises(DatasetError, match="over the limit"):
        check_image_array(RGB)


def test_tta_scale_over_the_pixel_limit_is_refused_before_any_work(monkeypatch):
    monkeypatch.setenv("XRAY_SEG_MAX_PIXELS", "1000000")
    check_scaled_pixels((1000, 1000), (0.5, 1.0))

    def model(batch):  # never called
        raise AssertionError("predicted although the scale is over the limit")

    with pytest.raises(ConfigError) as info:
        predict_probabilities(model, np.zeros((1000, 1000, 3), np.uint8), scales=(1.0, 2.0), window=(64, 64))
    assert "--tta scale 2" in info.value.message and "1.0 M pixels" in info.value.message


def test_cli_tta_scale_over_the_limit_is_one_line(tmp_path, refused, monkeypatch):
    from PIL import Image
    from test_hostile_predict import _save_model  # the one-layer stand-in model of that file

    model = _save_model(tmp_path / "m")
    Image.fromarray(RGB).save(tmp_path / "bag.png")
    monkeypatch.setenv("XRAY_SEG_MAX_PIXELS", "100")
    argv = ["predict", model, tmp_path / "bag.png", "--out", tmp_path / "out", "--tta", "scales=1,8"]
    line = refused(argv, "--tta scale 8", "4x5 scan 32x40", "limit of 0.0 M pixels", untouched=[tmp_path / "bag.png"])
    assert "--max-pixels" in line and not list((tmp_path / "out").glob("bag*"))
