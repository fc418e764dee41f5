"""The shared guards of issue 16: overlap, marker, umask, temp names, regular files, pixel limit."""

from __future__ import annotations

import os

import pytest

from xray_seg.core.errors import ConfigError, DatasetError, OutputExistsError
from xray_seg.core.file_names import bad_stem_reason
from xray_seg.core.fileio import (
    OUTPUT_MARKER,
    atomic_path,
    is_temp_name,
    marker_owner,
    prepare_output_dir,
    read_regular_file,
    refuse_dataset_file,
    refuse_overlap,
    sweep_temp_files,
    write_text_atomic,
)
from xray_seg.core.pixel_limit import check_pixels
from xray_seg.training.config_checks import resume_changes


@pytest.mark.parametrize("out, ok", [("in", False), ("in/out", False), (".", False), ("out", True), ("in2", True)])
def test_refuse_overlap(tmp_path, out, ok):
    (tmp_path / "in").mkdir()
    (tmp_path / "in2").mkdir()
    if ok:
        refuse_overlap(tmp_path / out, [tmp_path / "in"])
    else:
        with pytest.raises(ConfigError, match="input"):
            refuse_overlap(tmp_path / out, [tmp_path / "in"])


def test_refuse_overlap_follows_symlinks_and_allows_nesting_in_a_model(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    with pytest.raises(ConfigError, match="is the input"):
        refuse_overlap(tmp_path / "alias", [tmp_path / "data"])
    refuse_overlap(tmp_path / "run" / "eval", [], may_lie_inside=[tmp_path / "run"])
    with pytest.raises(ConfigError, match="contains the input"):
        refuse_overlap(tmp_path, [], may_lie_inside=[tmp_path / "run"])


def test_marker_names_the_owner_and_force_needs_it(tmp_path):
    out = prepare_output_dir(tmp_path / "o", owner="export")
    assert marker_owner(out) == "export" and (out / OUTPUT_MARKER).is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="file, not a folder"):
        prepare_output_dir(tmp_path / "file", force=True)
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        with atomic_path(tmp_path / "b.weights.h5") as tmp:
            tmp.write_bytes(b"w")
        prepare_output_dir(tmp_path / "dir")
    finally:
        os.umask(old)
    for name in ["a.txt", "b.weights.h5", f"dir/{OUTPUT_MARKER}"]:
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert (tmp_path / "dir").stat().st_mode & 0o777 == 0o777 & ~umask


def test_only_our_own_temp_names_are_swept(tmp_path):
    ours = [".last.weights.h5.k3x9_a2b.tmp.weights.h5", ".img0.png.abcdefgh.tmp.png", ".x.json.a1b2c3.tmp.json"]
    theirs = [".tmpscan.png", ".tmp", "a.tmp.png", ".notes.tmp", ".hidden"]
    for name in ours + theirs:
        (tmp_path / name).write_text("x")
    assert [is_temp_name(n) for n in ours] == [True] * 3 and not any(is_temp_name(n) for n in theirs)
    assert sweep_temp_files(tmp_path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(theirs)


def test_dataset_files_are_never_an_output_file(tmp_path):
    voc = tmp_path / "voc"
    (voc / "JPEGImages").mkdir(parents=True)
    refuse_dataset_file(voc / "class_weights.json", voc)
    for target in [voc / "class_names.txt", voc / "JPEGImages" / "a.png", voc, tmp_path]:
        with pytest.raises(ConfigError):
            refuse_dataset_file(target, voc)


def test_regular_files_only(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "ok").write_bytes(b"data")
    (tmp_path / "link").symlink_to(tmp_path / "ok")
    assert read_regular_file(tmp_path / "link") == b"data"
    with pytest.raises(DatasetError, match="is a FIFO"):
        read_regular_file(tmp_path / "fifo")
    with pytest.raises(DatasetError, match="is a device"):
        read_regular_file(tmp_path / "zero")
    with pytest.raises(DatasetError, match="is a folder"):
        read_regular_file(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        read_regular_file(tmp_path / "missing")


def test_pixel_limit_message_and_override(monkeypatch):
    monkeypatch.delenv("XRAY_SEG_MAX_PIXELS", raising=False)
    check_pixels(8000, 8000, "a.png")  # exactly 64 M: allowed
    with pytest.raises(DatasetError, match=r"a.png: image is 8000x8001 = 64.0 M pixels, over the limit of 64.0 M"):
        check_pixels(8000, 8001, "a.png")
    monkeypatch.setenv("XRAY_SEG_MAX_PIXELS", "100")
    with pytest.raises(DatasetError, match="over the limit of 0.0 M pixels"):
        check_pixels(10, 11, "b.png")
    monkeypatch.setenv("XRAY_SEG_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="XRAY_SEG_MAX_PIXELS"):
        check_pixels(1, 1, "c.png")


def test_bad_stems():
    assert bad_stem_reason("bag_001") is None and bad_stem_reason("Röntgen") is None
    assert "spaces" in bad_stem_reason(" lead") and "spaces" in bad_stem_reason("trail ")
    assert "control character" in bad_stem_reason("a\nb")
    assert "not valid UTF-8" in bad_stem_reason(os.fsdecode(b"R\xf6ntgen"))


def test_resume_changes_allow_only_growing_epochs(tmp_path):
    from dataclasses import replace

    from xray_seg.training.config import TrainConfig

    saved = TrainConfig(epochs=3)
    saved.data.voc_dir = str(tmp_path)
    grown = replace(saved, epochs=5)
    assert resume_changes(saved, grown) == []
    shrunk = replace(saved, epochs=2)
    assert resume_changes(saved, shrunk) == ["epochs: 3 -> 2"]
    other = TrainConfig(epochs=3)
    other.data.voc_dir = str(tmp_path / "." / "")
    other.optim.lr = 0.5
    assert resume_changes(saved, other) == ["optim.lr: 0.0001 -> 0.5"]
