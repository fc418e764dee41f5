"""evaluate writes the screening figures (objects, PD/PFA, ROC) and a self-contained report.html."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")


def make_run(run_dir: Path, class_names, size=64, seed=1) -> Path:
    """A run folder holding a tiny 1x1-conv "segmenter" (enough to give components and scores)."""
    import keras

    keras.utils.set_random_seed(seed)
    run_dir.mkdir(parents=True)
    inputs = keras.Input((size, size, 3))
    logits = keras.layers.Conv2D(len(class_names), 1)(keras.layers.Rescaling(1 / 32.0, -4)(inputs))
    model = keras.Model(inputs, logits)
    model.save(run_dir / "best_model.keras")
    (run_dir / "class_names.txt").write_text("\n".join(class_names) + "\n")
    return run_dir


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.srcs.append(attrs.get("src", ""))
        if tag in ("link", "script") and (attrs.get("href") or attrs.get("src")):
            self.links.append(attrs)


def check_html_self_contained(path: Path) -> int:
    parser = _Images()
    parser.feed(path.read_text(encoding="utf-8"))
    assert parser.srcs and not parser.links
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,"), src[:40]
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    return len(parser.srcs)


def test_evaluate_writes_screening_outputs(tiny_voc, tmp_path):
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.evaluation.evaluator import evaluate

    names = read_class_names(tiny_voc)
    run = make_run(tmp_path / "run", names)
    result = evaluate(run, tiny_voc, split="train", out_dir=tmp_path / "eval", progress=False)
    out = tmp_path / "eval"
    for name in (
        "metrics.json",
        "report.md",
        "confusion_matrix.png",
        "screening.json",
        "roc.json",
        "roc.png",
        "report.html",
    ):
        assert (out / name).is_file(), name
    assert "screening" not in json.loads((out / "metrics.json").read_text())  # the existing output is unchanged
    summary = json.loads((out / "screening.json").read_text())
    assert summary["objects"]["images"] == result.num_images == 8
    # the converter writes SegmentationObject/ (instance ids), so ground-truth objects come from it
    assert summary["objects"]["gt_source"] == {"SegmentationObject": 8}
    assert set(summary["roc"]) == set(names[1:]) | {"overall"}
    assert set(summary["pd_at_pfa"]["overall"]) == {"0.01", "0.05", "0.1"}
    assert not summary["rule"]["calibrated"]
    roc = json.loads((out / "roc.json").read_text())
    assert roc["roc"]["overall"]["pd"][0] == 0 and roc["roc"]["overall"]["pd"][-1] == 1
    assert "## Screening" in (out / "report.md").read_text()
    assert check_html_self_contained(out / "report.html") >= 1
    scores, truth = result.screening.bag_arrays()
    assert scores.shape == truth.shape == (8, len(names))


def test_compare_tables_gain_screening_columns():
    from xray_seg.training.compare_report import aggregate, table3_rows

    base = {
        "miou": 0.5,
        "mpa": 0.6,
        "pa": 0.9,
        "fps": 10.0,
        "params_m": 1.0,
        "gflops": 0.2,
        "iou": [0.9, 0.1],
        "class_pa": [0.9, 0.3],
        "class_names": ["_background_", "gun"],
    }
    stats = aggregate(
        {"unet": [dict(base, pd_at_pfa5=0.8, map50=0.4), dict(base, pd_at_pfa5=None, map50=0.6)], "old": [base]}
    )  # a record from before the columns existed
    assert stats["table3"]["unet"]["pd_at_pfa5"]["mean"] == pytest.approx(0.8)  # undefined seed left out
    assert stats["table3"]["unet"]["map50"]["mean"] == pytest.approx(0.5)
    rows = table3_rows(stats["table3"])
    assert rows[0][-2:] == ["80.00", "50.00 ± 14.14"] and rows[1][-2:] == ["n/a", "n/a"]


def test_evaluate_at_calibrated_thresholds(tiny_voc, tmp_path):
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.evaluation.evaluator import evaluate
    from xray_seg.serving.recalibrate import calibrate_model

    names = read_class_names(tiny_voc)
    run = make_run(tmp_path / "run", names, seed=2)
    rule = calibrate_model(run, tiny_voc, split="train", target_pfa=0.5, progress=False).rule
    summary = evaluate(run, tiny_voc, split="train", progress=False).extra["screening"]
    assert summary["rule"]["calibrated"] and summary["rule"]["thresholds"] == rule.thresholds
    assert summary["at_thresholds"]["pd"] == rule.calibration["pd"]
    assert summary["at_thresholds"]["pfa"] == rule.calibration["pfa"] <= 0.5
