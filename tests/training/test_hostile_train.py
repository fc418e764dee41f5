"""Hostile input to `xray-seg train` (issue 16): exit code, one line, inputs untouched, no run folder.

Bad settings and bad files stop the command before a run folder exists; a run folder that
overlaps the dataset is refused whatever --force says; --resume refuses any change that
would break exactness. Tiny runs: width 0.0625, 32 px, one step.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xray_seg.conversion.voc import VocLayout, read_split, save_label_png

TINY = [
    "--preset",
    "demo_cpu",
    "--set",
    "epochs=1",
    "--quiet",
    "--set",
    "model.width=0.0625",
    "--set",
    "data.image_size=32",
    "--set",
    "data.batch_size=4",
    "--set",
    "steps_per_epoch=1",
    "--set",
    "val_every=1",
    "--set",
    "num_val_images=0",
    "--set",
    "loss.type=ce",
    "--set",
    "data.cache=false",
]


@pytest.fixture
def voc(tiny_voc, tmp_path) -> Path:
    """A private copy of the tiny dataset, free to break."""
    return Path(shutil.copytree(tiny_voc, tmp_path / "voc"))


@pytest.fixture(scope="module")
def trained(tiny_voc, tmp_path_factory):
    """One finished tiny run (umask 022), for the resume and permission cases."""
    from xray_seg.cli import main

    run = tmp_path_factory.mktemp("trained") / "run"
    old = os.umask(0o022)
    try:
        assert main(["train", str(tiny_voc), "--run-dir", str(run), *TINY]) == 0
    finally:
        os.umask(old)
    return run


# ----------------------------------------------------------------------------- data loss


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_run_dir_overlapping_the_dataset_is_refused_even_with_force(voc, refused, where):
    run_dir = {"same": voc, "inside": voc / "run", "contains": voc.parent}[where]
    argv = ["train", voc, "--run-dir", run_dir, "--force", *TINY]
    refused(argv, "input", absent=["class_names.txt is missing"], untouched=[voc])
    assert not (voc / "run").exists()


@pytest.mark.parametrize(
    "flag, expect",
    [
        ("--data-set data.voc_dir=OTHER", "data.voc_dir"),
        ("--preset cwf_xray512", "model.width"),
        ("--lr 0.5", "optim.lr"),
        ("--batch-size 2", "data.batch_size"),
        ("--set seed=7", "seed"),
        ("--epochs 0", "epochs"),
    ],
)
def test_resume_refuses_changes_that_break_exactness(trained, tiny_voc, tmp_path, refused, flag, expect):
    flag = flag.split()
    if flag[0] == "--data-set":
        other = Path(shutil.copytree(tiny_voc, tmp_path / "other"))
        flag = [str(other)]
    refused(["train", *flag, "--resume", "--run-dir", trained], expect, "--resume", untouched=[trained])


def test_resume_may_grow_epochs_and_sweeps_orphaned_checkpoint_temporaries(trained, tiny_voc, tmp_path, cli):
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    orphan = run / "checkpoints" / ".last.weights.h5.k3x9_a2b.tmp.weights.h5"
    orphan.write_bytes(b"half a checkpoint")
    rc, _ = cli(["train", tiny_voc, "--resume", "--run-dir", run, "--epochs", "2", "--quiet"])
    assert rc == 0 and not orphan.exists()
    assert not (run / "checkpoints" / "interrupted.weights.h5").exists()


def test_run_files_honour_the_umask(trained):
    for name in [
        "config.yaml",
        "class_names.txt",
        "best_model.keras",
        "checkpoints/last.weights.h5",
        "checkpoints/state.json",
        ".xray-seg-output",
    ]:
        assert oct((trained / name).stat().st_mode & 0o777) == "0o644", name


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "flag, expect",
    [
        ("--batch-size 0", "data.batch_size=0"),
        ("--set data.batch_size=-2", "data.batch_size=-2"),
        ("--set optim.lr=-1", "optim.lr=-1"),
        ("--set model.width=0", "model.width=0"),
        ("--set epochs=0", "epochs=0"),
        ("--set data.image_size=[0,64]", "data.image_size"),
        ("--set loss.type=tversky", "loss.type"),
    ],
)
def test_bad_settings_are_one_line_and_leave_no_run_folder(voc, tmp_path, refused, flag, expect):
    run = tmp_path / "run"
    refused(["train", voc, "--run-dir", run, *TINY, *flag.split()], expect, absent=["no checkpoint"], untouched=[voc])
    assert not run.exists()


def test_one_number_is_a_square_image_size():
    from xray_seg.core.config import load_config
    from xray_seg.training.config import TrainConfig

    assert load_config(TrainConfig, None, ["data.image_size=64"]).data.image_size == (64, 64)


# ----------------------------------------------------------------------------- bad files


def _corrupt_idat(path: Path) -> None:
    """Flip bytes inside the compressed data and fix the chunk CRC (the CRC check passes)."""
    data = bytearray(path.read_bytes())
    pos = data.index(b"IDAT") - 4
    length = int.from_bytes(data[pos : pos + 4], "big")
    body = pos + 8
    for i in range(body + 2, body + min(length, 40)):
        data[i] ^= 0x5A
    crc = zlib.crc32(bytes(data[pos + 4 : body + length])) & 0xFFFFFFFF
    data[body + length : body + length + 4] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("case", ["label_out_of_range", "grey_mask", "corrupt_image_data"])
def test_bad_files_are_named_up_front_and_leave_no_run_folder(voc, tmp_path, refused, case, split):
    layout = VocLayout(voc)
    stem = read_split(voc, split)[0]
    if case == "label_out_of_range":
        bad = np.zeros((64, 64), np.uint8)
        bad[5:9, 5:9] = 7  # 6 classes: 7 is neither a class nor 255
        save_label_png(layout.mask_path(stem), bad)
        target, expect = layout.mask_path(stem), "outside 0..5"
    elif case == "grey_mask":
        Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1)), mode="L").save(layout.mask_path(stem))
        target, expect = layout.mask_path(stem), "outside 0..5"
    else:
        target, expect = layout.image_path(stem), "corrupt PNG data"
        _corrupt_idat(target)
    run = tmp_path / "run"
    refused(["train", voc, "--run-dir", run, *TINY], str(target), expect, untouched=[voc])
    assert not run.exists()


# ----------------------------------------------------------------------------- API = CLI


def _tiny_api_config(voc):
    from xray_seg.core.config import load_config
    from xray_seg.training.config import TrainConfig

    overrides = [item for item in TINY if item not in ("--set", "--preset", "demo_cpu", "--quiet")]
    return load_config(TrainConfig, "demo_cpu", overrides)


def test_api_and_cli_give_the_same_error_for_a_bad_label_met_mid_run(voc, tmp_path, cli, monkeypatch):
    """A TF error of the pipeline becomes the same one-line DatasetError through xray_seg.train()
    as through `xray-seg train`, and both remove the run folder they created (no epoch finished)."""
    import tensorflow as tf

    import xray_seg
    import xray_seg.training.trainer as trainer
    from xray_seg.core.errors import DatasetError

    mask = VocLayout(voc).mask_path(read_split(voc, "train")[0])

    def bad_label_in_graph(*args, **kwargs):
        assert (tmp_path / "cli").is_dir() or (tmp_path / "api").is_dir()  # the run folder exists by now
        raise tf.errors.InvalidArgumentError(
            None, None, f"xray_seg.DatasetError|{mask}|mask has label value(s) 7 outside 0..5|"
        )

    monkeypatch.setattr(trainer, "build_datasets", bad_label_in_graph)
    rc, line = cli(["train", voc, "--run-dir", tmp_path / "cli", *TINY])
    with pytest.raises(DatasetError) as api:
        xray_seg.train(_tiny_api_config(voc), voc, tmp_path / "api", verbose=0)
    assert rc == 2 and line == f"error: {api.value.message}"
    assert (
        api.value.message
        == f"{mask}: mask has label value(s) 7 outside 0..5. Fix: fix the mask or re-run `xray-seg convert`"
    )
    assert not (tmp_path / "cli").exists() and not (tmp_path / "api").exists()


def test_api_refuses_a_resume_that_changes_settings_as_the_cli_does(trained, tiny_voc, cli):
    import dataclasses

    import xray_seg
    from xray_seg.core.errors import ConfigError
    from xray_seg.training.trainer import resume_config

    saved = resume_config(trained)
    rc, line = cli(["train", "--resume", "--run-dir", trained, "--set", "seed=7"])
    with pytest.raises(ConfigError) as api:
        xray_seg.train(dataclasses.replace(saved, seed=7), None, trained, resume=True, verbose=0)
    assert rc == 2 and line == f"error: {api.value.message}" and "seed:" in line and "-> 7" in line
