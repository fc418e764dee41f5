"""Labelme image flags -> ``subsets.json`` in the VOC folder (conversion/convert.py, "Subsets")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from _helpers import write_labels
from PIL import Image

from xray_seg.conversion.convert import ConvertConfig, convert
from xray_seg.conversion.voc import read_split, read_subsets
from xray_seg.core.errors import DatasetError
from xray_seg.core.layouts import VocLayout


def add_item(folder: Path, stem: str, flags) -> Path:
    """``stem.json`` with one knife rectangle, ``flags`` as the image flags (None: no field), and its PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 20, 3), 200, np.uint8)).save(folder / f"{stem}.png")
    data = {
        "version": "5.4.1",
        "shapes": [{"label": "knife", "points": [[2, 2], [9, 8]], "shape_type": "rectangle", "flags": {}}],
        "imagePath": f"{stem}.png",
        "imageData": None,
        "imageHeight": 16,
        "imageWidth": 20,
    }
    if flags is not None:
        data["flags"] = flags
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def labels(tmp_path) -> Path:
    return write_labels(tmp_path, "knife")


def run(src, out, labels, **kw):
    return convert(src, out, ConvertConfig(labels=str(labels), workers=1, **kw), progress=False)


def test_synth_flags_become_subsets(tmp_path):
    from xray_seg.synthesis.scene import SynthConfig, synthesize

    paths = synthesize(tmp_path / "lm", SynthConfig(size=64, num=10, seed=7, workers=1), progress=False)
    report = run(tmp_path / "lm", tmp_path / "voc", tmp_path / "lm" / "labels.txt")
    subsets = read_subsets(tmp_path / "voc")
    assert set(subsets) == {"hidden", "small", "clean"}
    for path in paths:
        record = json.loads(path.read_text())
        for name, value in record["flags"].items():
            assert (path.stem in subsets[name]) == value
    clean = set(subsets["clean"])
    assert clean and clean.isdisjoint(subsets["hidden"]) and clean.isdisjoint(subsets["small"])
    assert clean <= set(read_split(tmp_path / "voc", "trainval"))
    assert report.subsets == {name: len(stems) for name, stems in subsets.items()}
    assert "subsets (image flags): clean" in report.summary()


def test_any_flag_a_user_ticks_is_a_subset(tmp_path, labels):
    src = tmp_path / "in"
    add_item(src, "a", {"occluded": True, "train": True, "night shift/2": False})
    add_item(src, "b", {"occluded": False, "train": True, "night shift/2": False, "note": "not a bool"})
    add_item(src, "c", {})
    add_item(src, "d", None)  # older JSON without the field
    add_item(src, "e", ["not", "a", "mapping"])
    report = run(src, tmp_path / "voc", labels)
    assert report.failed == 0 and report.converted == 5
    assert read_subsets(tmp_path / "voc") == {"night shift/2": [], "occluded": ["a"], "train": ["a", "b"]}
    assert read_split(tmp_path / "voc", "trainval") == ["a", "b", "c", "d", "e"]  # the split files are untouched


def test_no_flags_no_subsets_file(tmp_path, labels):
    src = tmp_path / "in"
    for stem in "abc":
        add_item(src, stem, {})
    run(src, tmp_path / "voc", labels)
    assert not VocLayout(tmp_path / "voc").subsets_file.exists()
    assert read_subsets(tmp_path / "voc") == {}


def test_resume_rebuilds_subsets_from_the_current_flags(tmp_path, labels):
    src = tmp_path / "in"
    for stem, hidden in (("a", True), ("b", False), ("c", False)):
        add_item(src, stem, {"hidden": hidden})
    out = tmp_path / "voc"
    run(src, out, labels)
    assert read_subsets(out) == {"hidden": ["a"]}
    mask_mtime = VocLayout(out).mask_path("a").stat().st_mtime_ns

    report = run(src, out, labels, resume=True)  # nothing changed: nothing reconverted, same subsets
    assert report.converted == 0 and report.skipped == 3 and read_subsets(out) == {"hidden": ["a"]}
    assert VocLayout(out).mask_path("a").stat().st_mtime_ns == mask_mtime

    edited = add_item(src, "b", {"hidden": True})  # an annotator ticks "hidden" on b
    os.utime(edited, ns=(edited.stat().st_atime_ns, edited.stat().st_mtime_ns + 10**9))
    add_item(src, "d", {"hidden": False, "small": True})  # and a new bag arrives
    report = run(src, out, labels, resume=True)
    assert report.converted == 2 and report.skipped == 2
    assert read_subsets(out) == {"hidden": ["a", "b"], "small": ["d"]}


def test_resume_after_flags_are_removed_empties_the_subsets(tmp_path, labels):
    src = tmp_path / "in"
    add_item(src, "a", {"hidden": True})
    add_item(src, "b", {})
    out = tmp_path / "voc"
    run(src, out, labels)
    add_item(src, "a", {})
    os.utime(src / "a.json", ns=(0, (src / "a.json").stat().st_mtime_ns + 10**9))
    run(src, out, labels, resume=True)
    assert read_subsets(out) == {}


def test_a_broken_subsets_file_is_one_error_naming_it(tmp_path, labels):
    src = tmp_path / "in"
    add_item(src, "a", {"hidden": True})
    add_item(src, "b", {})
    run(src, tmp_path / "voc", labels)
    VocLayout(tmp_path / "voc").subsets_file.write_text("{not json")
    with pytest.raises(DatasetError, match="subsets.json") as info:
        read_subsets(tmp_path / "voc")
    assert "--resume" in info.value.fix
