"""The README's "Your own scans" block runs as written, on a tiny Labelme folder.

Every ``xray-seg`` line of the block is run in order through :func:`xray_seg.cli.main`, in a
folder laid out as the block expects (``scans/`` with Labelme JSON, ``labels.txt``). Only the
``labelme`` line (the annotation GUI) is skipped, and sizes are made tiny with options the
same commands take, appended after the README's own: ``--set`` for training, ``--size`` and
``--n`` for ``show-batch``, ``--tflite-runs`` for the export. The block ends with
``predict ... --engine openvino``, so the export it shows must write what that engine needs.
"""

from __future__ import annotations

import json
import shutil

import pytest
from test_readme import README, command_argv, fenced_blocks, logical_lines

from xray_seg.cli import main

pytest.importorskip("tensorflow")

TINY = {
    "show-batch": ["--size", "64", "--n", "2"],
    "train": [
        *("--set", "epochs=1", "--set", "model.width=0.0625", "--set", "data.image_size=64"),
        *("--set", "data.batch_size=4", "--set", "steps_per_epoch=1", "--set", "loss.type=ce"),
        *("--set", "num_val_images=0", "--set", "data.cache=false", "--quiet"),
    ],
    "export": ["--tflite-runs", "1"],
}


def own_scans_block() -> list[str]:
    """The logical lines of the README block that starts with the labelme GUI."""
    for block in fenced_blocks(README.read_text(encoding="utf-8")):
        lines = logical_lines(block)
        if any(line.startswith("labelme scans/") for line in lines):
            return lines
    raise AssertionError("README.md has no block starting from `labelme scans/`")


def test_the_own_scans_block_ends_with_the_openvino_engine():
    argvs = [command_argv(line) for line in own_scans_block()]
    argvs = [a for a in argvs if a is not None]
    assert argvs[-1][:1] == ["predict"] and "openvino" in argvs[-1]
    export = next(a for a in argvs if a[0] == "export")
    assert "--format" in export, "the default export writes no ONNX/OpenVINO; the README must ask for them"


def test_the_own_scans_block_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    pytest.importorskip("tf2onnx")
    from xray_seg.synthesis.scene import SynthConfig, synthesize

    synthesize(tmp_path / "scans", SynthConfig(size=64, num=12, seed=3, workers=1, threat_prob=0.6), progress=False)
    shutil.copy(tmp_path / "scans" / "labels.txt", tmp_path / "labels.txt")
    monkeypatch.chdir(tmp_path)
    ran = []
    for line in own_scans_block():
        argv = command_argv(line)
        if argv is None:
            assert line.split()[0] in ("labelme", "pip"), line  # the GUI; nothing else is skipped
            continue
        rc = main([*argv, *TINY.get(argv[0], [])])
        assert rc == 0, f"README line failed (rc {rc}): {line}"
        ran.append(argv[0])
    assert ran == [
        "convert",
        "data-stats",
        "show-batch",
        "train",
        "evaluate",
        "calibrate",
        "export",
        "predict",
        "predict",
    ]
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text(encoding="utf-8"))
    assert {"savedmodel", "onnx", "openvino"} <= set(manifest)
    scans = sorted(p.stem for p in (tmp_path / "scans").glob("*.png"))
    for out in ("predictions", "predictions-ov"):
        assert sorted(p.name for p in (tmp_path / out).glob("*_mask.png")) == [f"{s}_mask.png" for s in scans]
