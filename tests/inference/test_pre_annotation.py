"""`xray-seg predict --labelme`: pre-annotations labelme loads, that convert back to the predicted map.

The polygon writer is tested on class maps built by hand (rings with islands in their holes,
items on every border, fragments); the command end to end with a 1x1-convolution Keras model
whose prediction is the scan's colour (white background, red "gun", green "knife"), so the
predicted class map is known exactly.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from xray_seg.inference.pre_annotation import item_shapes

CLASS_NAMES = ["_background_", "gun", "knife"]
LABELS = {name: i for i, name in enumerate(CLASS_NAMES)}
COLOURS = {0: (255, 255, 255), 1: (230, 20, 20), 2: (20, 230, 20)}


def _scene(height: int, width: int, seed: int) -> np.ndarray:
    """A class map with a ring (hole) holding an island, items on each border and a corner, a fragment."""
    rng = np.random.default_rng(seed)
    cmap = np.zeros((height, width), np.uint8)
    cx, cy = width // 2 + int(rng.integers(-4, 5)), height // 2 + int(rng.integers(-4, 5))
    cv2.ellipse(cmap, (cx, cy), (22, 16), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    cv2.ellipse(cmap, (cx, cy), (12, 8), float(rng.uniform(0, 180)), 0, 360, 0, -1)  # the hole
    cv2.circle(cmap, (cx, cy), 3, 2, -1)  # an island of another class inside the hole
    cv2.circle(cmap, (0, int(rng.integers(10, height - 10))), 9, 2, -1)  # left border
    cv2.rectangle(cmap, (width - 7, 5), (width + 3, 25), 1, -1)  # right border
    cv2.circle(cmap, (width - 1, height - 1), 11, 2, -1)  # bottom-right corner
    cv2.ellipse(cmap, (int(rng.integers(12, 30)), 0), (10, 6), 15.0, 0, 360, 1, -1)  # top border
    cmap[height - 3 :, 5:9] = 1  # a 12-pixel fragment on the bottom border: under min_area
    return cmap


def _probs(cmap: np.ndarray) -> np.ndarray:
    probs = np.full((*cmap.shape, len(CLASS_NAMES)), 0.05, np.float32)
    np.put_along_axis(probs, cmap[..., None].astype(np.int64), 0.9, axis=-1)
    return probs


def _expected(cmap: np.ndarray, min_area: int) -> np.ndarray:
    """The class map without its fragments under ``min_area`` (what pre-annotations keep)."""
    out = cmap.copy()
    for c in range(1, len(CLASS_NAMES)):
        n, lab, stats, _ = cv2.connectedComponentsWithStats((cmap == c).astype(np.uint8), connectivity=8)
        for comp in range(1, n):
            if stats[comp, cv2.CC_STAT_AREA] < min_area:
                out[lab == comp] = 0
    return out


def _item_agreement(expected: np.ndarray, got: np.ndarray) -> list[float]:
    """For every item of ``expected``: the share of its pixels that ``got`` gives its class."""
    shares = []
    for c in range(1, len(CLASS_NAMES)):
        n, lab = cv2.connectedComponents((expected == c).astype(np.uint8), connectivity=8)
        shares += [float((got[lab == comp] == c).mean()) for comp in range(1, n)]
    return shares


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("simplify", [0.0, 1.0, 2.0])
def test_polygons_reproduce_the_class_map_through_labelme(seed, simplify):
    import labelme.utils

    cmap = _scene(72, 96, seed)
    shapes, ious = item_shapes(cmap, _probs(cmap), CLASS_NAMES, min_area=20, simplify=simplify, model="m.keras")
    expected = _expected(cmap, 20)
    assert len(shapes) == len(ious) == 6  # ring, island, 4 border items; the fragment is dropped
    assert all(s["shape_type"] == "polygon" and s["label"] in LABELS for s in shapes)
    for shape in shapes:
        pts = np.asarray(shape["points"])
        assert (pts >= 0).all() and (pts[:, 0] <= 95).all() and (pts[:, 1] <= 71).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labelme's own deprecation notes
        reference, _ = labelme.utils.shapes_to_label((72, 96, 3), shapes, LABELS)
    shares = _item_agreement(expected, reference)
    assert len(shares) == 6 and min(shares) >= 0.98, shares
    assert min(ious) >= 0.99
    ring_hole = (cmap == 0) & (expected == 0)
    assert (reference[ring_hole] == 0).mean() >= 0.99  # holes and background stay background


def test_tolerance_trades_vertices_only_where_the_item_keeps_its_pixels():
    cmap = _scene(72, 96, 0)
    exact, _ = item_shapes(cmap, _probs(cmap), CLASS_NAMES, min_area=20, simplify=0.0, model="m")
    simple, ious = item_shapes(cmap, _probs(cmap), CLASS_NAMES, min_area=20, simplify=1.0, model="m")
    assert sum(len(s["points"]) for s in simple) < sum(len(s["points"]) for s in exact)
    assert min(ious) >= 0.99
    assert simple[0]["description"] == "pre-annotation from m, confidence 0.90"
    assert simple[0]["flags"] == {"unreviewed": True}


# ----------------------------------------------------------------------------- the command


def _colour_model(folder: Path, *, names: bool = True) -> Path:
    """A 1x1 convolution that predicts a pixel's class from its colour (module docstring)."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    inputs = keras.Input((None, None, 3))
    head = keras.layers.Conv2D(3, 1, name="head")
    model = keras.Model(inputs, head(inputs))
    kernel = np.array([[2, 2, -2], [2, -2, 2], [2, -2, -2]], np.float32) / 255.0  # rows r, g, b
    head.set_weights([kernel.reshape(1, 1, 3, 3), np.array([-3.0, 0.0, 0.0], np.float32)])
    path = folder / "model.keras"
    model.save(path)
    if names:
        (folder / "class_names.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return _colour_model(tmp_path_factory.mktemp("model") / "m")


def _paint(cmap: np.ndarray) -> np.ndarray:
    image = np.zeros((*cmap.shape, 3), np.uint8)
    for c, colour in COLOURS.items():
        image[cmap == c] = colour
    return image


@pytest.fixture
def scans(tmp_path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    for i, (h, w) in enumerate([(72, 96), (80, 72)]):
        Image.fromarray(_paint(_scene(h, w, i))).save(folder / f"bag{i}.png")
    return folder


def test_pre_annotations_load_in_labelme_and_convert_back(model_file, scans, tmp_path, cli):
    from labelme import LabelFile

    out, voc = tmp_path / "pre", tmp_path / "voc"
    argv = ["predict", model_file, scans, "--out", out, "--labelme", "--copy-images", "--min-area", "20"]
    assert cli(argv)[0] == 0
    for stem in ("bag0", "bag1"):
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["imagePath"] == f"{stem}.png" and record["imageData"] is None
        assert record["flags"] == {"unreviewed": True}
        assert (out / f"{stem}.png").read_bytes() == (scans / f"{stem}.png").read_bytes()
        label_file = LabelFile(str(out / f"{stem}.json"))
        assert len(label_file.shapes) == 6
        assert all(s["description"].startswith("pre-annotation from") for s in label_file.shapes)
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n" + "\n".join(CLASS_NAMES) + "\n")
    assert cli(["convert", out, voc, "--labels", labels, "--workers", "1", "--quiet"])[0] == 0
    for i, (h, w) in enumerate([(72, 96), (80, 72)]):
        got = np.asarray(Image.open(voc / "SegmentationClass" / f"bag{i}.png"))
        # the model's map is the painted one; --min-area 20 drops the fragment
        shares = _item_agreement(_expected(_scene(h, w, i), 20), got)
        assert len(shares) == 6 and min(shares) >= 0.98, shares


def test_image_path_points_at_the_scan_when_not_copied(model_file, scans, tmp_path, cli):
    from labelme import LabelFile

    out = tmp_path / "runs" / "pre"
    assert cli(["predict", model_file, scans / "bag1.png", "--out", out, "--labelme"])[0] == 0
    record = json.loads((out / "bag1.json").read_text())
    assert record["imagePath"] == "../../scans/bag1.png"
    assert (record["imageHeight"], record["imageWidth"]) == (80, 72)
    assert LabelFile(str(out / "bag1.json")).shapes
    assert sorted(p.name for p in out.iterdir()) == [".pre-annotation-sha256", ".xray-seg-output", "bag1.json"]


def test_uncopied_pre_annotations_convert_back_with_images(model_file, scans, tmp_path, cli, refused, snapshot):
    """Without --copy-images the JSON points at the scan outside OUT: convert reads it only with --images SCANS."""
    out, voc = tmp_path / "pre", tmp_path / "voc"
    assert cli(["predict", model_file, scans, "--out", out, "--labelme", "--min-area", "20"])[0] == 0
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n" + "\n".join(CLASS_NAMES) + "\n")
    rc, _ = cli(["convert", out, tmp_path / "voc0", "--labels", labels, "--workers", "1", "--quiet"])
    assert rc == 1 and not list((tmp_path / "voc0").glob("SegmentationClass/*.png"))  # every file refused
    snap = snapshot(scans)
    argv = ["convert", out, voc, "--labels", labels, "--images", scans, "--workers", "1", "--quiet"]
    assert cli(argv)[0] == 0
    for i, (h, w) in enumerate([(72, 96), (80, 72)]):
        got = np.asarray(Image.open(voc / "SegmentationClass" / f"bag{i}.png"))
        shares = _item_agreement(_expected(_scene(h, w, i), 20), got)
        assert len(shares) == 6 and min(shares) >= 0.98, shares
    snap.assert_unchanged()
    refused(["convert", out, scans / "voc", "--labels", labels, "--images", scans], "input", untouched=[scans])


def test_existing_annotations_are_skipped_and_never_touched_force_included(model_file, scans, tmp_path, cli, snapshot):
    (scans / "bag1.json").write_text('{"shapes": [], "note": "an annotator\'s work"}')
    snap = snapshot(scans)
    out = tmp_path / "pre"
    assert cli(["predict", model_file, scans, "--out", out, "--labelme"])[0] == 0
    assert (out / "bag0.json").is_file() and not (out / "bag1.json").exists()
    argv = ["predict", model_file, scans, "--out", out, "--labelme", "--include-annotated", "--force"]
    assert cli(argv)[0] == 0
    assert (out / "bag1.json").is_file() and json.loads((out / "bag1.json").read_text())["shapes"]
    snap.assert_unchanged()


def test_bad_input_is_one_line_and_writes_nothing(model_file, scans, tmp_path, refused):
    out = tmp_path / "pre"
    (scans / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    refused(["predict", model_file, scans, "--out", out, "--labelme"], "broken.png", untouched=[scans])
    assert not out.exists()
    (scans / "broken.png").unlink()
    refused(["predict", model_file, scans, "--out", scans / "pre", "--labelme"], "input", untouched=[scans])
    glob = str(scans / "*.png")  # OUT inside the scans' folder, named by a glob
    refused(["predict", model_file, glob, "--out", scans / "pre", "--labelme"], "input", untouched=[scans])
    nameless = _colour_model(tmp_path / "nameless", names=False)
    refused(["predict", nameless, scans, "--out", out, "--labelme"], "no class names", untouched=[scans])
    refused(["predict", model_file, scans, "--out", out, "--simplify", "1"], "--labelme", untouched=[scans])
    refused(["predict", model_file, scans, "--out", out, "--labelme", "--simplify", "nan"], "--simplify")
    assert not out.exists() and not (scans / "pre").exists()


def test_force_refuses_to_replace_corrections_made_in_out(model_file, scans, tmp_path, cli, refused):
    out = tmp_path / "pre"
    assert cli(["predict", model_file, scans, "--out", out, "--labelme", "--copy-images"])[0] == 0
    record = json.loads((out / "bag0.json").read_text())
    record["shapes"] = record["shapes"][1:]  # an annotator deleted a shape and saved
    (out / "bag0.json").write_text(json.dumps(record))
    argv = ["predict", model_file, scans, "--out", out, "--labelme", "--force"]
    refused(argv, "bag0.json", "corrected", absent=["bag1.json"], untouched=[out])
    (out / "bag0.json").unlink()
    (out / "extra.json").write_text("{}")  # a file an annotator added
    refused(argv, "extra.json", untouched=[out])
    (out / "extra.json").unlink()
    assert cli(argv)[0] == 0 and (out / "bag0.json").is_file()
