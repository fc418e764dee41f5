"""Reading and rasterising Labelme JSON (xray_seg.conversion.labelme).

The rasteriser is compared pixel for pixel with the installed labelme (a test-only
reference) on random shapes, and with labelme's own example output (shared/conformance).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from _helpers import png_bytes
from PIL import Image

from xray_seg.conversion.annotation import Shape
from xray_seg.conversion.labelme import parse_shapes, read_labelme, shapes_to_label
from xray_seg.core.errors import DatasetError
from xray_seg.core.images import decode_image

LABELS = {"__ignore__": -1, "_background_": 0, "knife": 1, "gun": 2, "wrench": 3}


def write_json(
    folder: Path,
    stem: str,
    shapes: list,
    *,
    size=(24, 32),
    image_path: str | None = None,
    embed: bytes | None = None,
    declared=None,
) -> Path:
    """A Labelme JSON beside an RGB image ``stem.png`` of ``size`` (H, W) unless told otherwise."""
    h, w = size
    if embed is None and image_path is None:
        image_path = f"{stem}.png"
        (folder / image_path).write_bytes(png_bytes(np.full((h, w, 3), 200, np.uint8)))
    dh, dw = declared if declared is not None else (h, w)
    data = {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path or f"{stem}.png",
        "imageData": base64.b64encode(embed).decode() if embed is not None else None,
        "imageHeight": dh,
        "imageWidth": dw,
    }
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(data))
    return path


def poly(label="knife", pts=((2, 2), (20, 3), (10, 18))):
    return {"label": label, "points": [list(p) for p in pts], "shape_type": "polygon", "group_id": None, "flags": {}}


# ----------------------------------------------------------------- conformance


def test_matches_labelme2voc_example(shared_dir):
    """labelme's example: our label arrays equal data_dataset_voc's npy (one known pixel aside)."""
    root = shared_dir / "conformance" / "labelme_voc_example"
    if not root.is_dir():
        pytest.skip("conformance data missing")
    names = [line.strip() for line in (root / "labels.txt").read_text().splitlines() if line.strip()]
    mapping = {n: i - 1 for i, n in enumerate(names)}
    for json_path in sorted((root / "data_annotated").glob("*.json")):
        record = read_labelme(json_path, json_path.parent)
        label = shapes_to_label(record.shapes, record.image.shape, mapping)
        expected = np.load(root / "data_dataset_voc" / "SegmentationClassNpy" / f"{json_path.stem}.npy")
        assert label.dtype == np.int32 and label.shape == expected.shape
        diff = np.argwhere(label != expected).tolist()
        allowed = [[290, 104]] if json_path.stem == "2011_000006" else []
        assert diff in ([], allowed), (json_path.stem, diff[:10])
        assert (label == -1).any() or json_path.stem == "2011_000025"


# ------------------------------------------------- property test against labelme

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def scenes(draw):
    h = draw(st.integers(8, 64))
    w = draw(st.integers(8, 64))
    coord_x = st.floats(-6, w + 6, allow_nan=False, width=32)
    coord_y = st.floats(-6, h + 6, allow_nan=False, width=32)
    point = st.tuples(coord_x, coord_y).map(list)
    shapes = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["polygon", "rectangle", "circle", "line", "linestrip", "point", "mask"]))
        label = draw(st.sampled_from(sorted(LABELS)))
        if kind == "mask":
            x1 = draw(st.integers(0, w - 1))
            y1 = draw(st.integers(0, h - 1))
            x2 = draw(st.integers(x1, w - 1))
            y2 = draw(st.integers(y1, h - 1))
            bits = draw(
                st.lists(st.booleans(), min_size=(y2 - y1 + 1) * (x2 - x1 + 1), max_size=(y2 - y1 + 1) * (x2 - x1 + 1))
            )
            mask = np.array(bits, bool).reshape(y2 - y1 + 1, x2 - x1 + 1)
            b64 = base64.b64encode(png_bytes(mask.astype(np.uint8) * 255)).decode()
            shapes.append({"label": label, "shape_type": "mask", "points": [[x1, y1], [x2, y2]], "mask": b64})
            continue
        n = {"polygon": draw(st.integers(3, 7)), "linestrip": draw(st.integers(2, 5)), "point": 1}.get(kind, 2)
        pts = draw(st.lists(point, min_size=n, max_size=n))
        shapes.append({"label": label, "shape_type": kind, "points": pts})
    return (h, w), shapes


@settings(max_examples=150, deadline=None)
@given(scenes())
def test_shapes_to_label_equals_labelme(scene):
    """Every shape type, random sizes 8..64 and overlaps: exactly labelme.utils.shapes_to_label."""
    import labelme.utils

    (h, w), raw = scene
    ours = shapes_to_label(parse_shapes({"shapes": raw}, "scene.json"), (h, w, 3), LABELS)
    reference_shapes = []
    for s in raw:
        mask = labelme.utils.img_b64_to_arr(s["mask"]).astype(bool) if s["shape_type"] == "mask" else None
        reference_shapes.append({**s, "mask": mask, "group_id": 1})
    expected, _ = labelme.utils.shapes_to_label((h, w, 3), reference_shapes, LABELS)
    np.testing.assert_array_equal(ours, expected)
    assert ours.dtype == np.int32


def test_later_shape_overwrites_and_ignore_is_minus_one():
    shapes = parse_shapes(
        {
            "shapes": [
                {"label": "knife", "shape_type": "rectangle", "points": [[0, 0], [9, 9]]},
                {"label": "__ignore__", "shape_type": "rectangle", "points": [[5, 5], [9, 9]]},
                {"label": "_background_", "shape_type": "rectangle", "points": [[0, 0], [1, 1]]},
            ]
        },
        "x.json",
    )
    label = shapes_to_label(shapes, (12, 12), LABELS)
    assert label[3, 3] == 1 and label[7, 7] == -1 and label[0, 0] == 0 and label[11, 11] == 0


# ---------------------------------------------------------------- image modes


def test_sixteen_bit_gray_keeps_high_byte():
    arr = np.array([[0, 255, 256, 32768], [40000, 65279, 65280, 65535]], np.uint16)
    rgb, fmt, mode, rotated = decode_image(png_bytes(arr), source="x.png")
    assert mode.startswith("I") and fmt == "PNG" and not rotated
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], arr >> 8)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_sixteen_bit_colour_keeps_high_byte():
    import cv2

    arr = np.random.default_rng(0).integers(0, 65536, size=(5, 6, 3), dtype=np.uint16)
    ok, enc = cv2.imencode(".png", arr[..., ::-1])  # cv2 writes BGR
    assert ok
    rgb, _, _, _ = decode_image(enc.tobytes(), source="x.png")
    np.testing.assert_array_equal(rgb, (arr >> 8).astype(np.uint8))


def test_rgba_composited_on_white():
    arr = np.zeros((1, 3, 4), np.uint8)
    arr[0, 0] = (10, 20, 30, 255)  # opaque: unchanged
    arr[0, 1] = (10, 20, 30, 0)  # transparent: white
    arr[0, 2] = (0, 0, 0, 128)  # half: grey
    rgb, _, mode, _ = decode_image(png_bytes(arr), source="x.png")
    assert mode == "RGBA"
    assert rgb[0, 0].tolist() == [10, 20, 30] and rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[0, 2].tolist() == [127, 127, 127]


def test_grayscale_replicated_to_three_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb, _, mode, _ = decode_image(png_bytes(gray), source="x.png")
    assert mode == "L" and rgb.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray)


def test_exif_orientation_is_applied():
    img = Image.fromarray(np.zeros((4, 8, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    rgb, _, _, rotated = decode_image(buf.getvalue(), source="x.jpg")
    assert rotated and rgb.shape == (8, 4, 3)


def test_undecodable_image_names_the_file():
    with pytest.raises(DatasetError, match="broken.png.*cannot decode"):
        decode_image(b"not an image", source="broken.png")


# ------------------------------------------------------------------- reading


def test_reads_image_path_and_embedded_image(tmp_path):
    a = read_labelme(write_json(tmp_path, "a", [poly()]), tmp_path)
    assert a.image.shape == (24, 32, 3) and a.image_file == tmp_path / "a.png" and a.shapes[0].label == "knife"
    data = png_bytes(np.full((24, 32, 3), 7, np.uint8))
    b = read_labelme(write_json(tmp_path, "b", [poly()], embed=data), tmp_path)
    assert b.image_file is None and b.image_bytes == data and int(b.image[0, 0, 0]) == 7


def test_windows_separators_in_image_path(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png_bytes(np.zeros((24, 32, 3), np.uint8)))
    record = read_labelme(write_json(tmp_path, "a", [poly()], image_path="imgs\\a.png"), tmp_path)
    assert record.image_file == tmp_path / "imgs" / "a.png"


def test_corrupt_json_is_reported(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"shapes": [')
    with pytest.raises(DatasetError, match=r"bad.json: corrupt JSON at line 1"):
        read_labelme(path, tmp_path)


def test_missing_image_is_reported(tmp_path):
    path = write_json(tmp_path, "a", [poly()], image_path="nowhere.png")
    with pytest.raises(DatasetError, match=r"a.json: image 'nowhere.png' not found"):
        read_labelme(path, tmp_path)


@pytest.mark.parametrize("image_path", ["../outside.png", "/etc/hostname", "sub/../../outside.png"])
def test_image_path_escaping_the_input_is_refused(tmp_path, image_path):
    inner = tmp_path / "in"
    inner.mkdir()
    (tmp_path / "outside.png").write_bytes(png_bytes(np.zeros((24, 32, 3), np.uint8)))
    path = write_json(inner, "a", [poly()], image_path=image_path)
    with pytest.raises(DatasetError, match="leads outside the input folder"):
        read_labelme(path, inner)


def test_image_size_must_match_declared_size(tmp_path):
    path = write_json(tmp_path, "a", [poly()], declared=(30, 32))
    with pytest.raises(DatasetError, match=r"a.json: the image is 32x24 .* imageHeight=30"):
        read_labelme(path, tmp_path)


def test_polygon_with_fewer_than_three_points_is_refused(tmp_path):
    path = write_json(tmp_path, "a", [poly(pts=((1, 1), (5, 5)))])
    with pytest.raises(
        DatasetError, match=r"a.json: shape #0 \(polygon 'knife'\) has 2 point\(s\); a polygon needs at least 3"
    ):
        read_labelme(path, tmp_path)


def test_unsupported_shape_type_is_refused(tmp_path):
    path = write_json(tmp_path, "a", [{**poly(), "shape_type": "bezier"}])
    with pytest.raises(DatasetError, match="unsupported shape_type 'bezier'"):
        read_labelme(path, tmp_path)


def test_points_outside_the_image_warn_and_clip(tmp_path):
    path = write_json(tmp_path, "a", [poly(pts=((-10, -10), (40, 0), (0, 40)))])
    record = read_labelme(path, tmp_path)
    assert len(record.warnings) == 1 and "3 of 3 point(s) lie outside the 32x24 image" in record.warnings[0]
    label = shapes_to_label(record.shapes, record.image.shape, LABELS)
    assert label.shape == (24, 32) and label[0, 0] == 1 and label[23, 31] == 0


def test_mask_shape_is_pasted_at_its_box(tmp_path):
    mask = np.zeros((3, 4), np.uint8)
    mask[1, 2] = 255
    shape = {
        "label": "gun",
        "shape_type": "mask",
        "points": [[5, 6], [8, 8]],
        "mask": base64.b64encode(png_bytes(mask)).decode(),
    }
    record = read_labelme(write_json(tmp_path, "a", [shape]), tmp_path)
    label = shapes_to_label(record.shapes, record.image.shape, LABELS)
    assert np.argwhere(label).tolist() == [[7, 7]] and label[7, 7] == 2 and record.warnings == []


def test_missing_shape_type_means_polygon():
    shapes = parse_shapes({"shapes": [{"label": "knife", "points": [[0, 0], [5, 0], [0, 5]]}]}, "old.json")
    assert shapes == [Shape("knife", "polygon", ((0.0, 0.0), (5.0, 0.0), (0.0, 5.0)))]
