"""`xray-seg convert` (xray_seg.conversion.convert): conformance, bad input, safety, CLI."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from _helpers import png_bytes, rect
from PIL import Image

from xray_seg.cli import main
from xray_seg.conversion import job as job_module
from xray_seg.conversion.convert import ConvertConfig, convert
from xray_seg.conversion.pool import resolve_workers
from xray_seg.conversion.splits import split_stems
from xray_seg.conversion.voc import load_label_png, read_class_names, read_split
from xray_seg.core.errors import ConfigError, DatasetError, OutputExistsError
from xray_seg.core.viz import voc_palette

H, W = 24, 32


def add_item(
    folder: Path,
    stem: str,
    shapes=None,
    *,
    image: np.ndarray | None = None,
    image_name=None,
    declared=None,
    embed=False,
) -> Path:
    """Write ``stem.json`` and (unless embedded) its image into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(len(stem)).integers(0, 256, (H, W, 3), dtype=np.uint8) if image is None else image
    data_bytes = png_bytes(image)
    image_name = image_name or f"{stem}.png"
    if not embed and not (folder / image_name).exists() and image_name.endswith(".png") and "/" not in image_name:
        (folder / image_name).write_bytes(data_bytes)
    h, w = image.shape[:2]
    dh, dw = declared or (h, w)
    data = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [rect()] if shapes is None else shapes,
        "imagePath": image_name,
        "imageData": base64.b64encode(data_bytes).decode() if embed else None,
        "imageHeight": dh,
        "imageWidth": dw,
    }
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(data))
    return path


def cfg(labels: Path, **kw) -> ConvertConfig:
    kw.setdefault("workers", 1)
    return ConvertConfig(labels=str(labels), **kw)


def good_folder(tmp_path: Path, n=4) -> Path:
    src = tmp_path / "in"
    for i in range(n):
        add_item(src, f"img{i}", [rect(), rect("gun", ((14, 4), (20, 20)))])
    return src


def snapshot(folder: Path) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


# ----------------------------------------------------------------- conformance


def test_conformance_with_labelme2voc(shared_dir, tmp_path):
    """labelme's example converts to its data_dataset_voc: PNG indices + palette, npy arrays."""
    root = shared_dir / "conformance" / "labelme_voc_example"
    if not root.is_dir():
        pytest.skip("conformance data missing")
    out = tmp_path / "voc"
    report = convert(root / "data_annotated", out, ConvertConfig(labels=str(root / "labels.txt"), npy=True, workers=2))
    assert report.converted == 3 and report.failed == 0 and report.exit_code == 0
    ref = root / "data_dataset_voc"
    assert read_class_names(out) == read_class_names(ref)
    for ref_png in sorted((ref / "SegmentationClass").glob("*.png")):
        stem = ref_png.stem
        allowed = [[290, 104]] if stem == "2011_000006" else []
        with Image.open(ref_png) as expected, Image.open(out / "SegmentationClass" / f"{stem}.png") as ours:
            assert ours.mode == expected.mode == "P"
            assert ours.getpalette() == expected.getpalette()
            diff = np.argwhere(np.asarray(ours) != np.asarray(expected)).tolist()
        assert diff in ([], allowed), (stem, diff[:10])
        npy = np.load(out / "SegmentationClassNpy" / f"{stem}.npy")
        expected_npy = np.load(ref / "SegmentationClassNpy" / f"{stem}.npy")
        assert npy.dtype == expected_npy.dtype == np.int32
        assert np.argwhere(npy != expected_npy).tolist() in ([], allowed)
        assert (out / "JPEGImages" / f"{stem}.png").is_file()


# ---------------------------------------------------------------- normal runs


def test_layout_split_and_config(tmp_path, labels):
    src = good_folder(tmp_path, n=10)
    out = tmp_path / "voc"
    report = convert(src, out, cfg(labels, npy=True, vis=True, seed=3))
    assert (report.converted, report.failed, report.train, report.val) == (10, 0, 7, 3)
    assert read_class_names(out) == ["_background_", "knife", "gun"]
    train, val, trainval = (read_split(out, s) for s in ("train", "val", "trainval"))
    assert sorted(train + val) == trainval and not set(train) & set(val)
    assert (train, val) == split_stems(trainval, 0.3, 3)
    for stem in trainval:
        for sub, suffix in [
            ("JPEGImages", ".png"),
            ("SegmentationClass", ".png"),
            ("SegmentationClassNpy", ".npy"),
            ("SegmentationClassVisualization", ".jpg"),
        ]:
            assert (out / sub / f"{stem}{suffix}").is_file()
    mask = load_label_png(out / "SegmentationClass" / "img0.png")
    assert mask[5, 5] == 1 and mask[10, 16] == 2 and mask[0, 0] == 0
    with Image.open(out / "SegmentationClass" / "img0.png") as img:
        assert img.getpalette() == voc_palette().flatten().tolist()
    settings = yaml.safe_load((out / "convert_config.yaml").read_text())
    assert settings["image_format"] == "png" and settings["seed"] == 3 and settings["class_names"][1] == "knife"
    assert settings["labels"] == str(labels.resolve()) and settings["workers"] == 1
    assert temp_files(out) == []


