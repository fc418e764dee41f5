"""Alarm thresholds chosen on validation data for a target PFA (``xray-seg calibrate``).

The model (run folder, ``.keras`` file or exported SavedModel) predicts every image of
the split exactly as ``predict`` would; each bag's score per class and the classes its
ground truth holds go to :func:`xray_seg.evaluation.alarms.calibrate_thresholds`
(:func:`choose_rule`). The rule (thresholds, ``min_area``, ``closing``, and the PD and PFA
it gave on the split) is stored with the model by :mod:`xray_seg.serving.recalibrate`:
``alarm_thresholds.json`` beside a run folder's model (:func:`write_rule_file`), or an
export's ``export.json`` and rebuilt SavedModel.

See docs/architecture.md, "calibration + export".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xray_seg.conversion.voc import load_label_png, read_class_names, read_split
from xray_seg.core.errors import OutputExistsError
from xray_seg.core.fileio import prepare_output_file, write_json_atomic
from xray_seg.core.images import read_image_rgb
from xray_seg.core.layouts import VocLayout
from xray_seg.evaluation.alarms import calibrate_thresholds
from xray_seg.evaluation.objects import load_gt_objects
from xray_seg.inference.alarm_rule import ALARM_FILE, AlarmRule, decide, load_rule
from xray_seg.inference.loader import load_for_inference
from xray_seg.inference.tta import predict_probabilities
from xray_seg.inference.tta_options import TTAOptions


@dataclass
class CalibrationResult:
    rule: AlarmRule
    written: list


def bag_scores(model_path, voc_dir, rule: AlarmRule, *, split: str, limit=None, tta=None, progress=True):
    """Scores [N, K] and held classes [N, K] of every bag of ``split`` under ``rule``'s area and closing."""
    from tqdm import tqdm

    loaded = load_for_inference(model_path, rule.class_names)
    tta = tta or TTAOptions()
    layout = VocLayout(voc_dir)
    scores, held = [], []
    for stem in tqdm(read_split(voc_dir, split)[:limit], desc=f"calibrate {split}", unit="img", disable=not progress):
        image = read_image_rgb(layout.image_path(stem))
        truth = load_label_png(layout.mask_path(stem))
        probs = predict_probabilities(loaded.logits_fn, image, input_size=loaded.input_size, **tta.as_kwargs())
        scores.append(decide(probs.argmax(-1).astype(np.uint8), probs, rule)["scores"])
        held.append(held_classes(voc_dir, stem, len(rule.class_names), truth))
    k = len(rule.class_names)
    return np.asarray(scores, float).reshape(-1, k), np.asarray(held, bool).reshape(-1, k)


def held_classes(voc_dir, stem: str, k: int, truth: np.ndarray | None = None) -> np.ndarray:
    """Bool [K]: the classes of which ``stem``'s ground truth holds an object."""
    if truth is None:
        truth = load_label_png(VocLayout(voc_dir).mask_path(stem))
    row = np.zeros(k, bool)
    for obj in load_gt_objects(voc_dir, stem, truth)[0]:
        row[obj.class_index] = True
    return row


def threat_free_bags(voc_dir, split: str) -> int:
    """How many bags of ``split`` hold no object: the bags that measure PFA (none: no calibration)."""
    k = len(read_class_names(voc_dir))
    return sum(not held_classes(voc_dir, stem, k)[1:].any() for stem in read_split(voc_dir, split))


def choose_rule(
    model_path, voc_dir, *, split="val", target_pfa=0.05, min_area=None, closing=None, limit=None, progress=True
) -> AlarmRule:
    """The rule for ``model_path`` with thresholds calibrated on ``split`` of ``voc_dir`` for
    ``target_pfa``; ``min_area`` and ``closing`` replace the stored rule's when given."""
    path = Path(model_path)
    names = read_class_names(voc_dir)
    base = load_rule(path, names)
    if min_area is not None:
        base.min_area = [0] + [int(min_area)] * (len(names) - 1)
    if closing is not None:
        base.closing = int(closing)
    scores, held = bag_scores(path, voc_dir, base, split=split, limit=limit, progress=progress)
    rule = calibrate_thresholds(scores, held, names, target_pfa=target_pfa, base=base, split=split)
    rule.calibration["dataset"] = str(Path(voc_dir).resolve())  # the report marks figures measured on these bags
    return rule


def rule_file_target(model_path, voc_dir=None) -> Path:
    """Where ``write_rule_file`` writes, checked before any work by the one output guard
    (:func:`~xray_seg.core.fileio.prepare_output_file`): not inside the dataset ``voc_dir``, not a
    folder or FIFO, and an existing file replaced only if calibrate wrote it (a rule: an
    object with ``class_names`` and ``thresholds``), never a file of the user's own."""
    path = Path(model_path)
    target = (path if path.is_dir() else path.parent) / ALARM_FILE
    ours = False
    if target.is_file():
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
            ours = isinstance(data, dict) and {"class_names", "thresholds"} <= set(data)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            ours = False
    if target.exists() and target.is_file() and not ours:
        raise OutputExistsError(
            f"{ALARM_FILE} exists and was not written by calibrate (it holds no alarm rule)",
            path=target,
            fix=f"move it away; calibrate writes its thresholds to {ALARM_FILE} beside the model",
        )
    return prepare_output_file(target, force=True, inputs=[voc_dir], what=f"thresholds file {ALARM_FILE}")


def write_rule_file(model_path, rule: AlarmRule, voc_dir=None) -> Path:
    """``alarm_thresholds.json`` beside a run folder's or ``.keras`` file's model (atomic; checked
    by :func:`rule_file_target`); returns its path."""
    target = rule_file_target(model_path, voc_dir)
    write_json_atomic(target, rule.to_dict())
    return target


def summary_lines(result: CalibrationResult) -> list[str]:
    rule, cal = result.rule, result.rule.calibration

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = [
        (
            f"calibrated on {cal['bags']} {cal['split']} bags ({cal['clean_bags']} threat-free), target PFA "
            f"{pct(cal['target_pfa'])}: PD {pct(cal['pd'])}, PFA {pct(cal['pfa'])} ({cal['method']} search)"
        )
    ]
    for i, name in enumerate(rule.class_names[1:], start=1):
        lines.append(
            f"  {name:<14} threshold {rule.thresholds[i]:.4f}  min_area {rule.min_area[i]}  "
            f"PD {pct(cal['pd_per_class'][name])}"
        )
    if cal.get("note"):
        lines.append(cal["note"])
    lines += [f"wrote {p}" for p in result.written]
    return lines
