"""Hostile input to `xray-seg predict` (issue 16): exit code, one line, inputs untouched.

A one-layer Keras model (any input size) stands in for a trained one: what is tested is
the command's handling of paths, options and files, not the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from _helpers import save_one_layer_model
from PIL import Image

CLASS_NAMES = ["_background_", "gun", "knife"]


def _save_model(folder: Path, input_shape=(None, None, 3)) -> Path:
    return save_one_layer_model(folder, CLASS_NAMES, input_shape)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return _save_model(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture
def scans(tmp_path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(folder / f"bag{i}.png")
    return folder


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_output_overlapping_an_input_folder_is_refused_even_with_force(model_file, scans, refused, where):
    out = {"same": scans, "inside": scans / "pred", "contains": scans.parent}[where]
    argv = ["predict", model_file, scans, "--out", out, "--force"]
    refused(argv, "input", absent=["not found"], untouched=[scans])
    assert not (scans / "pred").exists()


def test_output_containing_the_model_is_refused(model_file, scans, refused):
    argv = ["predict", model_file, scans, "--out", model_file.parent, "--force"]
    refused(argv, "contains the input", untouched=[model_file.parent, scans])


def test_force_never_deletes_a_foreign_folder(model_file, scans, tmp_path, refused):
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refused(["predict", model_file, scans, "--out", foreign, "--force"], "did not create", untouched=[scans, foreign])


def test_same_stem_png_and_jpg_is_refused_before_predicting(model_file, scans, tmp_path, refused):
    Image.open(scans / "bag0.png").convert("RGB").save(scans / "bag0.jpg", quality=95)
    out = tmp_path / "out"
    refused(
        ["predict", model_file, scans, "--out", out], "bag0.jpg", "bag0.png", "same output names", untouched=[scans]
    )
    assert not out.exists()


def test_same_stem_in_two_folders_is_refused(model_file, scans, tmp_path, refused):
    other = tmp_path / "other"
    other.mkdir()
    (other / "BAG1.png").write_bytes((scans / "bag1.png").read_bytes())  # case ignored: one name on macOS
    argv = ["predict", model_file, scans, other, "--out", tmp_path / "out"]
    refused(argv, "BAG1.png", "bag1.png", untouched=[scans, other])


def test_one_file_given_twice_is_predicted_once(model_file, scans, tmp_path, cli, capsys):
    from xray_seg.cli import main

    out = tmp_path / "out"
    assert main(["predict", str(model_file), str(scans / "bag0.png"), str(scans), "--out", str(out)]) == 0
    assert "predicted 3 image(s)" in capsys.readouterr().out
    assert len(list(out.glob("*.json"))) == 3


@pytest.mark.parametrize(
    "option, expect",
    [
        ("--tta scales=0", "bad --tta scale '0'"),
        ("--tta scales=abc", "bad --tta scale 'abc'"),
        ("--tta flip,scales=1,-2", "bad --tta scale '-2'"),
        ("--window 0", "bad size '0'"),
        ("--window 16x16x3", "bad size '16x16x3'"),
        ("--window big", "bad size 'big'"),
    ],
)
def test_bad_prediction_options_are_one_line(model_file, scans, tmp_path, refused, option, expect):
    refused(["predict", model_file, scans, "--out", tmp_path / "out", *option.split()], expect, untouched=[scans])
    assert not (tmp_path / "out").exists()


def test_fixed_size_keras_model_refuses_another_window(tmp_path, scans, refused):
    fixed = _save_model(tmp_path / "fixed", input_shape=(32, 32, 3))
    argv = ["predict", fixed, scans, "--out", tmp_path / "out", "--window", "16"]
    refused(argv, "32x32", "16x16", untouched=[scans])


def test_fifo_device_and_bomb_inputs_are_skipped_not_read(model_file, scans, tmp_path, capsys, snapshot, monkeypatch):
    from xray_seg.cli import main

    monkeypatch.setenv("XRAY_SEG_MAX_PIXELS", "64000000")  # restored (removed) after the test
    os.mkfifo(scans / "pipe.png")
    (scans / "zero.png").symlink_to("/dev/zero")
    Image.new("L", (3000, 2000)).save(scans / "huge.png")  # 6 M pixels, over a 1 M limit
    snap = snapshot(scans)
    rc = main(["--max-pixels", "1000000", "predict", str(model_file), str(scans), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr()
    assert rc == 1 and "Traceback" not in printed.out + printed.err
    assert "pipe.png: image is a FIFO" in printed.out and "zero.png: image is a device" in printed.out
    assert "huge.png: image declares 6.0 M pixels, over the limit of 1.0 M pixels" in printed.out
    assert "predicted 3 image(s)" in printed.out
    snap.assert_unchanged()


def test_predictions_honour_the_umask(model_file, scans, tmp_path, cli):
    old = os.umask(0o022)
    try:
        assert cli(["predict", model_file, scans, "--out", tmp_path / "out"])[0] == 0
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "out").iterdir()}
    # 3 scans x (mask, overlay, json) and the output marker, plus the alarmed-bags contact
    # sheet when this untrained model happens to alarm on a bag
    assert len(set(modes) - {"alarmed_contact_sheet.png"}) == 10 and set(modes.values()) == {"0o644"}, modes


def test_existing_output_message_does_not_suggest_a_missing_resume(model_file, scans, tmp_path, cli):
    out = tmp_path / "out"
    assert cli(["predict", model_file, scans, "--out", out])[0] == 0
    rc, line = cli(["predict", model_file, scans, "--out", out])
    assert rc == 2 and "--force" in line and "--resume" not in line
    assert cli(["predict", model_file, scans, "--out", out, "--force"])[0] == 0  # our own folder: replaced


def test_nul_in_an_input_path_is_one_line(model_file, tmp_path, cli):
    rc, line = cli(["predict", model_file, f"{tmp_path}/a\0b.png", "--out", tmp_path / "out"])
    assert rc == 2 and "NUL" in line and "embedded null byte" not in line


def test_grey_scans_are_predicted_with_one_warning_line(model_file, scans, tmp_path, capsys):
    """A 1-channel scan and an RGB one with equal channels are accepted; one line names both."""
    from xray_seg.cli import main

    grey = np.random.default_rng(1).integers(0, 256, (24, 40), dtype=np.uint8)
    Image.fromarray(grey).save(scans / "grey_l.png")  # mode L
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(scans / "grey_rgb.png")
    out = tmp_path / "out"
    assert main(["predict", str(model_file), str(scans), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "grey" in line]
    assert lines == [
        f"warning: 2 scan(s) are single-energy grey; {model_file} was trained on dual-energy colour scans "
        "unless its training data were grey: check the predictions"
    ]
    assert (out / "grey_l_mask.png").is_file() and (out / "grey_rgb_mask.png").is_file()
    assert (out / "bag0_mask.png").is_file()


def test_colour_scans_give_no_grey_warning(model_file, scans, tmp_path, capsys):
    from xray_seg.cli import main

    assert main(["predict", str(model_file), str(scans), "--out", str(tmp_path / "out")]) == 0
    assert "grey" not in capsys.readouterr().err