def test_split_is_seeded_and_seven_to_three():
    stems = [f"s{i:02d}" for i in range(20)]
    train, val = split_stems(stems, 0.3, seed=0)
    assert len(val) == 6 and len(train) == 14
    assert split_stems(reversed(stems), 0.3, 0) == (train, val)
    assert split_stems(stems, 0.3, seed=1) != (train, val)
    assert split_stems(["a", "b"], 0.3, 0)[1] != []  # at least one val image


def test_parallel_equals_serial(tmp_path, labels):
    src = good_folder(tmp_path, n=5)
    convert(src, tmp_path / "one", cfg(labels, workers=1))
    report = convert(src, tmp_path / "two", cfg(labels, workers=2))
    assert report.workers == 2 and report.converted == 5
    for p in sorted((tmp_path / "one").rglob("*.png")):
        assert p.read_bytes() == (tmp_path / "two" / p.relative_to(tmp_path / "one")).read_bytes()


def test_image_formats(tmp_path, labels):
    src = tmp_path / "in"
    rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    add_item(src, "plain", image=rgb)
    rgba = np.dstack([rgb, np.full((H, W), 100, np.uint8)])
    add_item(src, "alpha", image=rgba)
    png = convert(src, tmp_path / "png", cfg(labels))
    assert png.failed == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "png/JPEGImages/plain.png")), rgb)  # lossless
    jpeg = convert(src, tmp_path / "jpeg", cfg(labels, image_format="jpeg"))
    assert jpeg.failed == 0 and (tmp_path / "jpeg/JPEGImages/plain.jpg").is_file()
    with Image.open(tmp_path / "jpeg/JPEGImages/plain.jpg") as img:
        assert img.format == "JPEG"
    copy = convert(src, tmp_path / "copy", cfg(labels, image_format="copy"))
    assert (tmp_path / "copy/JPEGImages/plain.png").read_bytes() == (src / "plain.png").read_bytes()
    assert [w.message for w in copy.warnings if "alpha.json" in w.path] == [
        "image not copied (the image mode RGBA (not 8-bit RGB or grey) decodes differently in the pipeline); wrote a lossless PNG instead"
    ]
    assert np.asarray(Image.open(tmp_path / "copy/JPEGImages/alpha.png")).shape == (H, W, 3)


