"""`xray-seg convert --from coco` (xray_seg.conversion.coco): segmentations, failures, subsets, streaming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _helpers import write_labels
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from xray_seg.cli import main
from xray_seg.conversion import coco as coco_module
from xray_seg.conversion.coco import CocoReader, iter_top_level, rle_string_counts, segmentation_mask
from xray_seg.conversion.convert import ConvertConfig, convert
from xray_seg.conversion.labelme import shapes_to_label
from xray_seg.conversion.voc import load_label_png, read_class_names, read_split
from xray_seg.core.errors import ConfigError, DatasetError, OutputExistsError

H, W = 40, 48
# PIDray's 12 categories in id order
PIDRAY = "Baton Pliers Hammer Powerbank Scissors Wrench Gun Bullet Sprayer HandCuffs Knife Lighter".split()  # noqa: SIM905


def box(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def rle_of(mask: np.ndarray, compressed=True) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
    flat = mask.astype(np.uint8).flatten(order="F")
    runs, value, count = [], 0, 0
    for v in flat:
        if v == value:
            count += 1
        else:
            runs.append(count)
            value, count = v, 1
    runs.append(count)
    return {"size": [mask.shape[0], mask.shape[1]], "counts": runs}


class Coco:
    """A small COCO file written in the test: the JSON and its images in one folder."""

    def __init__(self, root: Path, categories=("knife", "gun", "wrench", "pliers", "scissors")):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.data = {
            "info": {"description": "test"},
            "images": [],
            "annotations": [],
            "categories": [{"id": i + 1, "name": n, "supercategory": "x"} for i, n in enumerate(categories)],
        }

    def cat(self, name):
        return next(c["id"] for c in self.data["categories"] if c["name"] == name)

    def image(self, name, h=H, w=W, write=True, **extra):
        image_id = len(self.data["images"]) + 1
        if write:
            pixels = np.random.default_rng(image_id).integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(self.root / name)
        self.data["images"].append({"id": image_id, "file_name": name, "height": h, "width": w, **extra})
        return image_id

    def ann(self, image_id, name, segmentation, iscrowd=0, category_id=None):
        self.data["annotations"].append(
            {
                "id": len(self.data["annotations"]) + 1,
                "image_id": image_id,
                "category_id": self.cat(name) if category_id is None else category_id,
                "segmentation": segmentation,
                "iscrowd": iscrowd,
                "area": 0,
                "bbox": [0, 0, 0, 0],
            }
        )

    def write(self, indent=None) -> Path:
        path = self.root / "instances.json"
        path.write_text(json.dumps(self.data, indent=indent, ensure_ascii=False), encoding="utf-8")
        return path


@pytest.fixture
def labels(tmp_path) -> Path:
    return write_labels(tmp_path, "knife", "gun", "wrench", "pliers", "scissors")


def cfg(labels: Path | None = None, **kw) -> ConvertConfig:
    kw.setdefault("workers", 1)
    kw.setdefault("source", "coco")
    return ConvertConfig(labels=str(labels), **kw) if labels else ConvertConfig(**kw)


def test_polygons_rle_crowd_and_multipart(tmp_path, labels):
    c = Coco(tmp_path / "in")
    i = c.image("scan_a.png")
    c.ann(i, "gun", box(10, 10, 14, 14))  # small item listed before the large one it lies on
    c.ann(i, "knife", box(2, 2, 30, 30))
    wrench = np.zeros((H, W), bool)
    wrench[32:38, 2:20] = True
    c.ann(i, "wrench", rle_of(wrench, compressed=False))
    pliers = np.zeros((H, W), bool)
    pliers[32:38, 30:46] = True
    c.ann(i, "pliers", rle_of(pliers))
    c.ann(i, "scissors", box(34, 2, 38, 6) + box(40, 2, 44, 6))  # one object in two parts
    c.ann(i, "knife", box(34, 14, 44, 24), iscrowd=1)
    out = tmp_path / "voc"
    report = convert(c.write(), out, cfg(labels))
    assert (report.converted, report.failed) == (1, 0), report.summary()
    cls = load_label_png(out / "SegmentationClass" / "scan_a.png")
    obj = load_label_png(out / "SegmentationObject" / "scan_a.png")
    assert cls[12, 12] == 2 and cls[5, 5] == 1  # larger areas drawn first: the gun stays visible
    assert cls[35, 10] == 3 and cls[35, 40] == 4 and cls[4, 36] == 5 and cls[4, 42] == 5
    assert cls[20, 40] == 255 and obj[20, 40] == 255  # crowd: ignore in both maps
    assert cls[0, 0] == 0 and obj[0, 0] == 0
    assert obj[4, 36] == obj[4, 42] != 0  # the two parts are one instance
    ids = {int(obj[y, x]) for y, x in [(12, 12), (5, 5), (35, 10), (35, 40), (4, 36)]}
    assert ids == {1, 2, 3, 4, 5}
    assert np.array_equal(cls[32:38, 2:20], np.full((6, 18), 3))  # the RLE mask exactly
    assert read_class_names(out) == ["_background_", "knife", "gun", "wrench", "pliers", "scissors"]


def test_bad_items_fail_one_by_one_with_reasons(tmp_path, labels):
    c = Coco(tmp_path / "in")
    good = c.image("good.png")
    c.ann(good, "knife", box(2, 2, 20, 20))
    missing = c.image("missing.png", write=False)
    c.ann(missing, "knife", box(2, 2, 20, 20))
    bad_rle = c.image("bad_rle.png")
    c.ann(bad_rle, "gun", {"size": [H, W], "counts": [5, 10, 3]})
    bad_string = c.image("bad_string.png")
    c.ann(bad_string, "gun", {"size": [H, W], "counts": "0?1~~~~"})
    bad_size = c.image("bad_size.png")
    c.ann(bad_size, "gun", {"size": [H + 1, W], "counts": [H * W]})
    bad_category = c.image("bad_category.png")
    c.ann(bad_category, "gun", box(1, 1, 5, 5), category_id=99)
    box_only = c.image("box_only.png")
    c.ann(box_only, "gun", [])
    escaping = c.image("../escape.png", write=False)
    c.ann(escaping, "gun", box(1, 1, 5, 5))
    report = convert(c.write(), tmp_path / "voc", cfg(labels))
    reasons = {Path(f.path.split("[", 1)[1].rstrip("]")).stem: f.reason for f in report.failures}
    assert report.converted == 1 and report.exit_code == 1
    expected = {
        "missing": ["image not found"],
        "bad_rle": ["covers 18 pixels"],
        "bad_string": ["not COCO RLE", "covers"],  # either reason
        "bad_size": ["RLE size"],
        "bad_category": ["category_id 99"],
        "box_only": ["no segmentation"],
        "escape": ["outside the images folder"],
    }
    for stem, texts in expected.items():
        assert any(text in reasons[stem] for text in texts), (stem, reasons[stem])
    assert read_split(tmp_path / "voc", "trainval") == ["good"]
    summary = report.summary()
    assert "failed 7" in summary and "bad_rle.png" in summary


def test_unknown_categories(tmp_path, labels):
    c = Coco(tmp_path / "in", categories=("knife", "gun", "Lighter"))
    i = c.image("a.png")
    c.ann(i, "knife", box(2, 2, 20, 20))
    c.ann(i, "Lighter", box(22, 2, 30, 10))
    path = c.write()
    with pytest.raises(DatasetError, match="'Lighter' in .*a.png"):
        convert(path, tmp_path / "voc", cfg(labels))
    assert not (tmp_path / "voc").exists()
    report = convert(path, tmp_path / "skip", cfg(labels, unknown="skip"))
    assert report.converted == 1 and "skipped" in report.warnings[0].message
    assert load_label_png(tmp_path / "skip" / "SegmentationClass" / "a.png")[5, 25] == 0


def test_ignore_category_maps_to_255(tmp_path, labels):
    c = Coco(tmp_path / "in", categories=("knife", "__ignore__"))
    i = c.image("a.png")
    c.ann(i, "__ignore__", box(0, 0, 40, 30))
    c.ann(i, "knife", box(2, 2, 10, 10))
    convert(c.write(), tmp_path / "voc", cfg(labels))
    cls = load_label_png(tmp_path / "voc" / "SegmentationClass" / "a.png")
    obj = load_label_png(tmp_path / "voc" / "SegmentationObject" / "a.png")
    assert cls[20, 20] == 255 and cls[5, 5] == 1 and obj[5, 5] == 1 and obj[20, 20] == 255


@pytest.mark.parametrize("others, expected", [("background", 0), ("ignore", 255)])
def test_class_subset_of_pidray(tmp_path, others, expected):
    c = Coco(tmp_path / "in", categories=PIDRAY)
    i = c.image("a.png")
    c.ann(i, "Baton", box(0, 0, 40, 30))
    c.ann(i, "Gun", box(2, 2, 10, 10))
    c.ann(i, "Knife", box(30, 2, 40, 10))
    out = tmp_path / "voc"
    report = convert(c.write(), out, cfg(classes=["gun", "Knife"], others=others))  # case is ignored
    assert report.converted == 1 and report.warnings == []
    assert read_class_names(out) == ["_background_", "gun", "Knife"]
    cls = load_label_png(out / "SegmentationClass" / "a.png")
    obj = load_label_png(out / "SegmentationObject" / "a.png")
    assert (cls[5, 5], cls[5, 35], cls[20, 20]) == (1, 2, expected)
    assert (obj[20, 20], sorted({int(obj[5, 5]), int(obj[5, 35])})) == (expected, [1, 2])


def test_class_subset_typo_is_refused(tmp_path):
    c = Coco(tmp_path / "in", categories=PIDRAY)
    c.ann(c.image("a.png"), "Gun", box(2, 2, 10, 10))
    with pytest.raises(ConfigError, match="gunn not among the categories"):
        convert(c.write(), tmp_path / "voc", cfg(classes=["gunn"]))
    with pytest.raises(ConfigError, match="given twice"):
        convert(c.write(), tmp_path / "voc", cfg(classes=["gun", "Gun"]))


def test_parallel_resume_and_refusal(tmp_path, labels):
    c = Coco(tmp_path / "in")
    for n in range(5):
        c.ann(c.image(f"s{n}.png"), "knife", box(1 + n, 1, 20, 20 + n))
    path = c.write()
    serial = convert(path, tmp_path / "one", cfg(labels))
    parallel = convert(path, tmp_path / "two", cfg(labels, workers=2))
    assert serial.converted == parallel.converted == 5 and parallel.workers == 2
    for sub in ("SegmentationClass", "SegmentationObject", "JPEGImages"):
        for f in (tmp_path / "one" / sub).iterdir():
            assert f.read_bytes() == (tmp_path / "two" / sub / f.name).read_bytes()
    with pytest.raises(OutputExistsError):
        convert(path, tmp_path / "one", cfg(labels))
    (tmp_path / "one" / "SegmentationObject" / "s3.png").unlink()
    resumed = convert(path, tmp_path / "one", cfg(labels, resume=True))
    assert (resumed.converted, resumed.skipped) == (1, 4)
    assert (tmp_path / "one" / "SegmentationObject" / "s3.png").is_file()


def test_json_inside_output_is_refused(tmp_path, labels):
    c = Coco(tmp_path / "voc")
    c.ann(c.image("a.png"), "knife", box(1, 1, 9, 9))
    with pytest.raises(ConfigError, match="contains the input"):
        convert(c.write(), tmp_path / "voc", cfg(labels, force=True))


def test_images_folder_option(tmp_path, labels):
    c = Coco(tmp_path / "in")
    c.ann(c.image("a.png"), "knife", box(1, 1, 9, 9))
    path = c.write()
    moved = tmp_path / "annotations" / "instances.json"
    moved.parent.mkdir()
    path.rename(moved)
    assert convert(moved, tmp_path / "voc", cfg(labels, images=str(tmp_path / "in"))).converted == 1


# --------------------------------------------------------------------- streaming


def test_streaming_index_matches_json_load(tmp_path, monkeypatch):
    monkeypatch.setattr(coco_module, "CHUNK", 37)  # every value straddles chunk boundaries
    c = Coco(tmp_path / "in", categories=("knife", "gün"))
    names = ["ä 1.png", "b.png", "c.png"]
    for n, name in enumerate(names):
        i = c.image(name)
        for k in range(n + 1):
            c.ann(i, "gün" if k % 2 else "knife", box(k, k, 20 + k, 20), iscrowd=int(k == 2))
    c.data["annotations"].append({"id": 99, "image_id": 42, "category_id": 1, "segmentation": box(1, 1, 5, 5)})
    path = c.write(indent=2)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a BOM, as some Windows tools write
    reader = CocoReader(path)
    items = reader.items()
    assert [it.ref.file_name for it in items] == sorted(names)
    by_name = {it.ref.file_name: it for it in items}
    for n, name in enumerate(names):
        anns = reader._annotations(by_name[name])
        assert anns == [a for a in c.data["annotations"] if a["image_id"] == n + 1]
    assert by_name["c.png"].ref.labels == ("gün", "knife")  # the crowd annotation is not a label
    assert reader.categories == {1: "knife", 2: "gün"}
    assert "1 image id(s) not in 'images'" in reader.input_warnings()[0][1]


def test_corrupt_json_is_a_whole_run_error(tmp_path, labels):
    path = tmp_path / "instances.json"
    path.write_text('{"images": [{"id": 1, "file_name": "a.png"}, {"id": 2,, }], "categories": []}')
    with pytest.raises(DatasetError, match="corrupt JSON at byte"):
        convert(path, tmp_path / "voc", cfg(labels))
    path.write_text('{"annotations": []}')
    with pytest.raises(DatasetError, match="not a COCO instance file"):
        convert(path, tmp_path / "voc", cfg(labels))


def test_top_level_values_and_numbers_at_chunk_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(coco_module, "CHUNK", 5)
    path = tmp_path / "x.json"
    doc = {"a": 1234567, "images": [], "annotations": [{"x": 1}, {"y": [2, 3]}], "b": "long string here"}
    path.write_text(json.dumps(doc))
    got = [(k, v) for k, v, *_ in iter_top_level(path)]
    assert got == [("a", 1234567), ("annotations", {"x": 1}), ("annotations", {"y": [2, 3]}), ("b", "long string here")]


# ----------------------------------------------------------------- pycocotools


def test_rle_string_counts_matches_pycocotools():
    mask = np.zeros((30, 50), np.uint8)
    mask[3:20, 5:40] = 1
    mask[10:12, :] = 0
    rle = mask_utils.encode(np.asfortranarray(mask))
    runs = rle_string_counts(rle["counts"].decode())
    assert sum(runs) == 30 * 50
    rebuilt = np.repeat(np.arange(len(runs)) % 2, runs).reshape((50, 30)).T
    assert np.array_equal(rebuilt, mask)


def _coco_ann_to_mask(segmentation, h, w) -> np.ndarray:
    from pycocotools.coco import COCO

    api = COCO()
    api.dataset = {
        "images": [{"id": 1, "height": h, "width": w, "file_name": "x.png"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": segmentation,
                "iscrowd": 0,
                "area": 1.0,
                "bbox": [0, 0, 1, 1],
            }
        ],
        "categories": [{"id": 1, "name": "knife"}],
    }
    api.createIndex()
    return api.annToMask(api.anns[1]).astype(bool)


coord = st.floats(-5.0, 60.0, allow_nan=False, width=32)
polygon = st.lists(st.tuples(coord, coord), min_size=3, max_size=9).map(lambda pts: [v for p in pts for v in p])


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(polygon, min_size=1, max_size=3), h=st.integers(8, 40), w=st.integers(8, 56))
def test_polygon_masks_equal_pycocotools_ann_to_mask(parts, h, w):
    expected = _coco_ann_to_mask(parts, h, w)
    mask, _ = segmentation_mask(parts, h, w)
    assert np.array_equal(mask, expected)
    # ... and after the round trip through a mask shape and the class-map rasteriser.
    shape = coco_module.mask_shape("knife", mask, 0)
    drawn = shapes_to_label([] if shape is None else [shape], (h, w), {"knife": 1}) == 1
    assert np.array_equal(drawn, expected)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), h=st.integers(4, 30), w=st.integers(4, 30))
def test_rle_masks_equal_pycocotools(seed, h, w):
    mask = np.random.default_rng(seed).random((h, w)) < 0.4
    for compressed in (True, False):
        rle = rle_of(mask, compressed)
        assert np.array_equal(segmentation_mask(rle, h, w)[0], _coco_ann_to_mask(rle, h, w))


# ------------------------------------------------------------------------- CLI


def test_cli_from_coco(tmp_path, capsys):
    c = Coco(tmp_path / "in", categories=PIDRAY)
    c.ann(c.image("a.png"), "Gun", box(2, 2, 10, 10))
    c.ann(c.image("b.png", write=False), "Gun", box(2, 2, 10, 10))
    code = main(
        [
            "convert",
            "--from",
            "coco",
            str(c.write()),
            str(tmp_path / "voc"),
            "--classes",
            "Gun,Knife",
            "--workers",
            "1",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1 and "converted 1, failed 1" in out and "b.png" in out
    assert main(["convert", "--from", "coco", str(c.write()), str(tmp_path / "v2"), "--workers", "1"]) == 2
    assert "exactly one" in capsys.readouterr().err
