"""The alarm rule: when a bag alarms, from the class map and probabilities of one scan.

A bag alarms for class ``c`` when one of its predicted items of class ``c`` has
``area >= min_area[c]`` pixels and ``confidence >= thresholds[c]``. Items are the
connected components (8-connectivity) of the arg-max class map (:func:`find_items`), after
a **morphological closing** of each class mask with a ``(2 closing + 1)``-pixel square:
fragments of one object less than ``2 closing + 1`` pixels apart (a wire seen as a dozen
60-pixel "pliers") merge into one item, and what is still smaller than ``min_area`` is
suppressed. The confidence is the mean probability of ``c`` over the (closed) item, rounded
to 4 decimals as ``predict`` prints it. ``tests/inference/test_alarm_rule.py`` measures the
rule on a broken wire: 12 fragments become one item. The SavedModel computes the same
decision in its graph (:mod:`xray_seg.serving.alarm_graph`).

Uncalibrated defaults: ``thresholds`` 0.5, ``min_area`` 100 pixels, ``closing`` 2. PD, PFA,
ROC and the calibration of the thresholds are in :mod:`xray_seg.evaluation.alarms`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.inference.export_file import read_export_json

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_AREA = 100
DEFAULT_CLOSING = 2
ALARM_FILE = "alarm_thresholds.json"  # in a run folder, written by `xray-seg calibrate`


@dataclass
class AlarmRule:
    """Per-class thresholds and minimum areas (index 0, background, never alarms)."""

    class_names: list
    thresholds: list
    min_area: list
    closing: int = DEFAULT_CLOSING
    calibrated: bool = False
    calibration: dict = field(default_factory=dict)  # split, target PFA, PD and PFA it gave

    @classmethod
    def default(cls, class_names, threshold=DEFAULT_THRESHOLD, min_area=DEFAULT_MIN_AREA, closing=DEFAULT_CLOSING):
        k = len(class_names)
        return cls(
            list(class_names), [1.0] + [float(threshold)] * (k - 1), [0] + [int(min_area)] * (k - 1), int(closing)
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AlarmRule:
        keep = {
            k: data[k]
            for k in ("class_names", "thresholds", "min_area", "closing", "calibrated", "calibration")
            if k in data
        }
        return cls(**keep)

    def item_min_area(self) -> int:
        return int(min(self.min_area[1:], default=0))


def load_rule(model_path, class_names) -> AlarmRule:
    """The rule stored with a model: ``export.json`` ``"alarm"`` of a SavedModel, ``RUN/alarm_thresholds.json``
    of a run folder; the documented defaults when it was never calibrated. ``model_path`` is a
    path or an already loaded model (its ``source``; a station engine's carries its export's rule)."""
    carried = getattr(model_path, "alarm", None)
    if carried and list(carried.get("class_names", class_names)) == list(class_names):
        return AlarmRule.from_dict(carried)
    path = Path(getattr(model_path, "source", model_path))
    path = path.parent if path.is_file() else path  # a .keras file: its folder
    candidates = [path / "export.json", path / "savedmodel" / "export.json", path / ALARM_FILE]
    for file in candidates:
        if file.is_file():
            if file.name == "export.json":  # validated: NaN, short or unnamed thresholds are refused
                data = read_export_json(file).get("alarm") or {}
            else:
                data = json.loads(file.read_text(encoding="utf-8"))
            if data and "thresholds" in data and list(data.get("class_names", class_names)) == list(class_names):
                return AlarmRule.from_dict(data)
    return AlarmRule.default(class_names)


def find_items(
    class_map: np.ndarray,
    probs: np.ndarray,
    class_names: list[str],
    min_area: int = 50,
    *,
    closing: int = 0,
    with_masks: bool = False,
) -> list[dict]:
    """Connected components of every non-background class with >= ``min_area`` pixels.

    ``closing`` > 0 first closes each class mask with a ``(2 closing + 1)`` square (so
    fragments less than ``2 closing + 1`` pixels apart merge into one item; the rule of
    :func:`decide`). ``with_masks`` adds ``"mask"``: the item's pixels
    as a bool array cropped to its bounding box.
    """
    import cv2  # lazy: OpenCV loads slowly and only item finding needs it

    items = []
    for index in range(1, len(class_names)):
        binary = (class_map == index).astype(np.uint8)
        if not binary.any():
            continue
        if closing > 0:
            binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((2 * closing + 1,) * 2, np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        for comp in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[comp])
            if area < min_area:
                continue
            inside = labels[y : y + h, x : x + w] == comp  # the box only: no scan-sized mask per item
            confidence = float(probs[y : y + h, x : x + w, index][inside].mean())
            items.append(
                {
                    "class": class_names[index],
                    "class_index": index,
                    "area": area,
                    "confidence": round(confidence, 4),
                    "bbox": [x, y, w, h],
                }
            )
            if with_masks:
                items[-1]["mask"] = labels[y : y + h, x : x + w] == comp
    return sorted(items, key=lambda it: -it["area"])


def decide(
    class_map: np.ndarray, probs: np.ndarray, rule: AlarmRule, *, with_masks: bool = False, min_area=None
) -> dict:
    """The bag decision of one image: ``alarm``, ``alarm_classes``, ``scores`` [K] and ``items`` (each with ``alarm``).

    Items are listed from ``min_area`` (default: the smallest alarm area) up; every item
    that alarms is listed whatever ``min_area`` says.
    """
    floor = rule.item_min_area() if min_area is None else min(int(min_area), rule.item_min_area())
    items = find_items(class_map, probs, rule.class_names, floor, closing=rule.closing, with_masks=with_masks)
    scores = np.zeros(len(rule.class_names), dtype=np.float64)
    for it in items:
        c = it["class_index"]
        passes = it["area"] >= rule.min_area[c]
        it["alarm"] = bool(passes and it["confidence"] >= rule.thresholds[c])
        if passes:
            scores[c] = max(scores[c], it["confidence"])
    if min_area is not None:
        items = [it for it in items if it["area"] >= min_area or it["alarm"]]
    classes = sorted({it["class"] for it in items if it["alarm"]}, key=rule.class_names.index)
    return {"alarm": bool(classes), "alarm_classes": classes, "scores": scores, "items": items}
