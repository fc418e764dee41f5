"""Accuracy of any station engine on a VOC split, the way ``xray-seg evaluate`` measures it.

A station engine (:class:`xray_seg.serving.engines.TileEngine`: Keras, SavedModel, TFLite,
ONNX Runtime, OpenVINO, float or int8) or a Keras logits model is run on every image of the
split through the one geometry rule (docs/architecture.md, "Geometry: how a scan reaches the
network": :func:`xray_seg.inference.tta.predict_probabilities`, native resolution, tiles of
the engine's size). Paper 1's pixel metrics come from one confusion matrix over the split
(:func:`xray_seg.evaluation.evaluator.accumulate_split`, sec. 4.3, eqs. 4-7), and the
screening figure from the bag scores (:mod:`xray_seg.evaluation.screening_eval`): PD at a
PFA of 5 %, which needs threat-free bags in the split (``None`` when there are none, e.g. the
demo's data, where every bag holds a threat).

The int8 gate (:mod:`xray_seg.serving.quantize`) and ``xray-seg bench --suite station`` compare
each engine with the Keras model through :func:`compare_with`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xray_seg.conversion.voc import read_class_names, read_split
from xray_seg.evaluation.evaluator import accumulate_split
from xray_seg.evaluation.metrics import segmentation_scores
from xray_seg.evaluation.screening_eval import ScreeningEvaluation
from xray_seg.inference.alarm_rule import AlarmRule
from xray_seg.inference.geometry import ScanGeometry
from xray_seg.inference.tta import model_input_size, predict_probabilities

PFA_TARGET = "0.05"  # the key of screening_report's pd_at_pfa for PFA 5 %


def engine_accuracy(engine, voc_dir, *, split: str = "val", geometry=None, rule=None, limit=None, progress=False):
    """mIoU, mPA, PA, per-class IoU and PD at PFA 5 % of ``engine`` on ``split`` of ``voc_dir``.

    Args:
        engine: a :class:`~xray_seg.serving.engines.TileEngine` or a Keras model (logits).
        geometry: the :class:`~xray_seg.inference.geometry.ScanGeometry` (default: tiles of
            the engine's size, native resolution).
        rule: the :class:`~xray_seg.inference.alarm_rule.AlarmRule` whose ``min_area`` and
            ``closing`` define items (default: the documented defaults; PD at PFA sweeps
            the thresholds, so they do not matter).
        limit: only the first ``limit`` images of the split.
    """
    names = read_class_names(voc_dir)
    tile = getattr(engine, "tile", None) or model_input_size(engine)
    geometry = geometry or ScanGeometry(tile=tile)
    screening = ScreeningEvaluation(Path(voc_dir), rule or AlarmRule.default(names))
    stems = read_split(voc_dir, split)[:limit]

    def predict(image):
        return predict_probabilities(engine, image, geometry=geometry, input_size=geometry.tile)

    label = getattr(engine, "name", "keras")
    per_image, seconds = accumulate_split(predict, voc_dir, stems, len(names), screening, desc=label, progress=progress)
    cm = sum(per_image.values(), np.zeros((len(names), len(names)), np.int64))
    scores = segmentation_scores(cm, names)
    summary = screening.summary()
    bags = summary["at_thresholds"]
    return {
        "split": split,
        "images": len(stems),
        "miou": float(scores["miou"]),
        "mpa": float(scores["mpa"]),
        "pa": float(scores["pa"]),
        "iou": [None if v != v else float(v) for v in scores["iou"]],  # NaN (absent class) -> None
        "pd_at_pfa_5": summary["pd_at_pfa"]["overall"][PFA_TARGET],
        "threat_bags": bags["threat_bags"],
        "clean_bags": bags["clean_bags"],
        "seconds": seconds,
    }


def compare_with(scores: dict, reference: dict) -> dict:
    """``scores`` plus its mIoU and PD at PFA 5 % against ``reference`` (the Keras model's), in points."""
    out = dict(scores)
    out["keras_miou"] = reference["miou"]
    out["miou_delta_points"] = 100.0 * (scores["miou"] - reference["miou"])
    ref_pd, pd = reference.get("pd_at_pfa_5"), scores.get("pd_at_pfa_5")
    out["keras_pd_at_pfa_5"] = ref_pd
    out["pd_delta_points"] = None if pd is None or ref_pd is None else 100.0 * (pd - ref_pd)
    return out
