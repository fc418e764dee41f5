"""Hostile input to `xray-seg convert`, second round (issue 28): one reader, bounded shapes, no silent typos.

* Image files of every source go through :func:`xray_seg.core.images.read_image_bytes`:
  regular files only (a FIFO or ``/dev/zero`` is one line, no hang), header first, never
  more than the header implies (a 64x64 PNG with a sparse multi-GiB tail).
* Coordinates are bounded before rasterising: a point far outside the image fails its
  image with one line (COCO, Labelme, PIXray), with 1 or 2 workers; so does a COCO polygon
  whose boundary is too long for pycocotools.
* ``--classes`` names no annotation uses, a COCO category id under two names: refused
  (exit 2, one line); ``iscrowd`` is read by value.

A file that fails alone is convert's per-file failure (exit 1, one report line naming the
file with its fix, the other files converted); a whole-run refusal is exit 2 with one
``error:`` line and no output folder. Inputs stay byte-identical (``snapshot``).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xray_seg.conversion.pool import make_pool, map_items
from xray_seg.conversion.voc import load_label_png
from xray_seg.core.errors import XraySegError
from xray_seg.core.images import HEADER_BYTES, read_image_bytes

REPO = Path(__file__).resolve().parents[2]
SIZE = 64


def png(path: Path, size=SIZE, seed=0) -> bytes:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


def coco(folder: Path, segmentations, *, images=("a.png", "b.png"), categories=None, iscrowd=0) -> Path:
    """A COCO file in ``folder``: ``images`` (64x64, written unless they exist), the first one
    annotated with ``segmentations`` (category "knife"), the others with a small square."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"images": [], "annotations": [], "categories": categories or [{"id": 1, "name": "knife"}]}
    for i, name in enumerate(images, start=1):
        if not os.path.lexists(folder / name):
            png(folder / name, seed=i)
        doc["images"].append({"id": i, "file_name": name, "width": SIZE, "height": SIZE})
        segs = segmentations if i == 1 else [[[4, 4, 20, 4, 20, 20, 4, 20]]]
        for seg in segs:
            ann = {"id": len(doc["annotations"]) + 1, "image_id": i, "category_id": 1, "segmentation": seg}
            doc["annotations"].append({**ann, "iscrowd": iscrowd})
    path = folder / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def pixray(folder: Path, stem: str, polygon, label="knife") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(folder / f"{stem}.png"):
        png(folder / f"{stem}.png", seed=len(stem))
    path = folder / f"{stem}.json"
    path.write_text(json.dumps({"objects": [{"label": label, "polygon": polygon}]}))
    return path


def labelme(folder: Path, stem: str, points, label="knife", shape_type="polygon") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    png(folder / f"{stem}.png", seed=len(stem))
    doc = {"shapes": [{"label": label, "points": points, "shape_type": shape_type}], "imagePath": f"{stem}.png"}
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(doc))
    return path


def convert(src, out, *extra, source="labelme", workers=1, limit_gb=3):
    """``xray-seg convert`` in a subprocess under an address-space limit (old code ran out of
    memory on these inputs; the limit makes that a failure, not a machine-wide OOM)."""
    argv = [sys.executable, "-m", "xray_seg", "convert", src, out, "--from", source, "--workers", workers, "--quiet"]
    if "--classes" not in extra:
        argv += ["--classes", "knife"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_gb << 30, limit_gb << 30))

    run = subprocess.run(
        [str(a) for a in [*argv, *extra]], capture_output=True, text=True, env=env, timeout=240, preexec_fn=limit
    )
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    return run.returncode, run.stdout, [line for line in run.stderr.splitlines() if line.startswith("error: ")]


def failure_line(stdout: str, key: str) -> str:
    lines = [line for line in stdout.splitlines() if key in line and "Fix:" in line]
    assert len(lines) == 1, stdout
    return lines[0]


# ----------------------------------------------------------------------------- one image reader


