"""``evaluate --subset`` and the per-subset table (xray_seg/evaluation/subsets.py) on a tiny synthetic VOC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def flagged_voc(tmp_path_factory) -> Path:
    """16 bags of 64 px at default difficulty (threat_prob 0.7), 8 in val: 3 hidden, 2 small, 3 clean."""
    from xray_seg.conversion.convert import ConvertConfig, convert
    from xray_seg.synthesis.scene import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("flagged")
    synthesize(root / "lm", SynthConfig(size=64, num=16, seed=3, threat_prob=0.7, workers=1), progress=False)
    convert(root / "lm", root / "voc", ConvertConfig(labels=str(root / "lm" / "labels.txt"), workers=1, val_ratio=0.5))
    return root / "voc"


@pytest.fixture(scope="module")
def run_dir(flagged_voc, tmp_path_factory) -> Path:
    """A run folder with a 1x1-conv "segmenter": enough to give varied components and scores."""
    import keras

    from xray_seg.conversion.voc import read_class_names

    names = read_class_names(flagged_voc)
    keras.utils.set_random_seed(1)
    run = tmp_path_factory.mktemp("run")
    inputs = keras.Input((64, 64, 3))
    logits = keras.layers.Conv2D(len(names), 1)(keras.layers.Rescaling(1 / 32.0, -4)(inputs))
    keras.Model(inputs, logits).save(run / "best_model.keras")
    (run / "class_names.txt").write_text("\n".join(names) + "\n")
    return run


@pytest.fixture(scope="module")
def full(run_dir, flagged_voc, tmp_path_factory):
    from xray_seg.evaluation.evaluator import evaluate

    out = tmp_path_factory.mktemp("full") / "eval"
    return evaluate(run_dir, flagged_voc, split="val", out_dir=out, progress=False)


def val_groups(voc):
    from xray_seg.conversion.voc import read_split, read_subsets
    from xray_seg.evaluation.subsets import threat_free

    val = read_split(voc, "val")
    subsets = {k: [s for s in v if s in val] for k, v in read_subsets(voc).items()}
    return val, subsets, [s for s in val if threat_free(voc, s)]


def test_the_fixture_has_every_kind_of_bag_in_val(flagged_voc):
    _, subsets, clean = val_groups(flagged_voc)
    assert (len(subsets["hidden"]), len(subsets["small"]), len(subsets["clean"])) == (3, 2, 3)
    assert sorted(subsets["clean"]) == sorted(clean)  # synth's clean flag is the masks' threat-free bags


def test_subset_evaluation_follows_the_rule(run_dir, flagged_voc, full, tmp_path):
    """Pixels of the subset's images only; PD on its threat bags; PFA on all the split's clean bags."""
    from xray_seg.evaluation.alarms import screening_report
    from xray_seg.evaluation.evaluator import evaluate
    from xray_seg.evaluation.metrics import confusion_matrix, segmentation_scores

    val, subsets, clean = val_groups(flagged_voc)
    result = evaluate(run_dir, flagged_voc, split="val", subset="hidden", out_dir=tmp_path / "e", progress=False)
    hidden = subsets["hidden"]
    assert result.num_images == len(hidden) == result.extra["images"]
    assert sorted(result.screening.stems) == sorted(set(hidden) | set(clean))  # only the bags the rule needs

    # pixel metrics: one confusion matrix over the hidden images, recomputed here from the predictions
    from xray_seg.conversion.voc import load_label_png
    from xray_seg.core.images import read_image_rgb
    from xray_seg.core.layouts import VocLayout
    from xray_seg.inference.loader import load_for_inference
    from xray_seg.inference.tta import predict_probabilities

    loaded = load_for_inference(run_dir)
    layout = VocLayout(flagged_voc)
    k = len(loaded.class_names)
    cm = np.zeros((k, k), np.int64)
    for stem in hidden:
        probs = predict_probabilities(loaded.logits_fn, read_image_rgb(layout.image_path(stem)), input_size=(64, 64))
        cm += confusion_matrix(load_label_png(layout.mask_path(stem)), probs.argmax(-1), k)
    expected = segmentation_scores(cm, loaded.class_names)
    assert result.scores["miou"] == pytest.approx(expected["miou"])
    assert result.scores["confusion_matrix"] == expected["confusion_matrix"]

    # bag figures: from the full-split pass, the hidden bags plus every clean bag of val
    scores, truth = full.screening.bag_arrays()
    keep = np.array([s in hidden or s in clean for s in full.screening.stems])
    by_hand = screening_report(scores[keep], truth[keep], full.screening.rule)
    summary = result.extra["screening"]
    assert summary["pd_at_pfa"] == by_hand["pd_at_pfa"]
    assert summary["at_thresholds"]["clean_bags"] == len(clean) == 3
    assert summary["at_thresholds"]["threat_bags"] == len(hidden)
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["subset"] == "hidden" and "PFA on all threat-free bags" in metrics["subset_rule"]


def test_the_full_report_has_a_row_per_subset(full, flagged_voc, run_dir, tmp_path):
    from xray_seg.evaluation.evaluator import evaluate

    table = full.extra["subsets"]
    assert list(table) == ["all", "clean", "hidden", "small"]
    _, subsets, clean = val_groups(flagged_voc)
    assert table["all"]["miou"] == pytest.approx(full.scores["miou"])
    assert table["all"]["pd_at_pfa"] == full.extra["screening"]["pd_at_pfa"]["overall"]
    assert table["clean"]["threat_bags"] == 0 and table["clean"]["pfa_clean_bags"] == 3
    assert table["clean"]["pd_at_pfa"]["0.05"] is None  # no threat bag: no PD
    # the table's row is what `--subset small` measures on its own
    alone = evaluate(run_dir, flagged_voc, split="val", subset="small", progress=False)
    assert table["small"]["images"] == alone.num_images == len(subsets["small"])
    assert table["small"]["miou"] == pytest.approx(alone.scores["miou"])
    assert table["small"]["pd_at_pfa"] == alone.extra["screening"]["pd_at_pfa"]["overall"]
    report = (full.out_dir / "report.md").read_text()
    assert "## Subsets (image flags)" in report and "| hidden |" in report and "PD@PFA 5% (%)" in report
    assert set(json.loads((full.out_dir / "metrics.json").read_text())["subsets"]) == set(table)


def test_unknown_or_empty_subsets_are_one_line_errors(run_dir, flagged_voc, cli):
    rc, line = cli(["evaluate", str(run_dir), str(flagged_voc), "--subset", "occluded"])
    assert rc == 2 and "no subset 'occluded'" in line and "clean, hidden, small" in line
    val, subsets, _ = val_groups(flagged_voc)
    first = {name: min(val.index(s) for s in stems) for name, stems in subsets.items() if stems}
    name = max(first, key=first.get)
    assert first[name] > 0
    limit = str(first[name])  # --limit takes the first images of the split, then the subset
    rc, line = cli(["evaluate", str(run_dir), str(flagged_voc), "--subset", name, "--limit", limit])
    assert rc == 2 and "has no image in split 'val'" in line


def test_cli_writes_beside_the_split_folder(run_dir, flagged_voc, cli):
    rc, _ = cli(["evaluate", str(run_dir), str(flagged_voc), "--subset", "small", "--force"])
    assert rc == 0
    metrics = json.loads((run_dir / "eval-val-small" / "metrics.json").read_text())
    assert metrics["subset"] == "small" and metrics["images"] == 2


def test_no_table_when_no_subset_has_an_evaluated_image(full, flagged_voc):
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.evaluation.subsets import subset_table

    names = read_class_names(flagged_voc)
    val, subsets, _ = val_groups(flagged_voc)
    plain = [s for s in val if not any(s in stems for stems in subsets.values())]
    assert plain  # threat bags in plain view, neither hidden nor small
    per_image = {s: np.zeros((len(names), len(names)), np.int64) for s in plain}
    assert subset_table(flagged_voc, per_image, full.screening, names) == {}
