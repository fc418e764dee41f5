"""Hostile output paths for synth and cyclegan (issue 16): a foreign folder is never deleted,
an output overlapping an input is refused whatever --force says."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_synth_force_never_deletes_a_foreign_folder(tmp_path, cli, snapshot):
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "annotations.json").write_text("{}")
    snap = snapshot(foreign)
    rc, line = cli(["synth", foreign, "--num", "1", "--size", "32", "--force"])
    assert rc == 2 and "did not create" in line
    snap.assert_unchanged()


@pytest.mark.parametrize("where", ["a", "inside_b", "parent"])
def test_cyclegan_run_dir_overlapping_an_image_folder_is_refused(photos, tmp_path, cli, snapshot, where):
    scans = tmp_path / "scans"
    scans.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(scans / "s.png")
    snap = snapshot(photos, scans)
    run = {"a": photos, "inside_b": scans / "run", "parent": tmp_path}[where]
    rc, line = cli(["cyclegan", "train", "--a", photos, "--b", scans, "--run-dir", run, "--force", "--epochs", "1"])
    assert rc == 2 and "input" in line
    snap.assert_unchanged()


def test_cyclegan_translate_out_overlapping_the_input_is_refused(tmp_path, cli, snapshot):
    labelme = tmp_path / "labelme"
    labelme.mkdir()
    (labelme / "a.json").write_text('{"shapes": [], "imagePath": "a.png"}')
    run = tmp_path / "gan_run"
    run.mkdir()
    snap = snapshot(labelme)
    rc, line = cli(["cyclegan", "translate", "--run-dir", run, "--labelme-dir", labelme, "--out", labelme, "--force"])
    assert rc == 2 and "is the input" in line
    snap.assert_unchanged()


@pytest.mark.parametrize("size", ["100000", "8200", "9000x7200", "4200 --aspect-mix pidray"])
def test_synth_refuses_sizes_that_convert_would_refuse(tmp_path, cli, size):
    out = tmp_path / "out"
    rc, line = cli(["synth", out, "--num", "1", "--size", *size.split()])
    assert rc == 2 and "over the limit of 64.0 M pixels that `xray-seg convert` applies" in line
    assert "--max-pixels" in line and not out.exists()


def test_synth_size_follows_the_same_pixel_limit_as_convert(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("XRAY_SEG_MAX_PIXELS", "64000000")  # --max-pixels sets it (and Pillow's limit):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # both restored after the test
    rc, line = cli(["--max-pixels", "4000", "synth", tmp_path / "out", "--num", "1", "--size", "70"])
    assert rc == 2 and "4900" not in line and "over the limit of 0.0 M pixels" in line
    assert cli(["--max-pixels", "4900", "synth", tmp_path / "ok", "--num", "1", "--size", "70"])[0] == 0