def test_sixteen_bit_rgba_and_grayscale_inputs(tmp_path, labels):
    src = tmp_path / "in"
    deep = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 85).astype(np.uint16)
    add_item(src, "deep", image=deep)
    gray = np.arange(H * W, dtype=np.uint32).reshape(H, W).astype(np.uint8)
    add_item(src, "gray", image=gray)
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = 50
    rgba[:, : W // 2, 3] = 255
    add_item(src, "rgba", image=rgba)
    report = convert(src, tmp_path / "voc", cfg(labels))
    assert report.failed == 0
    images = {s: np.asarray(Image.open(tmp_path / "voc/JPEGImages" / f"{s}.png")) for s in ("deep", "gray", "rgba")}
    assert all(im.shape == (H, W, 3) and im.dtype == np.uint8 for im in images.values())
    np.testing.assert_array_equal(images["deep"][..., 1], deep >> 8)
    np.testing.assert_array_equal(images["gray"][..., 2], gray)
    assert images["rgba"][0, 0].tolist() == [50, 0, 0] and images["rgba"][0, -1].tolist() == [255, 255, 255]


# --------------------------------------------------------------- bad input


def failure_for(report, name: str) -> str:
    reasons = [f.reason for f in report.failures if Path(f.path).name == name]
    assert len(reasons) == 1, report.summary()
    return reasons[0]


def run_with_one_bad(tmp_path, labels, make_bad, **kw):
    src = good_folder(tmp_path, n=2)
    make_bad(src)
    report = convert(src, tmp_path / "voc", cfg(labels, **kw))
    assert report.converted == 2 and report.failed == 1 and report.exit_code == 1
    assert sorted(read_split(tmp_path / "voc", "trainval")) == ["img0", "img1"]
    return report


def test_corrupt_json(tmp_path, labels):
    report = run_with_one_bad(tmp_path, labels, lambda d: (d / "bad.json").write_text('{"shapes": [1,'))
    assert "corrupt JSON at line 1" in failure_for(report, "bad.json")


def test_missing_image(tmp_path, labels):
    def make(d):
        add_item(d, "lost")
        (d / "lost.png").unlink()

    report = run_with_one_bad(tmp_path, labels, make)
    assert "image 'lost.png' not found" in failure_for(report, "lost.json")


def test_image_path_escaping_the_input_is_refused(tmp_path, labels):
    (tmp_path / "secret.png").write_bytes(png_bytes(np.zeros((H, W, 3), np.uint8)))
    report = run_with_one_bad(tmp_path, labels, lambda d: add_item(d, "escape", image_name="../secret.png"))
    assert "leads outside the input folder" in failure_for(report, "escape.json")
    assert not (tmp_path / "voc/JPEGImages/escape.png").exists()


def test_image_size_mismatch(tmp_path, labels):
    report = run_with_one_bad(tmp_path, labels, lambda d: add_item(d, "wrong", declared=(H + 1, W)))
    assert f"the image is {W}x{H}" in failure_for(report, "wrong.json")


def test_polygon_with_fewer_than_three_points(tmp_path, labels):
    two = {"label": "knife", "points": [[1, 1], [5, 5]], "shape_type": "polygon"}
    report = run_with_one_bad(tmp_path, labels, lambda d: add_item(d, "thin", [rect(), two]))
    assert "shape #1 (polygon 'knife') has 2 point(s); a polygon needs at least 3" in failure_for(report, "thin.json")


def test_points_outside_the_image_are_clipped_with_a_warning(tmp_path, labels):
    src = tmp_path / "in"
    add_item(src, "edge", [rect(box=((-5, -5), (W + 10, 5)))])
    report = convert(src, tmp_path / "voc", cfg(labels))
    assert report.converted == 1 and report.exit_code == 0
    assert [w.message for w in report.warnings] == [
        f"shape #0 (rectangle 'knife'): 2 of 2 point(s) lie outside the {W}x{H} image; the shape is clipped to the image"
    ]
    mask = load_label_png(tmp_path / "voc/SegmentationClass/edge.png")
    assert mask.shape == (H, W) and (mask[:6] == 1).all() and (mask[6:] == 0).all()
    assert "warnings (1):" in report.summary()


def test_unknown_labels_error_lists_all_before_converting(tmp_path, labels):
    src = good_folder(tmp_path, n=2)
    add_item(src, "u1", [rect("axe"), rect("saw")])
    add_item(src, "u2", [rect("axe")])
    out = tmp_path / "voc"
    with pytest.raises(DatasetError) as info:
        convert(src, out, cfg(labels))
    message = info.value.message
    assert "2 unknown label(s), nothing converted" in message
    assert f"'axe' in {src / 'u1.json'}, {src / 'u2.json'}" in message and f"'saw' in {src / 'u1.json'}" in message
    assert not out.exists()  # nothing written


def test_unknown_labels_skip_and_background(tmp_path, labels):
    src = tmp_path / "in"
    add_item(src, "u", [rect("knife", ((0, 0), (9, 9))), rect("axe", ((5, 5), (14, 14)))])
    skip = convert(src, tmp_path / "skip", cfg(labels, unknown="skip"))
    assert skip.converted == 1 and "skipped the shapes with unknown label(s) 'axe'" in skip.warnings[0].message
    assert load_label_png(tmp_path / "skip/SegmentationClass/u.png")[7, 7] == 1
    bg = convert(src, tmp_path / "bg", cfg(labels, unknown="background"))
    assert "as background" in bg.warnings[0].message
    mask = load_label_png(tmp_path / "bg/SegmentationClass/u.png")
    assert mask[7, 7] == 0 and mask[2, 2] == 1


def test_duplicate_stems_in_recursive_run(tmp_path, labels):
    src = good_folder(tmp_path, n=2)
    add_item(src / "a", "x")
    add_item(src / "b", "x")
    report = convert(src, tmp_path / "voc", cfg(labels, recursive=True))
    assert report.converted == 2 and report.failed == 2 and report.exit_code == 1
    for failure in report.failures:
        assert "duplicate stem 'x'" in failure.reason
    assert not (tmp_path / "voc/SegmentationClass/x.png").exists()


def test_two_annotations_of_one_image(tmp_path, labels):
    def make(d):
        add_item(d, "dup", image_name="img0.png")

    src = good_folder(tmp_path, n=2)
    make(src)
    report = convert(src, tmp_path / "voc", cfg(labels))
    assert report.converted == 1 and report.failed == 2
    assert "annotates the same image" in failure_for(report, "dup.json")
    assert "annotates the same image" in failure_for(report, "img0.json")


def test_empty_folder(tmp_path, labels):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no Labelme .json files found"):
        convert(tmp_path / "empty", tmp_path / "voc", cfg(labels))
    assert not (tmp_path / "voc").exists()


# ------------------------------------------------------------------- safety


def test_existing_output_refused_then_force(tmp_path, labels):
    src = good_folder(tmp_path, n=2)
    out = tmp_path / "voc"
    convert(src, out, cfg(labels))
    (out / "stale.txt").write_text("old")
    with pytest.raises(OutputExistsError):
        convert(src, out, cfg(labels))
    assert (out / "stale.txt").exists()
    report = convert(src, out, cfg(labels, force=True))
    assert report.converted == 2 and not (out / "stale.txt").exists()


def test_resume_converts_only_missing(tmp_path, labels):
    src = good_folder(tmp_path, n=4)
    out = tmp_path / "voc"
    convert(src, out, cfg(labels, npy=True))
    (out / "SegmentationClassNpy" / "img2.npy").unlink()
    (out / "JPEGImages" / "img3.png").unlink()
    kept = (out / "SegmentationClass" / "img0.png").stat().st_mtime_ns
    report = convert(src, out, cfg(labels, npy=True, resume=True))
    assert (report.converted, report.skipped, report.failed) == (2, 2, 0)
    assert (out / "SegmentationClassNpy" / "img2.npy").is_file() and (out / "JPEGImages" / "img3.png").is_file()
    assert (out / "SegmentationClass" / "img0.png").stat().st_mtime_ns == kept
    assert len(read_split(out, "trainval")) == 4
    with pytest.raises(ConfigError, match="different settings"):
        convert(src, out, cfg(labels, npy=True, resume=True, image_format="jpeg"))


def test_output_inside_input_refused(tmp_path, labels):
    src = good_folder(tmp_path, n=1)
    with pytest.raises(ConfigError, match="contains the input"):
        convert(src, tmp_path, cfg(labels, force=True))
    assert (src / "img0.json").is_file()


def test_inputs_never_modified(tmp_path, labels):
    src = good_folder(tmp_path, n=3)
    add_item(src, "emb", embed=True)
    (src / "bad.json").write_text("{")
    before = snapshot(src)
    convert(src, tmp_path / "voc", cfg(labels, npy=True, vis=True, image_format="copy"))
    convert(src, tmp_path / "voc", cfg(labels, force=True, workers=2))
    assert snapshot(src) == before


def test_interrupted_write_leaves_no_partial_or_temp_files(tmp_path, labels, monkeypatch):
    src = good_folder(tmp_path, n=2)
    out = tmp_path / "voc"

    def killed_mid_write(path, array):
        Path(path).write_bytes(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(job_module.np, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        convert(src, out, cfg(labels, npy=True))
    assert temp_files(out) == []
    assert list((out / "SegmentationClassNpy").glob("*")) == []
    assert not (out / "SegmentationClass" / "img0.png").exists()  # the stem is not marked finished
    assert not (out / "ImageSets").exists()
    monkeypatch.undo()
    report = convert(src, out, cfg(labels, npy=True, resume=True))
    assert report.converted == 2 and temp_files(out) == []


def test_stale_temp_files_are_swept_on_resume(tmp_path, labels):
    src = good_folder(tmp_path, n=1)
    out = tmp_path / "voc"
    convert(src, out, cfg(labels))
    stale = out / "JPEGImages" / ".img0.abc123.tmp.png"
    stale.write_bytes(b"half")
    convert(src, out, cfg(labels, resume=True))
    assert not stale.exists()


# ---------------------------------------------------------------------- CLI


def test_cli_summary_and_exit_codes(tmp_path, labels, capsys):
    src = good_folder(tmp_path, n=2)
    base = ["convert", str(src), str(tmp_path / "ok"), "--labels", str(labels), "--workers", "1", "--quiet"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "converted 2, failed 0 of 2 file(s)" in out

    (src / "broken.json").write_text("[")
    assert main(base[:2] + [str(tmp_path / "one")] + base[3:]) == 1
    out = capsys.readouterr().out
    assert "converted 2, failed 1 of 3 file(s)" in out and "broken.json" in out and "failed (1):" in out
    assert "broken.json" in (tmp_path / "one" / "convert_report.txt").read_text()

    assert main(base) == 2  # output exists
    assert "output already exists" in capsys.readouterr().err
    (tmp_path / "none").mkdir()
    assert main(["convert", str(tmp_path / "none"), str(tmp_path / "v"), "--labels", str(labels)]) == 2
    assert "no Labelme .json files found" in capsys.readouterr().err
    add_item(src, "odd", [rect("axe")])
    assert main(base[:2] + [str(tmp_path / "two")] + base[3:]) == 2
    assert "unknown label(s)" in capsys.readouterr().err


def test_cli_help_names_the_default_image_format(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "png (default, lossless)" in text and "labelme2voc-identical" in text


def test_workers_default_to_all_cores():
    assert resolve_workers(0) == len(os.sched_getaffinity(0))
    assert ConvertConfig().workers == 0 and ConvertConfig().val_ratio == 0.3 and ConvertConfig().image_format == "png"
