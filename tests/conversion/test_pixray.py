"""`xray-seg convert --from pixray` (xray_seg.conversion.pixray): objects, point formats, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xray_seg.cli import main
from xray_seg.conversion.annotation import Shape
from xray_seg.conversion.convert import ConvertConfig, convert
from xray_seg.conversion.labelme import shapes_to_label
from xray_seg.conversion.pixray import polygon_points
from xray_seg.conversion.voc import load_label_png, read_class_names, read_split
from xray_seg.core.errors import DatasetError

H, W = 30, 40


def add(folder: Path, stem: str, objects, *, ext=".jpg", image_key=None, declared=None, write_image=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if write_image:
        pixels = np.random.default_rng(len(stem)).integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{stem}{ext}")
    data = {"objects": objects}
    if image_key:
        data[image_key] = f"{stem}{ext}"
    if declared:
        data["height"], data["width"] = declared
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(data))
    return path


def square(x0, y0, x1, y1, flat=False):
    pts = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    return [v for p in pts for v in p] if flat else pts


def cfg(labels=None, **kw) -> ConvertConfig:
    kw.setdefault("workers", 1)
    kw.setdefault("source", "pixray")
    return ConvertConfig(labels=str(labels), **kw) if labels else ConvertConfig(**kw)


def test_flat_and_nested_polygons_draw_like_labelme(tmp_path, labels):
    objects = [
        {"label": "knife", "polygon": square(2, 2, 20, 20)},
        {"label": "gun", "polygon": square(10, 10, 30, 25, flat=True)},
        {"label": "knife", "polygon": square(32, 2, 38, 8)},
    ]
    add(tmp_path / "in", "p1", objects)
    out = tmp_path / "voc"
    report = convert(tmp_path / "in", out, cfg(labels))
    assert (report.converted, report.failed) == (1, 0)
    cls = load_label_png(out / "SegmentationClass" / "p1.png")
    expected = shapes_to_label(
        [Shape(o["label"], "polygon", polygon_points(o["polygon"])) for o in objects], (H, W), {"knife": 1, "gun": 2}
    )
    assert np.array_equal(cls, expected)
    obj = load_label_png(out / "SegmentationObject" / "p1.png")
    assert (obj[5, 5], obj[15, 15], obj[5, 35], obj[0, 0]) == (1, 2, 3, 0)  # one object, one instance
    assert read_class_names(out) == ["_background_", "knife", "gun"]


@pytest.mark.parametrize(
    "raw, points",
    [
        ([1, 2, 3, 4, 5, 6], ((1, 2), (3, 4), (5, 6))),
        ([[1, 2], [3, 4], [5.5, 6]], ((1, 2), (3, 4), (5.5, 6))),
    ],
)
def test_point_formats(raw, points):
    assert polygon_points(raw) == points


@pytest.mark.parametrize("raw", [[], [1, 2, 3], [[1, 2, 3]], [[1, 2], [3, "x"]], "1,2,3,4", [[1, 2], 3, 4]])
def test_bad_point_lists(raw):
    with pytest.raises(ValueError):
        polygon_points(raw)


def test_image_by_name_key_and_png(tmp_path, labels):
    add(tmp_path / "in", "named", [{"label": "gun", "polygon": square(1, 1, 9, 9)}], ext=".png", image_key="filename")
    assert convert(tmp_path / "in", tmp_path / "voc", cfg(labels)).converted == 1


def test_images_folder_option(tmp_path, labels):
    add(tmp_path / "images", "x", [], write_image=True)
    ann = tmp_path / "ann"
    ann.mkdir()
    (tmp_path / "images" / "x.json").rename(ann / "x.json")
    (ann / "x.json").write_text(json.dumps({"objects": [{"label": "gun", "polygon": square(1, 1, 9, 9)}]}))
    report = convert(ann, tmp_path / "voc", cfg(labels, images=str(tmp_path / "images")))
    assert report.converted == 1
    assert load_label_png(tmp_path / "voc" / "SegmentationClass" / "x.png")[5, 5] == 2


def test_bad_files_fail_one_by_one(tmp_path, labels):
    src = tmp_path / "in"
    add(src, "good", [{"label": "gun", "polygon": square(1, 1, 9, 9)}])
    add(src, "noimage", [{"label": "gun", "polygon": square(1, 1, 9, 9)}], write_image=False)
    add(src, "twopoints", [{"label": "gun", "polygon": [[1, 1], [5, 5]]}])
    add(src, "oddflat", [{"label": "gun", "polygon": [1, 1, 5, 5, 6]}])
    add(src, "nolabel", [{"polygon": square(1, 1, 9, 9)}])
    add(src, "size", [{"label": "gun", "polygon": square(1, 1, 9, 9)}], declared=(H + 1, W))
    (src / "notpixray.json").write_text(json.dumps({"shapes": []}))
    (src / "corrupt.json").write_text("{")
    report = convert(src, tmp_path / "voc", cfg(labels))
    reasons = {Path(f.path).stem: f.reason for f in report.failures}
    assert report.converted == 1 and report.exit_code == 1 and len(reasons) == 7
    assert "no image named in the JSON" in reasons["noimage"]
    assert "needs at least 3" in reasons["twopoints"]
    assert "odd length" in reasons["oddflat"]
    assert "no label" in reasons["nolabel"]
    assert "height=31" in reasons["size"]
    assert "no 'objects' list" in reasons["notpixray"]
    assert "corrupt JSON" in reasons["corrupt"]
    assert read_split(tmp_path / "voc", "trainval") == ["good"]


def test_unknown_labels_and_class_subset(tmp_path, labels):
    add(
        tmp_path / "in",
        "a",
        [{"label": "Lighter", "polygon": square(0, 0, 39, 29)}, {"label": "gun", "polygon": square(2, 2, 9, 9)}],
    )
    with pytest.raises(DatasetError, match="'Lighter'"):
        convert(tmp_path / "in", tmp_path / "voc", cfg(labels))
    report = convert(tmp_path / "in", tmp_path / "bg", cfg(labels, unknown="background"))
    assert report.converted == 1 and "as background" in report.warnings[0].message
    report = convert(tmp_path / "in", tmp_path / "sub", cfg(classes=["gun"], others="ignore"))
    cls = load_label_png(tmp_path / "sub" / "SegmentationClass" / "a.png")
    assert report.warnings == [] and (cls[5, 5], cls[20, 20]) == (1, 255)


def test_cli_from_pixray(tmp_path, labels, capsys):
    add(tmp_path / "in", "a", [{"label": "gun", "polygon": square(2, 2, 9, 9)}])
    code = main(
        [
            "convert",
            "--from",
            "pixray",
            str(tmp_path / "in"),
            str(tmp_path / "voc"),
            "--labels",
            str(labels),
            "--workers",
            "1",
            "--quiet",
        ]
    )
    assert code == 0 and "converted 1, failed 0" in capsys.readouterr().out
