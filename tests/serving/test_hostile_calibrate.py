"""Issue 28, the export side: ``calibrate EXPORT`` rebuilds every SavedModel variant from the
digest-checked source, swapped into place; a tampered ``export.json`` is one line, exit 2."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from test_screening_eval import make_run  # noqa: E402

from xray_seg.cli import main  # noqa: E402

VARIANTS = ("savedmodel", "savedmodel_optimized")


@pytest.fixture(scope="module")
def exported(tiny_voc, tmp_path_factory):
    """``(run, export)``: a tiny run exported with both SavedModel variants (one per module: slow)."""
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.serving.exporter import export_model

    base = tmp_path_factory.mktemp("hostile_calibrate")
    run = make_run(base / "run", read_class_names(tiny_voc))
    export_model(run, base / "export", formats=VARIANTS, progress=False)
    return run, base / "export"


def _meta(export: Path) -> dict:
    return json.loads((export / "savedmodel" / "export.json").read_text())


def test_export_names_its_source_absolutely_with_a_digest(exported):
    import hashlib

    run, export = exported
    meta = _meta(export)
    assert meta["source"] == str((run / "best_model.keras").resolve())
    assert meta["source_sha256"] == hashlib.sha256((run / "best_model.keras").read_bytes()).hexdigest()


def test_calibrate_updates_every_savedmodel_variant(exported, tiny_voc):
    _, export = exported
    argv = ["calibrate", export, tiny_voc, "--split", "train", "--target-pfa", "0.0", "--min-area", "60"]
    assert main([str(a) for a in argv]) == 0
    meta = _meta(export)
    assert meta["alarm"]["calibrated"] and meta["alarm"]["min_area"][1:] == [60] * (len(meta["class_names"]) - 1)
    for variant in VARIANTS:
        assert json.loads((export / variant / "export.json").read_text())["alarm"] == meta["alarm"]
        info = tf.saved_model.load(str(export / variant)).signatures["model_info"]()
        np.testing.assert_allclose(info["alarm_thresholds"].numpy(), meta["alarm"]["thresholds"], rtol=1e-6)
        assert list(info["alarm_min_area"].numpy()) == meta["alarm"]["min_area"]
    assert sorted(p.name for p in export.iterdir() if p.name.startswith(".")) in ([], [".xray-seg-output"])


def test_calibrate_refuses_a_source_that_is_another_model(exported, tiny_voc, tmp_path, refused):
    """Another model at the recorded path (or a path moved to one): the digest differs -> exit 2."""
    run, export = exported
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    other = make_run(tmp_path / "other", (run / "class_names.txt").read_text().split(), seed=7)
    for variant in VARIANTS:
        meta_file = copy / variant / "export.json"
        meta = json.loads(meta_file.read_text())
        meta["source"] = str(other / "best_model.keras")
        meta_file.write_text(json.dumps(meta))
    argv = ["calibrate", copy, tiny_voc, "--split", "train"]
    refused(argv, "SHA-256", str(other / "best_model.keras"), "Fix:", untouched=(copy, other))
    scan = next((tiny_voc / "JPEGImages").iterdir())
    argv = ["predict", copy, scan, "--engine", "keras", "--out", tmp_path / "pred"]
    refused(argv, "SHA-256", "Fix:", untouched=(copy, other))
    assert not (tmp_path / "pred").exists()


def _tamper(meta: dict, case: str):
    alarm = meta["alarm"]
    if case == "nan_thresholds":
        alarm["thresholds"] = [float("nan")] * len(alarm["thresholds"])
    elif case == "class_name_short":
        meta["class_names"] = meta["class_names"][:-1]
    elif case == "alarm_without_names":
        del alarm["class_names"]
    elif case == "short_thresholds":
        alarm["thresholds"] = alarm["thresholds"][:-1]
    elif case == "overlap_1":
        meta["geometry"]["overlap"] = 1.0
    elif case == "list":
        return json.dumps([meta])
    return json.dumps(meta)


CASES = ["nan_thresholds", "class_name_short", "alarm_without_names", "short_thresholds", "overlap_1", "list"]


@pytest.mark.parametrize("case", [*CASES, "truncated"])
def test_tampered_export_json_is_one_line(exported, tiny_voc, tmp_path, refused, case):
    _, export = exported
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    meta_file = copy / "savedmodel" / "export.json"
    text = meta_file.read_text()
    meta_file.write_text(text[: len(text) // 2] if case == "truncated" else _tamper(json.loads(text), case))
    scan = next((tiny_voc / "JPEGImages").iterdir())
    argv = ["predict", copy / "savedmodel", scan, "--out", tmp_path / "pred"]
    refused(argv, "export.json", "Fix:", "xray-seg export", untouched=(copy,))
    assert not (tmp_path / "pred").exists()
    refused(["calibrate", copy, tiny_voc, "--split", "train"], "export.json", "Fix:", untouched=(copy,))


def test_validation_accepts_a_whole_export_json(exported):
    from xray_seg.inference.export_file import read_export_json

    _, export = exported
    for variant in VARIANTS:
        assert read_export_json(export / variant / "export.json")["class_names"]


def test_export_force_keeps_the_old_export_whole_until_the_new_one_is_complete(
    tiny_voc, tmp_path, monkeypatch, refused
):
    """A failed `export --force` leaves the old export byte-identical (it was deleted first before);
    a finished one is swapped in whole, its manifest naming the final folder, nothing left beside."""
    import xray_seg.serving.exporter as exporter
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.core.errors import ModelError

    run = make_run(tmp_path / "run", read_class_names(tiny_voc))
    out = tmp_path / "export"
    argv = ["export", run, "--out", out, "--format", "savedmodel", "--force"]
    assert main([str(a) for a in argv[:-1]]) == 0

    def broken(*args, **kwargs):
        raise ModelError("verification failed (injected)", path=out, fix="none")

    with monkeypatch.context() as patch:
        patch.setattr(exporter, "verify_savedmodel", broken)
        refused(argv, "injected", untouched=(out,))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "run"]
    assert main([str(a) for a in argv]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "run"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["savedmodel"]["path"] == str(out / "savedmodel")


def test_a_savedmodel_left_aside_by_a_killed_calibrate_is_named_with_the_fix(exported, tiny_voc, tmp_path, refused):
    _, export = exported
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    (copy / "savedmodel").rename(copy / ".savedmodel.before-calibration")
    scan = next((tiny_voc / "JPEGImages").iterdir())
    for model in (copy, copy / "savedmodel"):
        argv = ["predict", model, scan, "--out", tmp_path / "pred"]
        refused(argv, ".savedmodel.before-calibration", "mv ", "interrupted calibrate", untouched=(copy,))
