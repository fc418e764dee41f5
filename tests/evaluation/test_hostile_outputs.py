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


# ----------------------------------------------------------------------------- --limit and split files


def test_limit_below_one_is_refused(tmp_path, refused):
    """`calibrate --limit 0` would write a "calibrated" rule from zero bags, `evaluate --limit 0`
    a 0-image report: both refused before the model is loaded, nothing written."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "best_model.keras").write_bytes(b"model")
    for command in ("calibrate", "evaluate"):
        for limit in ("0", "-3"):
            refused([command, run, tmp_path / "voc", "--limit", limit], f"--limit {limit}", "Fix:", untouched=(run,))
    assert sorted(p.name for p in run.iterdir()) == ["best_model.keras"]


def test_a_stem_listed_twice_in_a_split_is_refused(tiny_voc, tmp_path, refused):
    import shutil

    voc = tmp_path / "voc"
    shutil.copytree(tiny_voc, voc)
    val = voc / "ImageSets" / "Segmentation" / "val.txt"
    stems = val.read_text().split()
    val.write_text("\n".join([*stems, stems[0], stems[0]]) + "\n")
    refused(["data-stats", voc, "--split", "val"], "val.txt", stems[0], "Fix:", untouched=(voc,))
