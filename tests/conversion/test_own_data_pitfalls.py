"""What docs/data.md's "Your own data" section promises about 16-bit scans, JPEG and colour masks.

Each test converts a tiny Labelme folder the way a user would and checks the pixels the
training pipeline then decodes (``xray_seg.pipeline.decoding.decode_rgb``), which is what the
model sees.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from xray_seg.cli import main
from xray_seg.conversion.convert import ConvertConfig, convert

H, W = 40, 48


def _labelme_item(folder: Path, stem: str) -> None:
    doc = {
        "version": "5.4.1",
        "flags": {},
        "imagePath": f"{stem}.png",
        "imageData": None,
        "imageHeight": H,
        "imageWidth": W,
        "shapes": [
            {
                "label": "knife",
                "points": [[5, 5], [30, 5], [30, 30]],
                "shape_type": "polygon",
                "group_id": None,
                "flags": {},
            }
        ],
    }
    (folder / f"{stem}.json").write_text(json.dumps(doc))


@pytest.fixture
def sixteen_bit_scans(tmp_path):
    """A Labelme folder with a 16-bit grey and a 16-bit colour PNG; returns (folder, labels, expected 8-bit RGB)."""
    folder = tmp_path / "labelme"
    folder.mkdir()
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    colour = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    assert cv2.imwrite(str(folder / "grey16.png"), grey)
    assert cv2.imwrite(str(folder / "colour16.png"), colour[..., ::-1])  # OpenCV writes BGR
    for stem in ("grey16", "colour16"):
        _labelme_item(folder, stem)
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\nknife\n")
    expected = {
        "grey16": np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, axis=-1),
        "colour16": (colour >> 8).astype(np.uint8),
    }
    return folder, labels, expected


def _pipeline_pixels(voc: Path, stem: str) -> np.ndarray:
    import tensorflow as tf

    from xray_seg.pipeline.decoding import decode_rgb

    (path,) = (voc / "JPEGImages").glob(f"{stem}.*")
    return decode_rgb(tf.io.read_file(str(path))).numpy()


@pytest.mark.parametrize("image_format", ["png", "copy"])
def test_sixteen_bit_scans_keep_their_high_byte(sixteen_bit_scans, tmp_path, image_format):
    folder, labels, expected = sixteen_bit_scans
    voc = tmp_path / f"voc-{image_format}"
    report = convert(
        folder, voc, ConvertConfig(labels=str(labels), image_format=image_format, workers=1), progress=False
    )
    assert report.failed == 0, report.summary()
    for stem, want in expected.items():
        np.testing.assert_array_equal(_pipeline_pixels(voc, stem), want)
    with Image.open(voc / "JPEGImages" / "grey16.png") as img:
        # png writes the 8-bit result; copy keeps the scanner's 16-bit file byte for byte
        assert img.mode == ("RGB" if image_format == "png" else "I;16")
    if image_format == "copy":
        assert (voc / "JPEGImages" / "grey16.png").read_bytes() == (folder / "grey16.png").read_bytes()


def test_jpeg_output_is_lossy_and_png_is_not(sixteen_bit_scans, tmp_path):
    folder, labels, expected = sixteen_bit_scans
    voc = tmp_path / "voc-jpeg"
    convert(folder, voc, ConvertConfig(labels=str(labels), image_format="jpeg", workers=1), progress=False)
    assert (voc / "JPEGImages" / "colour16.jpg").is_file()
    error = np.abs(_pipeline_pixels(voc, "colour16").astype(int) - expected["colour16"].astype(int))
    assert error.max() > 10  # re-encoding changed the pixels the model trains on


def test_colour_mask_is_refused_naming_the_file(tmp_path, capsys):
    """A mask re-saved as RGB colours is not a label map: data-stats and training refuse it."""
    from xray_seg.core.errors import DatasetError
    from xray_seg.pipeline.dataset import make_eval_dataset

    voc = tmp_path / "voc"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(voc / "JPEGImages" / "a.png")
    colours = np.zeros((H, W, 3), np.uint8)
    colours[5:20, 5:20] = (128, 0, 0)  # VOC colour of class 1, as an image editor would save it
    Image.fromarray(colours).save(voc / "SegmentationClass" / "a.png")
    (voc / "class_names.txt").write_text("_background_\nknife\n")
    (voc / "ImageSets/Segmentation/train.txt").write_text("a\n")

    assert main(["data-stats", str(voc)]) == 2
    err = capsys.readouterr().err
    assert "a.png" in err and "not a palette/indexed PNG" in err, err
    with pytest.raises(DatasetError, match="mask is not an indexed PNG"):
        make_eval_dataset(voc, "train")
