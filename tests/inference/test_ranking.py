"""`xray-seg rank`: a deterministic pick that honours --exclude, streams 20,000 scans in bounded
memory, resumes after an interruption, and refuses bad input with one line.

A one-layer Keras model (any input size) stands in for a trained one in the command-line
tests; the streaming tests use a fake scorer, so no image is decoded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from _helpers import save_one_layer_model
from PIL import Image

from xray_seg.inference.acquisition import ScanScore, pixel_uncertainty, random_score, select_diverse
from xray_seg.inference.ranking import (
    PARTIAL_FILE,
    RANKING_FILE,
    TO_LABEL_FILE,
    RankSettings,
    rank_paths,
    read_partial,
)

CLASS_NAMES = ["_background_", "gun", "knife"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return save_one_layer_model(tmp_path_factory.mktemp("model") / "m", CLASS_NAMES)


@pytest.fixture
def scans(tmp_path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):  # air with one dark, noisy item somewhere
        bag = np.full((32, 48, 3), 245, np.uint8)
        y, x = rng.integers(0, 20), rng.integers(0, 36)
        bag[y : y + 12, x : x + 12] = rng.integers(0, 120, (12, 12, 3), dtype=np.uint8)
        Image.fromarray(bag).save(folder / f"bag{i}.png")
    return folder


def _labelme(folder: Path, *stems: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        doc = {"version": "5.0.1", "shapes": [], "imagePath": f"{stem}.png", "imageData": None}
        (folder / f"{stem}.json").write_text(json.dumps(doc))
    return folder


def _ranking(out: Path) -> list[dict]:
    with open(out / RANKING_FILE, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- the command


def test_rank_is_deterministic_and_honours_exclude(model_file, scans, tmp_path, cli, snapshot):
    labelled = _labelme(tmp_path / "labelme", "bag1", "bag5")
    voc = tmp_path / "voc"
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("bag2\n")
    snap = snapshot(scans, labelled, voc)
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        argv = ["rank", model_file, scans, "--out", out, "--n", "3", "--exclude", labelled, "--exclude", voc]
        rc, line = cli([*argv, "--strategy", "screening", "--quiet"])
        assert rc == 0, line
        outs.append(out)
    snap.assert_unchanged()
    rows = _ranking(outs[0])
    assert {r["stem"] for r in rows} == {"bag0", "bag3", "bag4", "bag6", "bag7"}
    assert [float(r["score"]) for r in rows] == sorted((float(r["score"]) for r in rows), reverse=True)
    assert all(abs(float(r["score"]) - (1 - float(r["alarm_margin"]))) < 1e-5 for r in rows)
    chosen = (outs[0] / TO_LABEL_FILE).read_text().splitlines()
    assert len(chosen) == 3 and all(Path(p).is_file() and Path(p).parent == scans for p in chosen)
    assert [Path(p).stem for p in chosen] == [r["stem"] for r in sorted(rows, key=lambda r: r["chosen"] or "9")][:3]
    for name in (RANKING_FILE, TO_LABEL_FILE):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
    sheet = Image.open(outs[0] / "to_label.png")
    assert sheet.size[0] > 100 and np.asarray(sheet).std() > 0
    assert not (outs[0] / PARTIAL_FILE).exists()


def test_random_strategy_depends_on_the_seed_only(model_file, scans, tmp_path):
    from xray_seg.cli import main

    picks = []
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        argv = ["rank", str(model_file), str(scans), "--out", str(tmp_path / name), "--seed", seed, "--n", "4"]
        argv += ["--strategy", "random", "--quiet", "--min-distance", "0"]
        assert main(argv) == 0
        picks.append((tmp_path / name / TO_LABEL_FILE).read_text())
    assert picks[0] == picks[1] != picks[2]


# ----------------------------------------------------------------------------- refusals


def test_n_of_zero_is_refused(model_file, scans, tmp_path, refused):
    refused(["rank", model_file, scans, "--out", tmp_path / "o", "--n", "0"], "--n 0", untouched=[scans])
    assert not (tmp_path / "o").exists()


def test_output_inside_the_scans_is_refused(model_file, scans, refused):
    refused(["rank", model_file, scans, "--out", scans / "ranked"], "lies inside the input", untouched=[scans])
    assert not (scans / "ranked").exists()


def test_model_without_class_names_is_refused(scans, tmp_path, refused):
    bare = save_one_layer_model(tmp_path / "bare", CLASS_NAMES, names_file=False)
    refused(["rank", bare, scans, "--out", tmp_path / "o"], "no class names", untouched=[scans])
    assert not (tmp_path / "o").exists()


def test_exclude_that_is_neither_labelme_nor_voc_is_refused(model_file, scans, tmp_path, refused):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    (other / "items.json").write_text('{"items": []}')  # a predict output, not annotations
    line = refused(["rank", model_file, scans, "--out", tmp_path / "o", "--exclude", other], "neither a VOC")
    assert str(other) in line and not (tmp_path / "o").exists()


def test_unreadable_scan_is_refused_by_name(model_file, scans, tmp_path, refused):
    (scans / "bag9.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    line = refused(["rank", model_file, scans, "--out", tmp_path / "o"], "bag9.png", untouched=[scans])
    assert "cannot read this scan" in line and not (tmp_path / "o").exists()


def test_a_scan_that_fails_to_decode_stops_the_run_and_the_rerun_continues(model_file, scans, tmp_path, refused):
    """Its header reads, its pixels do not: named, exit 2, the scans before it kept for the rerun."""
    data = (scans / "bag4.png").read_bytes()
    (scans / "bag4.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "o"
    line = refused(["rank", model_file, scans, "--out", out, "--quiet"], "bag4.png", "4 scans scored so far are kept")
    assert "cannot read this scan" in line
    assert sorted(Path(row[0]).stem for row in read_partial(out / PARTIAL_FILE)) == ["bag0", "bag1", "bag2", "bag3"]
    (scans / "bag4.png").unlink()
    from xray_seg import Segmenter

    report = Segmenter.load(model_file).rank(scans, out, n=2, progress=False)
    assert (report.resumed, report.scored, report.ranked) == (4, 3, 7)


# ----------------------------------------------------------------------------- streaming


class FakeScorer:
    """Scores a scan from its name alone (hashes of the stem), so no image is decoded."""

    def __init__(self, stop_after: int | None = None):
        self.calls = 0
        self.stop_after = stop_after

    def __call__(self, path: Path) -> ScanScore:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        stem = path.stem
        thumb = np.frombuffer(hashlib.shake_128(stem.encode()).digest(256), np.uint8).reshape(16, 16)
        alarm = random_score(stem, 3) < 0.3
        return ScanScore(random_score(stem, 1), random_score(stem, 2), alarm, ("gun",) if alarm else (), thumb)


def _names(count: int) -> list[Path]:
    return [Path(f"/belt/scan_{i:05d}.png") for i in range(count)]


def test_20000_scans_rank_in_bounded_memory(tmp_path):
    """Only scalars stay in memory per scan, and thumbnails of the best 20 n: under 1 KB a scan.

    (Keeping every 256-byte thumbnail and path as Python objects would pass 1 KB a scan; one
    64x64 RGB image a scan would be 12 KB.)"""
    names = _names(20_000)
    tracemalloc.start()
    try:
        report = rank_paths(names, FakeScorer(), tmp_path / "out", RankSettings(n=50), fingerprint={}, progress=False)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ranked == 20_000 and len(report.chosen) == 50
    assert peak < 20e6, f"peak {peak / 1e6:.1f} MB for 20,000 scans"
    assert len((tmp_path / "out" / TO_LABEL_FILE).read_text().splitlines()) == 50


def test_an_interrupted_run_continues_where_it_stopped(tmp_path):
    names, settings = _names(300), RankSettings(n=20)
    whole = rank_paths(names, FakeScorer(), tmp_path / "whole", settings, fingerprint={"m": 1}, progress=False)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        rank_paths(names, FakeScorer(stop_after=120), out, settings, fingerprint={"m": 1}, progress=False)
    assert len(list(read_partial(out / PARTIAL_FILE))) == 120
    with open(out / PARTIAL_FILE, "a") as f:
        f.write("/belt/scan_00999.png,scan_00999,0.5")  # a row cut by a kill
    second = FakeScorer()
    report = rank_paths(names, second, out, settings, fingerprint={"m": 1}, progress=False)
    assert second.calls == 180 and report.resumed == 120 and report.chosen == whole.chosen
    assert (out / RANKING_FILE).read_bytes() == (tmp_path / "whole" / RANKING_FILE).read_bytes()


def test_an_unfinished_run_of_another_model_is_not_mixed_in(tmp_path):
    from xray_seg.core.errors import OutputExistsError

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        rank_paths(_names(50), FakeScorer(stop_after=10), out, RankSettings(n=5), fingerprint={"m": 1}, progress=False)
    with pytest.raises(OutputExistsError, match="unfinished ranking"):
        rank_paths(_names(50), FakeScorer(), out, RankSettings(n=5), fingerprint={"m": 2}, progress=False)
    report = rank_paths(_names(50), FakeScorer(), out, RankSettings(n=5), fingerprint={"m": 2}, force=True)
    assert report.resumed == 0 and report.scored == 50


def test_a_finished_ranking_is_not_overwritten_without_force(tmp_path):
    from xray_seg.core.errors import OutputExistsError

    out = tmp_path / "out"
    rank_paths(_names(30), FakeScorer(), out, RankSettings(n=5), fingerprint={}, progress=False)
    before = (out / RANKING_FILE).read_bytes()
    with pytest.raises(OutputExistsError):
        rank_paths(_names(30), FakeScorer(), out, RankSettings(n=3), fingerprint={}, progress=False)
    assert (out / RANKING_FILE).read_bytes() == before


# ----------------------------------------------------------------------------- the scores


def test_diverse_pick_skips_near_duplicates_and_fills_up():
    base = np.full((16, 16), 100, np.uint8)
    other = np.full((16, 16), 200, np.uint8)
    candidates = [("a", base), ("a2", base + 2), ("b", other), ("a3", base + 1)]
    chosen, near = select_diverse(candidates, 2, min_distance=0.03)
    assert chosen == ["a", "b"] and near == {"a2": "a"}
    chosen, near = select_diverse(candidates, 3, min_distance=0.03)
    assert chosen == ["a", "b", "a2"] and near == {"a3": "a"}
    assert select_diverse(candidates, 3, min_distance=0)[0] == ["a", "a2", "b"]


def test_pixel_uncertainty_reads_the_least_certain_pixels():
    sure = np.zeros((20, 20, 3), np.float32)
    sure[..., 0] = 1
    assert pixel_uncertainty(sure) < 1e-6
    doubtful = sure.copy()
    doubtful[:3, :3] = 1 / 3  # 9 of 400 pixels (2 %) completely unsure
    assert pixel_uncertainty(doubtful) == pytest.approx(9 / 20, abs=1e-4)  # 20 pixels averaged
    assert random_score("bag1", 0) == random_score("bag1", 0) != random_score("bag1", 1)
