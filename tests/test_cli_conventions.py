"""CLI conventions (issue 29): no abbreviated options, "did you mean", the subcommand's usage on
an option typo, one ``error:`` line and exit 2; a missing input is refused before any output."""

from __future__ import annotations

import argparse

import pytest

from xray_seg.cli import build_parser, main, parse


def test_an_abbreviated_option_is_refused(refused):
    refused(["predict", "m", "scans", "--out", "o", "--engin", "onnx"], "unrecognized arguments: --engin", "'--engine'")


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["trian"], "Did you mean 'train'?"),
        (["train", "--epoch", "3"], "Did you mean '--epochs'?"),
        (["predict", "m", "x", "--out", "o", "--engine", "onx"], "Did you mean 'onnx'?"),
        (["cyclegan", "trian"], "Did you mean 'train'?"),
    ],
)
def test_typos_get_a_did_you_mean(refused, argv, hint):
    refused(argv, hint)


def test_an_option_typo_prints_its_subcommands_usage(cli, capsys):
    rc, line = cli(["train", "--quiett"])
    assert rc == 2 and line == "error: xray-seg train: unrecognized arguments: --quiett. Did you mean '--quiet'?"
    assert main(["train", "--quiett"]) == 2
    assert capsys.readouterr().err.startswith("usage: xray-seg train ")


def test_every_parser_refuses_abbreviations():
    parser = build_parser()
    stack = [parser]
    while stack:
        p = stack.pop()
        assert p.allow_abbrev is False, p.prog
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack += list(action.choices.values())
    args = parse(parser, ["train", "--epochs", "3"])
    assert args.epochs == 3


def test_predict_on_a_missing_folder_is_refused_before_any_output(refused, tmp_path):
    out = tmp_path / "pred"
    refused(["predict", tmp_path / "model.keras", tmp_path / "no_such_folder", "--out", out], "input not found")
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--set", "epochz=3"], "--set epochs=3"),
        (["--set", "data.augment.rotat=false"], "--set data.augment.rotate=false"),
        (["--set", "epochs"], "--set epochs=10"),
    ],
)
def test_a_set_typo_is_refused_before_tensorflow_with_a_hint_that_works(refused, argv, hint):
    import sys

    had_tf = "tensorflow" in sys.modules
    line = refused(["train", "data/voc", "--preset", "demo_cpu", *argv], hint)
    assert had_tf or "tensorflow" not in sys.modules  # refused while the command line is read
    fixed = hint.split("?")[0].split(" ")
    args = parse(build_parser(), ["train", "data/voc", *fixed])
    assert args.overrides == [fixed[1]], line


def test_set_accepts_free_form_model_options():
    args = parse(build_parser(), ["train", "--set", "model.options.width=0.5", "--set", "data.batch_size=2"])
    assert args.overrides == ["model.options.width=0.5", "data.batch_size=2"]