@pytest.mark.parametrize("source", ["coco", "pixray"])
def test_fifo_and_device_images_are_refused_not_read(tmp_path, snapshot, source):
    src = tmp_path / "in"
    src.mkdir()
    os.mkfifo(src / "pipe.png")
    (src / "zero.png").symlink_to("/dev/zero")
    if source == "coco":
        target = coco(src, [[[4, 4, 20, 4, 20, 20]]], images=("ok.png", "pipe.png", "zero.png"))
        keys = (f"{target}[pipe.png]", f"{target}[zero.png]")
    else:
        target = src
        keys = tuple(str(pixray(src, stem, [[4, 4], [20, 4], [20, 20]])) for stem in ("pipe", "zero"))
        pixray(src, "ok", [[4, 4], [20, 4], [20, 20]])
    snap = snapshot(src)
    rc, out, errors = convert(target, tmp_path / "voc", source=source)  # old code: hangs on the FIFO
    assert rc == 1 and not errors
    assert "is a FIFO; only regular files are read" in failure_line(out, keys[0])
    assert "is a device; only regular files are read" in failure_line(out, keys[1])
    assert "converted 1, failed 2 of 3" in out
    snap.assert_unchanged()


def test_png_with_a_sparse_tail_is_read_only_to_iend(tmp_path):
    path = tmp_path / "tail.png"
    data = png(path)
    with open(path, "r+b") as f:
        f.truncate(6 << 30)  # 6 GiB, sparse: costs no disk
    assert read_image_bytes(path) == data


def test_jpeg_with_a_sparse_tail_is_read_only_as_far_as_its_header_implies(tmp_path):
    path = tmp_path / "tail.jpg"
    Image.fromarray(np.full((SIZE, SIZE, 3), 90, np.uint8)).save(path, format="JPEG")
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(6 << 30)
    data = read_image_bytes(path)
    assert size < len(data) <= 2 * SIZE * SIZE * 3 + 2 * SIZE + HEADER_BYTES


@pytest.mark.parametrize("source", ["coco", "pixray"])
def test_copied_image_with_a_sparse_tail_is_the_image_alone(tmp_path, snapshot, source):
    src = tmp_path / "in"
    if source == "coco":
        target = coco(src, [[[4, 4, 20, 4, 20, 20]]], images=("a.png",))
    else:
        target = src
        pixray(src, "a", [[4, 4], [20, 4], [20, 20]])
    data = (src / "a.png").read_bytes()
    with open(src / "a.png", "r+b") as f:
        f.truncate(1 << 30)  # 1 GiB sparse tail: the old reader read it whole (and copied it)
    snap = snapshot(src)
    rc, out, _ = convert(target, tmp_path / "voc", "--image-format", "copy", source=source)
    assert rc == 0, out
    assert (tmp_path / "voc" / "JPEGImages" / "a.png").read_bytes() == data
    snap.assert_unchanged()


# ----------------------------------------------------------------------------- bounded shapes


@pytest.mark.parametrize("workers", [1, 2])
def test_coco_coordinate_far_outside_fails_its_image_without_allocating(tmp_path, snapshot, workers):
    target = coco(tmp_path / "in", [[[4, 4, 4e8, 10, 10, 30]]])  # a 420-byte file; old code: OOM at 24 GB
    snap = snapshot(tmp_path / "in")
    rc, out, errors = convert(target, tmp_path / "voc", source="coco", workers=workers)
    line = failure_line(out, f"{target}[a.png]")
    assert rc == 1 and not errors and "(4e+08, 10)" in line and "outside the 64x64 image" in line
    assert "correct or remove the annotation" in line
    assert load_label_png(tmp_path / "voc" / "SegmentationClass" / "b.png").any()  # the good image converted
    assert not (tmp_path / "voc" / "SegmentationClass" / "a.png").exists()
    snap.assert_unchanged()


def test_coco_polygon_boundary_too_long_to_rasterise_fails_its_image(tmp_path, snapshot):
    zigzag = [v for i in range(600) for v in ((-1000.0, i / 10) if i % 2 else (1080.0, i / 10))]
    target = coco(tmp_path / "in", [[zigzag]])
    snap = snapshot(tmp_path / "in")
    rc, out, _ = convert(target, tmp_path / "voc", source="coco")
    line = failure_line(out, f"{target}[a.png]")
    assert rc == 1 and "the polygon boundary is" in line and "px long" in line
    snap.assert_unchanged()


