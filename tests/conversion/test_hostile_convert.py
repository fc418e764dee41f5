"""Hostile input to `xray-seg convert` (issue 16): exit code, one line, inputs untouched.

Every case runs the CLI in-process (``cli`` fixture of tests/conftest.py), checks the exit
code and the single ``error:`` line (no traceback), and that every input file still
exists with the same bytes (``snapshot`` fixture).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from _helpers import png_bytes, rect

from xray_seg.conversion.voc import read_split

H, W = 24, 32


def add_item(folder: Path, stem: str, *, shapes=None, image_name=None, image_bytes=None, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(len(stem)).integers(0, 256, (H, W, 3), dtype=np.uint8)
    image_name = image_name or f"{stem}.png"
    if image_bytes is None and not (folder / image_name).exists():
        (folder / image_name).write_bytes(png_bytes(image))
    data = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [rect()] if shapes is None else shapes,
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": H,
        "imageWidth": W,
        **fields,
    }
    if image_bytes is not None:
        data["imageData"] = base64.b64encode(image_bytes).decode()
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(data))
    return path


def convert_argv(src, out, labels, *extra):
    return ["convert", src, out, "--labels", labels, "--workers", "1", "--quiet", *extra]


def folder_of(tmp_path, n=4) -> Path:
    src = tmp_path / "in"
    for i in range(n):
        add_item(src, f"img{i}")
    return src


def png_declaring(height: int, width: int) -> bytes:
    """A tiny PNG whose IHDR declares ``height x width`` (valid CRCs; a decompression bomb)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = zlib.compress(b"\0" * (width * 3 + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------- data loss


def test_dot_tmp_stem_survives_the_temp_sweep(tmp_path, labels, cli, snapshot):
    src = folder_of(tmp_path, 2)
    add_item(src, ".tmpscan")
    snap = snapshot(src)
    out = tmp_path / "voc"
    rc, _ = cli(convert_argv(src, out, labels))
    assert rc == 0
    assert (out / "JPEGImages" / ".tmpscan.png").is_file() and (out / "SegmentationClass" / ".tmpscan.png").is_file()
    assert ".tmpscan" in read_split(out, "trainval")
    snap.assert_unchanged()


@pytest.mark.parametrize("stem", [" lead", "trail ", "tab\tin"])
def test_stems_with_outer_spaces_or_controls_are_refused_naming_the_file(tmp_path, labels, cli, snapshot, stem, capsys):
    src = folder_of(tmp_path, 2)
    add_item(src, stem)
    snap = snapshot(src)
    out = tmp_path / "voc"
    from xray_seg.cli import main

    rc = main([str(a) for a in convert_argv(src, out, labels)])
    printed = capsys.readouterr().out
    assert rc == 1 and "Traceback" not in printed
    assert repr(stem) in printed and "rename the file" in printed
    assert stem not in read_split(out, "trainval") and len(read_split(out, "trainval")) == 2
    snap.assert_unchanged()


def test_undecodable_file_name_bytes_are_refused_not_a_crash(tmp_path, labels, cli, snapshot, capsys):
    src = folder_of(tmp_path, 2)
    name = os.fsdecode(b"R\xf6ntgen")
    add_item(src, name, image_name="img0.png")  # shares no image: point at its own copy below
    (src / f"{name}.png").write_bytes((src / "img1.png").read_bytes())
    data = json.loads((src / f"{name}.json").read_text())
    data["imagePath"] = f"{name}.png"
    (src / f"{name}.json").write_text(json.dumps(data))
    snap = snapshot(src)
    out = tmp_path / "voc"
    from xray_seg.cli import main

    rc = main([str(a) for a in convert_argv(src, out, labels)])
    printed = capsys.readouterr()
    assert rc == 1 and "Traceback" not in printed.out + printed.err and "not valid UTF-8" in printed.out
    for split in ("train", "val", "trainval"):
        assert (out / "ImageSets" / "Segmentation" / f"{split}.txt").is_file()
    snap.assert_unchanged()


def test_resume_after_fixing_a_json_keeps_every_split_assignment(tmp_path, labels, cli, snapshot):
    src = folder_of(tmp_path, 12)
    (src / "late.json").write_text("{broken")
    out = tmp_path / "voc"
    assert cli(convert_argv(src, out, labels))[0] == 1
    train, val = read_split(out, "train"), read_split(out, "val")
    add_item(src, "late")  # the README's workflow: fix the broken file, then --resume
    snap = snapshot(src)
    assert cli(convert_argv(src, out, labels, "--resume"))[0] == 0
    assert set(train) <= set(read_split(out, "train")) and set(val) <= set(read_split(out, "val"))
    assert "late" in read_split(out, "train") + read_split(out, "val")
    snap.assert_unchanged()


def test_resume_with_a_changed_split_needs_resplit(tmp_path, labels, cli, refused):
    src = folder_of(tmp_path, 6)
    out = tmp_path / "voc"
    assert cli(convert_argv(src, out, labels))[0] == 0
    refused(convert_argv(src, out, labels, "--resume", "--val-ratio", "0.5"), "different split", "--resplit")
    assert cli(convert_argv(src, out, labels, "--resume", "--val-ratio", "0.5", "--resplit"))[0] == 0
    assert len(read_split(out, "val")) == 3
    refused(convert_argv(src, tmp_path / "other", labels, "--resplit"), "--resplit only applies with --resume")


def test_resume_reconverts_an_edited_json(tmp_path, labels, cli, snapshot):
    src = folder_of(tmp_path, 3)
    out = tmp_path / "voc"
    assert cli(convert_argv(src, out, labels))[0] == 0
    mask = out / "SegmentationClass" / "img1.png"
    before = mask.read_bytes()
    add_item(src, "img1", shapes=[rect("gun", ((1, 1), (30, 20)))])
    st = (src / "img1.json").stat()
    os.utime(src / "img1.json", ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    snap = snapshot(src)
    assert cli(convert_argv(src, out, labels, "--resume"))[0] == 0
    assert mask.read_bytes() != before
    assert "converted 1" in (out / "convert_report.txt").read_text()
    snap.assert_unchanged()


def test_force_never_deletes_a_foreign_output_folder(tmp_path, labels, refused):
    src = folder_of(tmp_path, 2)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    refused(convert_argv(src, out, labels, "--force"), "did not create", ".xray-seg-output", untouched=[src, out])


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_output_overlapping_the_input_is_refused(tmp_path, labels, refused, where):
    src = folder_of(tmp_path, 2)
    out = {"same": src, "inside": src / "voc", "contains": tmp_path}[where]
    refused(convert_argv(src, out, labels, "--force"), "input", untouched=[src, labels])


# ----------------------------------------------------------------------------- resources


def test_png_bomb_is_refused_by_the_pixel_limit(tmp_path, labels, cli, snapshot, capsys, monkeypatch):
    monkeypatch.setenv("XRAY_SEG_MAX_PIXELS", "64000000")  # restored (removed) after the test
    src = folder_of(tmp_path, 2)
    add_item(src, "bomb", image_bytes=png_declaring(3000, 3000), imageHeight=3000, imageWidth=3000)
    snap = snapshot(src)
    from xray_seg.cli import main

    rc = main([str(a) for a in ["--max-pixels", 4_000_000, *convert_argv(src, tmp_path / "voc", labels)]])
    printed = capsys.readouterr()
    assert rc == 1 and "Traceback" not in printed.out + printed.err
    assert "over the limit of 4.0 M pixels" in printed.out and "--max-pixels" in printed.out
    assert "DecompressionBomb" not in printed.err
    snap.assert_unchanged()


def test_fifo_and_device_image_paths_are_refused_not_read(tmp_path, labels, capsys, snapshot):
    src = folder_of(tmp_path, 2)
    os.mkfifo(src / "pipe.png")
    (src / "zero.png").symlink_to("/dev/zero")
    add_item(src, "pipe")
    add_item(src, "zero")
    os.mkfifo(src / "fifo.json")  # the annotation itself
    snap = snapshot(src)
    from xray_seg.cli import main

    rc = main([str(a) for a in convert_argv(src, tmp_path / "voc", labels)])  # would hang or read forever
    printed = capsys.readouterr().out
    assert rc == 1 and "is a FIFO; only regular files are read" in printed and "is a device" in printed
    assert "of 4 file(s)" in printed  # a FIFO named .json is not a file: not listed, never opened
    assert stat.S_ISFIFO(os.stat(src / "pipe.png").st_mode)
    snap.assert_unchanged()


# ----------------------------------------------------------------------------- clear messages


@pytest.mark.parametrize(
    "fields, expect",
    [
        ({"imageHeight": "24"}, "imageHeight is '24' (str), not an integer"),
        ({"shapes": {"label": "knife"}}, "no 'shapes' list"),
        (
            {"shapes": [{"label": "knife", "shape_type": ["polygon"], "points": [[1, 1], [5, 1], [5, 5]]}]},
            "shape_type that is not a name",
        ),
    ],
)
def test_odd_json_values_give_a_clear_message(tmp_path, labels, capsys, snapshot, fields, expect):
    src = folder_of(tmp_path, 2)
    add_item(src, "odd", **fields)
    snap = snapshot(src)
    from xray_seg.cli import main

    rc = main([str(a) for a in convert_argv(src, tmp_path / "voc", labels)])
    printed = capsys.readouterr().out
    assert rc == 1 and expect in printed and "unhashable" not in printed and "Traceback" not in printed
    snap.assert_unchanged()


def test_garbage_image_message_names_no_python_object(tmp_path, labels, capsys, snapshot):
    src = folder_of(tmp_path, 1)
    add_item(src, "junk", image_bytes=b"this is not an image at all")
    snap = snapshot(src)
    from xray_seg.cli import main

    rc = main([str(a) for a in convert_argv(src, tmp_path / "voc", labels)])
    printed = capsys.readouterr().out
    assert rc == 1 and "junk.json (imageData): cannot decode the image" in printed and "BytesIO" not in printed
    snap.assert_unchanged()


def test_ignore_on_line_two_says_where_it_belongs(tmp_path, cli, snapshot):
    src = folder_of(tmp_path, 1)
    bad = tmp_path / "labels.txt"
    bad.write_text("_background_\n__ignore__\nknife\n")
    snap = snapshot(src, bad)
    rc, line = cli(convert_argv(src, tmp_path / "voc", bad))
    assert rc == 2 and "may only be the first line" in line and "appears twice" not in line
    snap.assert_unchanged()


def test_nul_in_a_path_is_one_line(tmp_path, labels, cli):
    src = folder_of(tmp_path, 1)
    rc, line = cli(convert_argv(src, f"{tmp_path}/v\0oc", labels))
    assert rc == 2 and "NUL" in line and "embedded null byte" not in line


def test_read_only_output_is_one_line(tmp_path, labels, cli, snapshot, monkeypatch):
    src = folder_of(tmp_path, 1)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root ignores the mode bits: refuse writes there as a read-only disk would
        import errno
        import tempfile

        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).resolve().is_relative_to(locked.resolve()):
                raise PermissionError(errno.EACCES, "Permission denied", str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr("xray_seg.core.fileio.tempfile.mkstemp", mkstemp)
    snap = snapshot(src)
    try:
        rc, line = cli(convert_argv(src, locked / "voc", labels))
    finally:
        locked.chmod(0o755)
    assert rc == 2 and "Permission denied" in line and "Fix:" in line
    snap.assert_unchanged()


# ----------------------------------------------------------------------------- permissions


def test_outputs_honour_the_umask(tmp_path, labels, cli):
    src = folder_of(tmp_path, 2)
    old = os.umask(0o022)
    try:
        assert cli(convert_argv(src, tmp_path / "voc", labels, "--npy"))[0] == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "voc").rglob("*") if p.is_file()]
    assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}
