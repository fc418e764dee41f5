"""Output files of show-batch and data-stats (issue 28): the shared file guard
(:func:`xray_seg.core.fileio.prepare_output_file`) refuses a folder, a FIFO and an input with
one line and exit code 2, ``--force`` included, before any work; inputs stay byte-identical."""

from __future__ import annotations

import os

import pytest

COMMANDS = {"show-batch": "--out", "data-stats": "--weights-out"}


@pytest.mark.parametrize("command", COMMANDS)
def test_output_file_naming_a_folder_is_one_line(tiny_voc, tmp_path, cli, snapshot, command):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    snap = snapshot(tiny_voc, folder)
    rc, line = cli([command, tiny_voc, COMMANDS[command], folder, "--force"])
    assert rc == 2 and str(folder) in line and "is an existing folder" in line and "Fix: name a file" in line
    snap.assert_unchanged()


@pytest.mark.parametrize("command", COMMANDS)
def test_output_file_that_is_a_fifo_is_refused(tiny_voc, tmp_path, cli, snapshot, command):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    snap = snapshot(tiny_voc)
    rc, line = cli([command, tiny_voc, COMMANDS[command], fifo, "--force"])
    assert rc == 2 and str(fifo) in line and "not a regular file" in line
    assert os.path.exists(fifo)
    snap.assert_unchanged()


def test_output_file_over_a_dataset_image_is_refused(tiny_voc, cli, snapshot):
    image = next((tiny_voc / "JPEGImages").iterdir())
    snap = snapshot(tiny_voc)
    rc, line = cli(["show-batch", tiny_voc, "--out", image, "--force"])
    assert rc == 2 and "would overwrite a file of the dataset" in line
    snap.assert_unchanged()
