"""Where ``calibrate`` and ``evaluate`` write, through the one output guard (core/fileio):
a user's file is never replaced, ``--force`` replaces only our own outputs, an output inside
the dataset is refused, and each refusal comes before the slow work, with nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_screening_eval import make_run  # noqa: E402


@pytest.fixture(scope="module")
def run(tiny_voc, tmp_path_factory):
    from xray_seg.conversion.voc import read_class_names

    return make_run(tmp_path_factory.mktemp("calibrate_outputs") / "run", read_class_names(tiny_voc))


def _calibrate(model, voc):
    return ["calibrate", model, voc, "--split", "val", "--limit", "2"]


def test_a_users_alarm_thresholds_json_is_never_replaced(run, tiny_voc, refused):
    (run / "alarm_thresholds.json").write_text('{"note": "my own thresholds, by hand"}\n')
    try:
        refused(_calibrate(run, tiny_voc), "alarm_thresholds.json", "not written by calibrate", untouched=(run,))
    finally:
        (run / "alarm_thresholds.json").unlink()


def test_alarm_thresholds_json_that_is_a_folder_is_refused(run, tiny_voc, refused):
    (run / "alarm_thresholds.json").mkdir()
    (run / "alarm_thresholds.json" / "keep.txt").write_text("keep")
    try:
        refused(_calibrate(run, tiny_voc), "alarm_thresholds.json", "folder", untouched=(run,))
    finally:
        (run / "alarm_thresholds.json" / "keep.txt").unlink()
        (run / "alarm_thresholds.json").rmdir()


def test_a_model_inside_the_dataset_would_write_into_it_and_is_refused(tiny_voc, tmp_path, refused):
    import shutil

    from xray_seg.conversion.voc import read_class_names

    voc = tmp_path / "voc"
    shutil.copytree(tiny_voc, voc)
    inside = make_run(voc / "model", read_class_names(voc))
    refused(_calibrate(inside, voc), "lies inside the input", str(voc), untouched=(voc,))
    assert not (inside / "alarm_thresholds.json").exists()


def test_calibrate_replaces_its_own_rule(run, tiny_voc, cli):
    for target_pfa in ("0.5", "0.0"):
        assert cli([*_calibrate(run, tiny_voc), "--target-pfa", target_pfa])[0] == 0
        rule = json.loads((run / "alarm_thresholds.json").read_text())
        assert rule["calibrated"] and rule["calibration"]["target_pfa"] == float(target_pfa)
    (run / "alarm_thresholds.json").unlink()


def test_evaluate_out_never_replaces_a_users_file_or_folder(run, tiny_voc, tmp_path, refused):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    base = ["evaluate", run, tiny_voc, "--limit", "1", "--force", "--out"]
    refused([*base, notes], str(notes), untouched=(notes,))
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.md").write_text("my report")
    refused([*base, folder], "did not create", untouched=(folder,))


def test_evaluate_force_replaces_only_its_own_output(run, tiny_voc, tmp_path, cli, refused):
    out = tmp_path / "eval"
    argv = ["evaluate", run, tiny_voc, "--limit", "1", "--out", out]
    assert cli(argv)[0] == 0 and (out / "metrics.json").is_file()
    refused(argv, "already exists", "--force", untouched=(out,))
    (out / "metrics.json").write_text("{}")
    assert cli([*argv, "--force"])[0] == 0
    assert json.loads((out / "metrics.json").read_text())["miou"] >= 0


def test_evaluate_out_inside_the_dataset_is_refused_before_the_model_loads(tiny_voc, tmp_path, refused):
    """The guard runs before the model is loaded: a model folder that is not even a model is not reached."""
    refused(
        ["evaluate", tmp_path / "no_model_here", tiny_voc, "--out", tiny_voc / "eval", "--force"],
        "inside the input",
        untouched=(tiny_voc,),
        absent=("not a model",),
    )
