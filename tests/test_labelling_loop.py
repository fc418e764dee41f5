"""The labelling loop of docs/labelling.md, tiny and end to end: train on what is labelled,
rank the rest, pre-annotate the chosen scans into a sub-folder of the Labelme folder, correct
them (here: the synthetic truth's shapes stand in for the annotator), convert with
``--resume --recursive`` (the earlier split kept), and train from the last run with ``--init``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from xray_seg.cli import build_parser, main


def _has_options(command: str, *options: str) -> bool:
    parser = build_parser()._subparsers._group_actions[0].choices[command]
    return all(option in parser._option_string_actions for option in options)


# The loop needs `predict --labelme --copy-images` and `train --init`, which arrive beside `rank`.
pytestmark = pytest.mark.skipif(
    not (_has_options("predict", "--labelme", "--copy-images") and _has_options("train", "--init")),
    reason="needs predict --labelme and train --init",
)

# One tiny epoch (width 0.0625, 64 px, one step), the test_python_api settings.
TRAIN = ["--preset", "demo_cpu", "--epochs", "1", "--batch-size", "4", "--set", "model.width=0.0625", "--quiet"]
TRAIN += ["--set", "data.image_size=[64,64]", "--set", "steps_per_epoch=1", "--set", "num_val_images=1"]


def _split(voc: Path) -> dict[str, str]:
    folder = voc / "ImageSets" / "Segmentation"
    return {stem: split for split in ("train", "val") for stem in (folder / f"{split}.txt").read_text().split()}


def _pool(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``my_labelme/`` (8 annotated bags), ``scans/`` (6 bare scans) and ``truth/`` (their JSON)."""
    from xray_seg.synthesis.scene import SynthConfig, synthesize

    pool = tmp_path / "pool"
    synthesize(pool, SynthConfig(size=64, num=14, seed=5, workers=1), progress=False)
    labelled, scans, truth = (tmp_path / name for name in ("my_labelme", "scans", "truth"))
    for folder in (labelled, scans, truth):
        folder.mkdir()
    shutil.copy(pool / "labels.txt", labelled / "labels.txt")
    for i, doc in enumerate(sorted(pool.glob("*.json"))):
        image = doc.with_suffix(".png")
        if i < 8:
            shutil.copy(doc, labelled / doc.name)
            shutil.copy(image, labelled / image.name)
        else:
            shutil.copy(doc, truth / doc.name)
            shutil.copy(image, scans / image.name)
    return labelled, scans, truth


def _correct(folder: Path, truth: Path) -> None:
    """The annotator: each pre-annotation's shapes replaced by the truth's, the file marked reviewed."""
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        doc["shapes"] = json.loads((truth / path.name).read_text())["shapes"]
        doc["flags"] = {**doc.get("flags", {}), "unreviewed": False}
        path.write_text(json.dumps(doc))


def test_the_labelling_loop_of_the_docs_runs(tmp_path):
    labelled, scans, truth = _pool(tmp_path)
    voc, run0, run1 = tmp_path / "my_voc", tmp_path / "runs/round0", tmp_path / "runs/round1"
    labels = str(labelled / "labels.txt")
    assert main(["convert", str(labelled), str(voc), "--labels", labels, "--workers", "1", "--quiet"]) == 0
    before = _split(voc)
    assert main(["train", str(voc), "--run-dir", str(run0), *TRAIN]) == 0

    ranked = tmp_path / "ranked/round1"
    assert main(["rank", str(run0), str(scans), "--out", str(ranked), "--n", "3", "--exclude", str(labelled)]) == 0
    chosen = (ranked / "to_label.txt").read_text().split()
    assert len(chosen) == 3 and all(Path(p).parent == scans for p in chosen)

    round1 = labelled / "round1"
    assert main(["predict", str(run0), *chosen, "--out", str(round1), "--labelme", "--copy-images"]) == 0
    assert sorted(p.stem for p in round1.glob("*.json")) == sorted(Path(p).stem for p in chosen)
    _correct(round1, truth)

    argv = ["convert", str(labelled), str(voc), "--labels", labels, "--resume", "--recursive", "--workers", "1"]
    assert main(argv) == 0
    after = _split(voc)
    assert {stem: after[stem] for stem in before} == before  # the earlier split is kept
    assert set(after) == set(before) | {Path(p).stem for p in chosen}

    assert main(["train", str(voc), "--run-dir", str(run1), "--init", str(run0), *TRAIN]) == 0
    assert (run1 / "best_model.keras").is_file()
    ranked2 = tmp_path / "ranked/round2"
    assert main(["rank", str(run1), str(scans), "--out", str(ranked2), "--n", "3", "--exclude", str(labelled)]) == 0
    again = (ranked2 / "to_label.txt").read_text().split()
    assert len(again) == 3 and not set(again) & set(chosen)  # round1's scans are labelled now
