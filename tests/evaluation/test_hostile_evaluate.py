"""Hostile output paths for evaluate, compare, show-batch and data-stats (issue 16): an output
that is, contains or lies inside the dataset is refused whatever --force says."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    import keras

    run = tmp_path_factory.mktemp("evalrun") / "run"
    run.mkdir()
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(6, 1)(inputs)).save(run / "best_model.keras")
    return run


def _class_names(run, voc):
    (run / "class_names.txt").write_text((voc / "class_names.txt").read_text())


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_evaluate_out_overlapping_the_dataset_is_refused(run_folder, tiny_voc, cli, snapshot, where):
    _class_names(run_folder, tiny_voc)
    snap = snapshot(tiny_voc)
    out = {"same": tiny_voc, "inside": tiny_voc / "eval", "contains": tiny_voc.parent}[where]
    rc, line = cli(["evaluate", run_folder, tiny_voc, "--out", out, "--force"])
    assert rc == 2 and "input" in line
    snap.assert_unchanged()


def test_evaluate_may_write_inside_the_run_folder_but_not_over_it(run_folder, tiny_voc, cli, snapshot):
    _class_names(run_folder, tiny_voc)
    snap = snapshot(run_folder)
    rc, line = cli(["evaluate", run_folder, tiny_voc, "--out", run_folder, "--force"])
    assert rc == 2 and "is the input" in line
    snap.assert_unchanged()
    assert cli(["evaluate", run_folder, tiny_voc, "--limit", "1"])[0] == 0  # default: run/eval-val
    assert (run_folder / "eval-val" / "metrics.json").is_file()


def test_show_batch_never_overwrites_a_dataset_file(tiny_voc, cli, snapshot):
    snap = snapshot(tiny_voc)
    target = next((tiny_voc / "JPEGImages").iterdir())
    rc, line = cli(["show-batch", tiny_voc, "--out", target, "--force"])
    assert rc == 2 and "output file" in line
    snap.assert_unchanged()


def test_data_stats_never_overwrites_a_dataset_file(tiny_voc, cli, snapshot):
    snap = snapshot(tiny_voc)
    rc, line = cli(["data-stats", tiny_voc, "--weights-out", tiny_voc / "class_names.txt", "--force"])
    assert rc == 2 and "--weights-out file" in line
    snap.assert_unchanged()


def test_compare_out_containing_the_dataset_is_refused(tiny_voc, cli, snapshot):
    snap = snapshot(tiny_voc)
    rc, line = cli(["compare", "--data", tiny_voc, "--out", tiny_voc.parent, "--force", "--models", "unet"])
    assert rc == 2 and "contains the input" in line
    snap.assert_unchanged()
