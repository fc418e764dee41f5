"""The ROC a person reads (log PFA axis, the stored rule's operating point), where the rule's
thresholds come from, and the report's cases with a legend of what they draw."""

from __future__ import annotations

import numpy as np
import pytest

from xray_seg.evaluation.alarms import calibrate_thresholds, rule_provenance, screening_report
from xray_seg.evaluation.screening_eval import ROC_PFA_MIN, operating_point, roc_figure
from xray_seg.inference.alarm_rule import AlarmRule

NAMES = ["_background_", "gun", "knife"]


def _bags(seed=0):
    rng = np.random.default_rng(seed)
    truth = np.zeros((60, 3), bool)
    truth[:20, 1] = True
    truth[20:40, 2] = True
    scores = rng.uniform(0, 0.6, (60, 3))
    scores[truth] += 0.35
    return np.round(scores, 4), truth


def test_roc_has_a_log_pfa_axis_and_the_calibrated_operating_point():
    import matplotlib.pyplot as plt

    scores, truth = _bags()
    rule = calibrate_thresholds(scores, truth, NAMES, target_pfa=0.05)
    summary = screening_report(scores, truth, rule)
    point = operating_point(summary)
    assert point["pfa"] == summary["at_thresholds"]["pfa"] <= 0.05 and point["pd"] == rule.calibration["pd"]
    fig = roc_figure(summary["roc"], operating=point)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlim() == pytest.approx((ROC_PFA_MIN, 1.0))
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert len(stars) == 1 and stars[0].get_label().startswith("calibrated rule: PD")
    x, y = stars[0].get_data()
    assert x[0] == pytest.approx(max(point["pfa"], ROC_PFA_MIN)) and y[0] == pytest.approx(point["pd"])
    assert min(min(line.get_xdata()) for line in ax.lines) >= ROC_PFA_MIN  # PFA 0 drawn at the axis' left edge
    plt.close(fig)
    default = operating_point(screening_report(scores, truth, AlarmRule.default(NAMES)))
    assert default["label"].startswith("default rule (uncalibrated)")
    no_clean = screening_report(scores[:40], truth[:40], rule)
    assert operating_point(no_clean) is None


def test_rule_provenance_marks_figures_on_the_calibration_bags(tmp_path):
    scores, truth = _bags()
    rule = calibrate_thresholds(scores, truth, NAMES, target_pfa=0.05, split="val").to_dict()
    rule["calibration"]["dataset"] = str(tmp_path.resolve())
    same = rule_provenance(rule, 60, dataset=tmp_path, split="val")
    assert "PFA <= 5.0 % on 60 val bags (20 threat-free)" in same and "the same bags" in same and "optimistic" in same
    other = rule_provenance(rule, 30, dataset=tmp_path, split="test")
    assert "measured on 30 test bags, not the set" in other and "optimistic" not in other
    elsewhere = rule_provenance(rule, 60, dataset=tmp_path / "other", split="val")
    assert "of another dataset" in elsewhere
    assert rule_provenance(AlarmRule.default(NAMES).to_dict(), 60, split="val").startswith("Uncalibrated defaults")


def test_report_cases_list_only_the_classes_drawn():
    from xray_seg.evaluation.html_report import _cases

    image = np.full((24, 24, 3), 200, np.uint8)
    truth = np.zeros((24, 24), np.uint8)
    truth[4:12, 4:12] = 2
    pred = np.zeros_like(truth)
    page = _cases([(1.0, "bag", "missed knife (score 0.10)", image, truth, pred)], NAMES)
    assert page.count("class='swatch'") == 1 and "knife" in page.split("drawn:")[1] and "gun" not in page