@pytest.mark.parametrize(
    "source, point",
    [("labelme", [4e9, 10]), ("labelme", [-3e8, 5]), ("pixray", [4e8, 10])],
)
def test_labelme_and_pixray_coordinate_far_outside_fails_its_image(tmp_path, snapshot, source, point):
    src = tmp_path / "in"
    make = labelme if source == "labelme" else pixray
    bad = make(src, "bad", [[4, 4], point, [10, 30]])
    make(src, "good", [[4, 4], [20, 4], [20, 20]])
    snap = snapshot(src)
    rc, out, _ = convert(src, tmp_path / "voc", source=source)
    line = failure_line(out, str(bad))
    assert rc == 1 and "outside the 64x64 image; the coordinates are corrupt" in line
    assert (tmp_path / "voc" / "SegmentationClass" / "good.png").is_file()
    snap.assert_unchanged()


def test_points_just_outside_still_clip_like_labelme(tmp_path):
    src = tmp_path / "in"
    labelme(src, "edge", [[-40, -40], [100, 4], [30, 100]])
    rc, out, _ = convert(src, tmp_path / "voc")
    assert rc == 0 and "lie outside the 64x64 image; the shape is clipped" in out


def test_a_dead_worker_names_the_files_and_the_way_to_find_the_culprit():
    pool = make_pool(2)
    try:
        with pytest.raises(XraySegError) as caught:
            list(map_items(pool, signal.raise_signal, [signal.SIGKILL] * 3, "convert", False))
    finally:
        pool.shutdown(wait=True)
    message = caught.value.message
    assert "a worker process died" in message and "one of: " in message and "--workers 1" in message


# ----------------------------------------------------------------------------- silent wrong answers


@pytest.mark.parametrize("source", ["labelme", "pixray"])
def test_class_typo_is_refused_with_a_suggestion(tmp_path, snapshot, source):
    src = tmp_path / "in"
    make = labelme if source == "labelme" else pixray
    make(src, "a", [[4, 4], [20, 4], [20, 20]], label="knife")
    make(src, "b", [[4, 4], [20, 4], [20, 20]], label="gun")
    snap = snapshot(src)
    rc, _, errors = convert(src, tmp_path / "voc", "--classes", "gun,knfie", source=source)
    assert rc == 2 and len(errors) == 1
    assert "knfie not among the labels used in the annotations (gun, knife)" in errors[0]
    assert "'knfie': did you mean 'knife'?" in errors[0] and "Fix:" in errors[0] and str(src) in errors[0]
    assert not (tmp_path / "voc").exists()
    snap.assert_unchanged()


def test_coco_category_id_under_two_names_is_refused(tmp_path, snapshot):
    categories = [{"id": 1, "name": "knife"}, {"id": 1, "name": "gun"}]
    target = coco(tmp_path / "in", [[[4, 4, 20, 4, 20, 20]]], categories=categories)
    snap = snapshot(tmp_path / "in")
    rc, _, errors = convert(target, tmp_path / "voc", source="coco")
    assert rc == 2 and len(errors) == 1 and str(target) in errors[0]
    assert "category id 1 is listed twice, as 'knife' and as 'gun'" in errors[0] and "Fix:" in errors[0]
    assert not (tmp_path / "voc").exists()
    snap.assert_unchanged()


@pytest.mark.parametrize("flag, drawn", [("0", 1), (" 1", 255), (0.0, 1), (True, 255)])
def test_coco_iscrowd_is_read_by_value(tmp_path, flag, drawn):
    target = coco(tmp_path / "in", [[[4, 4, 20, 4, 20, 20, 4, 20]]], images=("a.png",), iscrowd=flag)
    rc, out, _ = convert(target, tmp_path / "voc", source="coco")
    assert rc == 0, out
    assert load_label_png(tmp_path / "voc" / "SegmentationClass" / "a.png")[10, 10] == drawn


@pytest.mark.parametrize("flag", ["yes", 2, [0]])
def test_coco_iscrowd_that_is_not_0_or_1_fails_its_image(tmp_path, snapshot, flag):
    target = coco(tmp_path / "in", [[[4, 4, 20, 4, 20, 20]]], iscrowd=flag)
    snap = snapshot(tmp_path / "in")
    rc, out, _ = convert(target, tmp_path / "voc", source="coco")
    assert rc == 1 and "not 0 or 1" in failure_line(out, f"{target}[a.png]")
    snap.assert_unchanged()
