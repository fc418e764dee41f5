"""Hostile input to `xray-seg demo` (issue 16): every option checked before the disk is touched;
only a folder the demo made is replaced, a foreign one never."""

from __future__ import annotations

import pytest

from xray_seg.core.fileio import OUTPUT_MARKER, write_marker


@pytest.fixture
def user_folder(tmp_path):
    folder = tmp_path / "work"
    (folder / "sub").mkdir(parents=True)
    (folder / "report.docx").write_bytes(b"\x50\x4b\x03\x04 months of work")
    (folder / "sub" / "scan.png").write_bytes(b"\x89PNG fake")
    return folder


@pytest.mark.parametrize(
    "options, expect",
    [
        ("--num-images 0", "num"),
        ("--num-images 1", "--num-images 1"),
        ("--size 8", "size"),
        ("--threat-prob 1.5", "threat_prob"),
        ("--clean-val-bags -1", "--clean-val-bags -1"),
        ("--set data.batch_size=0", "data.batch_size=0"),
        ("--set optim.lr=-1", "optim.lr=-1"),
        ("--set no.such=1", "unknown setting"),
        ("--num-images 4", "fewer than one batch"),
    ],
)
def test_bad_options_are_refused_before_the_folder_is_touched(user_folder, refused, options, expect):
    refused(["demo", "--out", user_folder, *options.split()], expect, untouched=[user_folder])


@pytest.mark.parametrize("force", [False, True])
def test_a_foreign_folder_is_never_deleted(user_folder, refused, force):
    argv = ["demo", "--out", user_folder, *(["--force"] if force else [])]
    refused(argv, "never deleted", OUTPUT_MARKER, untouched=[user_folder])


def test_another_commands_output_needs_force(tmp_path, refused):
    folder = tmp_path / "predictions"
    folder.mkdir()
    write_marker(folder, "predict")
    (folder / "bag.json").write_text("{}")
    refused(["demo", "--out", folder], "xray-seg predict", "--force", untouched=[folder])


def test_the_demos_own_folder_is_replaced(tmp_path):
    from xray_seg.demo import _replace_demo_folder

    folder = tmp_path / "demo"
    folder.mkdir()
    write_marker(folder, "demo")
    (folder / "old.txt").write_text("stale")
    _replace_demo_folder(folder, force=False)
    assert not folder.exists()
