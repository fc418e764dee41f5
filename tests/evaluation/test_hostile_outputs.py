"""Hostile outputs of `xray-seg bench` (issue 28): ``--out`` goes through the one output guard
(``core.fileio.prepare_output_file``), checked before the model is loaded."""

from __future__ import annotations

from pathlib import Path


def _scans(tmp_path: Path) -> Path:
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    return scans


def test_bench_out_over_an_input_image_is_refused(tmp_path, refused):
    scans = _scans(tmp_path)
    model = tmp_path / "run"
    model.mkdir()
    (model / "best_model.keras").write_bytes(b"model")
    out = scans / "x.png"
    for extra in ([], ["--force"]):
        refused(["bench", model, scans, "--out", out, *extra], str(out), "Fix:", "input", untouched=(tmp_path,))


def test_bench_out_inside_an_export_is_refused(tmp_path, refused):
    scans = _scans(tmp_path)
    savedmodel = tmp_path / "export" / "savedmodel"
    savedmodel.mkdir(parents=True)
    (savedmodel / "export.json").write_text('{"class_names": ["_background_", "gun"]}')
    out = savedmodel / "export.json"
    refused(
        ["bench", savedmodel, scans / "x.png", "--out", out, "--force"], "export.json", "Fix:", untouched=(tmp_path,)
    )


def test_bench_out_existing_file_needs_force(tmp_path, refused):
    scans = _scans(tmp_path)
    out = tmp_path / "bench.json"
    out.write_text("my notes")
    refused(["bench", tmp_path / "run", scans, "--out", out], "already exists", "--force", untouched=(tmp_path,))


def test_bench_out_naming_a_folder_is_refused(tmp_path, refused):
    scans = _scans(tmp_path)
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    refused(["bench", tmp_path / "run", scans, "--out", folder], "existing folder", untouched=(tmp_path,))
