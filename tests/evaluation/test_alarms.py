"""Bag alarm figures: PD/PFA on hand-made bags, ROC, calibration vs brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from xray_seg.evaluation.alarms import bag_metrics, calibrate_thresholds, pd_at_pfa, roc_curve, screening_report
from xray_seg.inference.alarm_rule import AlarmRule

NAMES = ["_background_", "gun", "knife", "pliers"]


# bags: gun found (0.9); knife bag scored 0.3 (missed at 0.5); clean bag with a gun score 0.6 (false
# alarm); clean bag with nothing; gun+knife bag found only as gun (0.7)
SCORES = np.array([[0, 0.9, 0, 0], [0, 0, 0.3, 0], [0, 0.6, 0, 0], [0, 0, 0, 0], [0, 0.7, 0.2, 0]])
TRUTH = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0]], bool)


def test_pd_and_pfa_of_hand_made_bags():
    m = bag_metrics(SCORES, TRUTH, [1, 0.5, 0.5, 0.5], NAMES)
    assert (m["bags"], m["threat_bags"], m["clean_bags"], m["alarmed_bags"]) == (5, 3, 2, 3)
    assert m["pd"] == pytest.approx(2 / 3) and m["pfa"] == 0.5
    assert m["per_class"]["gun"]["pd"] == 1.0 and m["per_class"]["gun"]["pfa"] == 0.5
    assert m["per_class"]["knife"]["pd"] == 0.0 and m["per_class"]["knife"]["pfa"] == 0.0
    assert m["per_class"]["pliers"]["pd"] is None  # no bag holds pliers
    m = bag_metrics(SCORES, TRUTH, [1, 0.65, 0.25, 0.5], NAMES)
    assert m["pd"] == 1.0 and m["pfa"] == 0.0


def test_roc_and_pd_at_pfa():
    curve = roc_curve([0.9, 0.7], [0.6, 0.0])
    assert curve["pd"] == [0, 0.5, 1, 1, 1] and curve["pfa"] == [0, 0, 0, 0.5, 1]
    assert curve["auc"] == 1.0 and pd_at_pfa(curve, 0.05) == 1.0
    curve = roc_curve([0.5], [0.8, 0.1])
    assert curve["pd"] == [0, 0, 1, 1, 1] and curve["pfa"] == [0, 0.5, 0.5, 1, 1]
    assert curve["auc"] == pytest.approx(0.5) and pd_at_pfa(curve, 0.05) == 0.0 and pd_at_pfa(curve, 0.5) == 1.0
    report = screening_report(SCORES, TRUTH, AlarmRule.default(NAMES))
    assert report["roc"]["gun"]["auc"] == 1.0
    assert report["pd_at_pfa"]["overall"]["0.05"] == pytest.approx(2 / 3)  # the 0.9 and 0.7 bags beat the clean 0.6
    assert report["note"] is None
    assert (
        screening_report(SCORES[[0, 1]], TRUTH[[0, 1]], AlarmRule.default(NAMES))["pd_at_pfa"]["overall"]["0.05"]
        is None
    )


def _brute_force(scores, truth, target):
    clean = ~truth[:, 1:].any(axis=1)
    budget = int(np.floor(target * clean.sum() + 1e-9))
    cands = [
        sorted({1e-4} | {round(v + 1e-4, 4) for v in scores[:, c]} | set(scores[:, c][scores[:, c] > 0]))
        for c in range(1, scores.shape[1])
    ]
    best = -1
    for ts in itertools.product(*cands):
        alarms = scores[:, 1:] >= np.array(ts)[None]
        if alarms[clean].any(axis=1).sum() <= budget:
            best = max(best, int((alarms & truth[:, 1:]).sum()))
    return best


@pytest.mark.parametrize("seed,target", [(0, 0.05), (1, 0.1), (2, 0.25), (3, 0.34)])
def test_calibration_equals_brute_force(seed, target):
    rng = np.random.default_rng(seed)
    n, names = 14, NAMES[:3]
    truth = np.zeros((n, 3), bool)
    truth[:, 1:] = rng.random((n, 2)) < 0.35
    scores = np.round(rng.random((n, 3)) * (rng.random((n, 3)) < 0.7), 4)
    scores[truth] = np.minimum(1, scores[truth] + 0.3).round(4)
    scores[:, 0] = 0
    rule = calibrate_thresholds(scores, truth, names, target_pfa=target)
    got = bag_metrics(scores, truth, rule.thresholds, names)
    clean = ~truth[:, 1:].any(axis=1)
    assert (
        got["alarmed_bags"] - (~clean & (scores >= np.array(rule.thresholds))[:, 1:].any(1)).sum()
        <= target * clean.sum()
    )
    detections = int(((scores >= np.array(rule.thresholds)) & truth)[:, 1:].sum())
    assert detections == _brute_force(scores, truth, target)
    assert rule.calibrated and rule.calibration["pfa"] <= target + 1e-12 and rule.calibration["method"] == "exact"
