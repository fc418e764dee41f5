"""The alarm rule: the merge rule on a broken wire, the stored rule and its defaults."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xray_seg.inference.alarm_rule import AlarmRule, decide, load_rule

NAMES = ["_background_", "gun", "knife", "pliers"]


def _wire(gap=2):
    """A horizontal 'pliers' wire 6 px thick broken into 12 fragments of 60 px, ``gap`` px apart."""
    class_map = np.zeros((40, 200), np.uint8)
    x = 5
    for _ in range(12):
        class_map[10:16, x : x + 10] = 3
        x += 10 + gap
    probs = np.full((40, 200, 4), 0.0, np.float32)
    probs[..., 0] = 1.0
    probs[class_map == 3] = (0.1, 0.0, 0.0, 0.9)
    return class_map, probs


def test_closing_merges_fragments_into_one_alarming_item():
    class_map, probs = _wire()
    rule = AlarmRule.default(NAMES, closing=0)
    confetti = decide(class_map, probs, rule, min_area=1)
    assert len(confetti["items"]) == 12 and all(it["area"] == 60 for it in confetti["items"])
    assert not confetti["alarm"]  # each fragment is below min_area 100: suppressed
    rule.closing = 2
    merged = decide(class_map, probs, rule, min_area=1)
    assert len(merged["items"]) == 1
    item = merged["items"][0]
    assert item["area"] == 12 * 60 + 11 * 2 * 6 and item["alarm"]
    # the 2-px gaps are background (probability 0 of pliers) and lower the mean: 0.9 * 720 / 852
    assert item["confidence"] == pytest.approx(round(0.9 * 720 / 852, 4))
    assert merged["alarm"] and merged["alarm_classes"] == ["pliers"]
    assert merged["scores"][3] == item["confidence"]
    far = decide(*_wire(gap=6), rule, min_area=1)  # 6 px apart: more than 2 * 2 + 1 - 1, not merged
    assert len(far["items"]) == 12 and not far["alarm"]


def test_rule_round_trip_and_defaults(tmp_path):
    rule = load_rule(tmp_path, NAMES)
    assert not rule.calibrated and rule.thresholds == [1.0, 0.5, 0.5, 0.5] and rule.min_area[1:] == [100] * 3
    rule.thresholds[1] = 0.8
    (tmp_path / "export.json").write_text(json.dumps({"class_names": NAMES, "alarm": rule.to_dict()}))
    assert load_rule(tmp_path, NAMES).thresholds[1] == 0.8
    (tmp_path / "export.json").unlink()
    rule.thresholds[1] = 0.6
    (tmp_path / "alarm_thresholds.json").write_text(json.dumps(rule.to_dict()))
    (tmp_path / "model.keras").write_bytes(b"")
    assert load_rule(tmp_path / "model.keras", NAMES).thresholds[1] == 0.6  # beside a .keras file
    assert load_rule(tmp_path, NAMES[:3]).thresholds == [1.0, 0.5, 0.5]  # other classes: not this rule
