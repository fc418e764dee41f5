"""The demo's report comes after calibration: report.html shows the thresholds the export
carries (marked as measured on the bags they were chosen on), the confusion matrix, no Python
reprs; the summary points at report.html."""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("tensorflow")

sys.path.insert(0, str(Path(__file__).resolve().parent / "evaluation"))
from test_screening_eval import make_run  # noqa: E402

REPRS = re.compile(r"[{}\[\]]|array\(|np\.|\bNone\b|\bnan\b|\bTrue\b|\bFalse\b|<class|object at 0x")


class _Text(HTMLParser):
    """The text a browser shows (``<style>`` left out) and the ``alt`` of every image."""

    def __init__(self):
        super().__init__()
        self.text, self.alts, self._style = [], [], False

    def handle_starttag(self, tag, attrs):
        self._style = tag == "style"
        if tag == "img":
            self.alts.append(dict(attrs).get("alt"))

    def handle_endtag(self, tag):
        self._style = False

    def handle_data(self, data):
        if not self._style:
            self.text.append(data)


@pytest.fixture(scope="module")
def demo_steps(tmp_path_factory):
    """Steps 1-2 and 4-6 of the demo on 6 + 3 threat-free bags of 64 px; a tiny untrained
    1x1-conv run stands in for step 3's training."""
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.demo import DemoConfig, _calibrate_evaluate_export_predict, _synthesise_and_convert

    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(out=str(out), num_images=6, image_size=64, clean_val_bags=3, predict_images=1)
    times = {}
    preview = _synthesise_and_convert(cfg, out, times)
    make_run(out / "run", read_class_names(out / "voc"), seed=2)
    evaluation, calibration = _calibrate_evaluate_export_predict(cfg, out, times)
    return SimpleNamespace(out=out, cfg=cfg, times=times, preview=preview, evaluation=evaluation, cal=calibration)


def test_report_shows_the_thresholds_the_export_carries(demo_steps):
    out = demo_steps.out
    export = json.loads((out / "export" / "savedmodel" / "export.json").read_text())["alarm"]
    screening = json.loads((out / "run" / "eval-val" / "screening.json").read_text())
    assert export["calibrated"] and demo_steps.cal == export["calibration"]
    assert screening["rule"]["thresholds"] == export["thresholds"]
    assert screening["at_thresholds"]["pd"] == export["calibration"]["pd"]  # the same bags, the same figures
    parser = _Text()
    parser.feed((out / "run" / "eval-val" / "report.html").read_text(encoding="utf-8"))
    text = " ".join(" ".join(parser.text).split())
    assert "Bags at the rule stored with the model (calibrated)" in text
    for name, threshold in zip(export["class_names"][1:], export["thresholds"][1:]):
        assert re.search(rf"{name} {threshold:.4f} ", text), name
    assert "measured on the same bags the thresholds were chosen on, so they are optimistic" in text
    assert list(demo_steps.times)[:2] == ["synth", "convert"] and "calibrate" in demo_steps.times


def test_report_html_has_the_confusion_matrix_and_no_reprs(demo_steps):
    parser = _Text()
    parser.feed((demo_steps.out / "run" / "eval-val" / "report.html").read_text(encoding="utf-8"))
    text = " ".join(" ".join(parser.text).split())
    assert "confusion matrix" in parser.alts and "ROC" in parser.alts
    cm = demo_steps.evaluation.scores["confusion_matrix"]
    assert "Confusion matrix (rows: truth, columns: prediction)" in text
    assert f"_background_ {' '.join(f'{int(v):,}' for v in cm[0])} " in text  # the pixel counts, row by row
    assert not REPRS.findall(text), REPRS.findall(text)[:5]
    assert "SegmentationObject (5 images)" in text


def test_summary_points_at_report_html(demo_steps, capsys):
    from xray_seg.demo import _print_summary

    result = SimpleNamespace(train_images_per_sec=1.0, best_epoch=1)
    _print_summary(
        demo_steps.out, demo_steps.evaluation, demo_steps.cal, result, 2.0, {"total": 1.0}, demo_steps.preview
    )
    printed = capsys.readouterr().out
    assert str(demo_steps.out / "run" / "eval-val" / "report.html") in printed and "report.md" not in printed
