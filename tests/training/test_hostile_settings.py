"""Issue 28: a section set to a scalar or list, and bad class-weights files, are one line and no run folder."""

from __future__ import annotations

import pytest

TINY = ["--preset", "demo_cpu", "--quiet", "--set", "epochs=1", "--set", "model.width=0.0625"]
TINY += ["--set", "data.image_size=32", "--set", "steps_per_epoch=1", "--set", "data.cache=false"]


@pytest.mark.parametrize(
    ("setting", "fix"),
    [("model=unet", "--set model.name=unet"), ("data=[1,2]", "--set data.")],
)
def test_a_section_set_to_a_value_is_refused(refused, tiny_voc, tmp_path, setting, fix):
    run = tmp_path / "run"
    line = refused(["train", tiny_voc, *TINY, "--set", setting, "--run-dir", run], untouched=[tiny_voc])
    assert not run.exists()
    assert repr(setting.split("=")[0]) in line and fix in line, line


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("null", "a list or a mapping"),
        ('"gun"', "a list or a mapping"),
        ('[1, 2, "x"]', "finite numbers >= 0"),
        ("[1, NaN, 1]", "finite numbers >= 0"),
        ("[1, -2, 1]", "finite numbers >= 0"),
        ('{"class_weights": [1, true, 1]}', "finite numbers >= 0"),
        ("[1, 2", "cannot read class weights"),
    ],
)
def test_bad_class_weights_file_is_refused_before_the_run_folder(refused, tiny_voc, tmp_path, content, text):
    weights = tmp_path / "weights.json"
    weights.write_text(content, encoding="utf-8")
    run = tmp_path / "run"
    argv = ["train", tiny_voc, *TINY, "--set", f"loss.class_weights={weights}", "--run-dir", run]
    refused(argv, str(weights), text, "data-stats --weights-out", untouched=[tiny_voc, weights])
    assert not run.exists()


def test_good_class_weights_files_pass(tmp_path):
    from xray_seg.training.config_checks import check_class_weights_file

    for content in ('{"class_weights": [0.5, 2, 1.25]}', '{"_background_": 0.5, "gun": 2}', "[1, 0, 3]"):
        (tmp_path / "w.json").write_text(content, encoding="utf-8")
        check_class_weights_file(tmp_path / "w.json")


@pytest.mark.parametrize(("content", "text"), [("[1]", "1 class weights for"), ('{"nope": 1}', "class weights miss")])
def test_class_weights_not_matching_the_classes_leave_no_run_folder(refused, tiny_voc, tmp_path, content, text):
    weights = tmp_path / "weights.json"
    weights.write_text(content, encoding="utf-8")
    run = tmp_path / "run"
    argv = ["train", tiny_voc, *TINY, "--set", f"loss.class_weights={weights}", "--run-dir", run]
    refused(argv, str(weights), text, untouched=[tiny_voc, weights])
    assert not run.exists()


def test_a_good_class_weights_file_trains(cli, tiny_voc, tmp_path):
    names = (tiny_voc / "class_names.txt").read_text(encoding="utf-8").split()
    weights = tmp_path / "weights.json"
    weights.write_text(str({"class_weights": [1.0] * len(names)}).replace("'", '"'), encoding="utf-8")
    run = tmp_path / "run"
    rc, line = cli(["train", tiny_voc, *TINY, "--set", f"loss.class_weights={weights}", "--run-dir", run])
    assert rc == 0, line
    assert (run / "config.yaml").is_file()
