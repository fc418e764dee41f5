"""Hostile input to `xray-seg tip` (issue 28): the output guard, unreadable bags, 16-bit bags.

Each refusal: exit code 2 and one ``error:`` line naming the file and the fix (``cli``
fixture), inputs byte-identical (``snapshot``), ``--force`` included, and no staging
folder or half-written output left behind.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from PIL import Image
from test_tip import _voc

from xray_seg.conversion.voc import load_label_png, save_label_png
from xray_seg.core.fileio import OUTPUT_MARKER


@pytest.fixture
def inputs(tmp_path):
    lib = _voc(tmp_path / "lib", n=2, clean_from=1)
    bags = tmp_path / "bags"
    bags.mkdir()
    for i in range(2):
        Image.fromarray(np.full((36, 44, 3), 170, np.uint8)).save(bags / f"bag{i}.png")
    return lib, bags


def tip_argv(lib, bags, out, *extra):
    return ["tip", lib, "--bags", bags, "--out", out, "--seed", "1", *extra]


def no_leftovers(folder):
    return not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_force_never_deletes_a_folder_xray_seg_did_not_make(tmp_path, inputs, cli, snapshot):
    lib, bags = inputs
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    snap = snapshot(lib, bags, user)
    rc, line = cli(tip_argv(lib, bags, user, "--force"))
    assert rc == 2 and str(user) in line and OUTPUT_MARKER in line and "Fix:" in line
    snap.assert_unchanged()
    assert no_leftovers(tmp_path)


def test_force_never_unlinks_a_users_file(tmp_path, inputs, cli, snapshot):
    lib, bags = inputs
    notes = tmp_path / "notes.txt"
    notes.write_text("do not delete")
    snap = snapshot(lib, bags, notes)
    rc, line = cli(tip_argv(lib, bags, notes, "--force"))
    assert rc == 2 and str(notes) in line and "not a folder" in line and "Fix:" in line
    snap.assert_unchanged()
    assert no_leftovers(tmp_path)


def test_outputs_carry_the_marker_so_force_replaces_them(tmp_path, inputs, cli, snapshot):
    lib, bags = inputs
    out = tmp_path / "out"
    snap = snapshot(lib, bags)
    assert cli(tip_argv(lib, bags, out))[0] == 0
    assert (out / OUTPUT_MARKER).read_text().startswith("xray-seg tip")
    first = sorted(p.name for p in (out / "JPEGImages").iterdir())
    assert cli(tip_argv(lib, bags, out, "--force"))[0] == 0
    assert sorted(p.name for p in (out / "JPEGImages").iterdir()) == first
    snap.assert_unchanged()
    assert no_leftovers(tmp_path)


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "fifo", "device"])
def test_unreadable_bag_is_one_line_naming_it(tmp_path, inputs, cli, snapshot, kind):
    lib, bags = inputs
    bad = bags / "bad.png"
    if kind == "corrupt":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    elif kind == "truncated":
        data = (bags / "bag0.png").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "fifo":
        os.mkfifo(bad)
    else:
        bad.symlink_to("/dev/zero")
    snap = snapshot(lib, bags)
    out = tmp_path / "out"

    def hung(*_):
        raise TimeoutError("tip waited on the FIFO bag")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)  # a FIFO read would wait for a writer forever
    try:
        rc, line = cli(tip_argv(lib, bags, out))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert rc == 2 and str(bad) in line and "Fix:" in line
    snap.assert_unchanged()
    assert not out.exists() and no_leftovers(tmp_path)


def test_mask_of_another_size_is_one_line(tmp_path, inputs, cli, snapshot):
    lib, bags = inputs
    mask = lib / "SegmentationClass" / "s0.png"
    save_label_png(mask, np.zeros((12, 12), np.uint8))
    snap = snapshot(lib, bags)
    rc, line = cli(tip_argv(lib, bags, tmp_path / "out"))
    assert rc == 2 and str(mask) in line and "12x12" in line
    snap.assert_unchanged()


def test_sixteen_bit_bags_keep_their_grey_levels(tmp_path, inputs, cli):
    lib, _ = inputs
    bags = tmp_path / "bags16"
    bags.mkdir()
    Image.fromarray(np.full((36, 44), 170 * 257, np.uint16)).save(bags / "bag16.png")
    out = tmp_path / "out"
    assert cli(tip_argv(lib, bags, out))[0] == 0
    image = np.asarray(Image.open(out / "JPEGImages" / "bag16_tip0.png"))
    label = load_label_png(out / "SegmentationClass" / "bag16_tip0.png")
    # the grey level 170 * 257 reads as 170 (high byte), not as white; threats only darken it
    assert (image[label == 0] == 170).all() and (image[label != 0] < 170).any()
