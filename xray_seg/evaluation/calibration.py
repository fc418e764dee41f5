"""``xray-seg calibrate``: alarm thresholds chosen on validation data for a target PFA, stored with the model.

The model (run folder, ``.keras`` file or exported SavedModel) predicts every image of
the split exactly as ``predict`` would; each bag's score per class and the classes its
ground truth holds go to :func:`xray_seg.evaluation.alarms.calibrate_thresholds`. The rule
(thresholds, ``min_area``, ``closing``, and the PD and PFA it gave on the split) is written:

- run folder or ``.keras`` file: ``alarm_thresholds.json`` beside the model; ``xray-seg
  export`` then carries it into ``export.json`` and the SavedModel graph;
- exported SavedModel: into ``export.json`` (``"alarm"``) and ``manifest.json``, and the
  SavedModel is rebuilt from the ``.keras`` file named in ``export.json`` ``"source"`` so
  that its graph (``alarm`` outputs, ``model_info``) uses the new thresholds. The new
  SavedModel is written beside the old one, which is removed only once the new one is in
  place; if the source ``.keras`` is gone, calibrate the run folder and export again.

See docs/architecture.md, "calibration + export".
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xray_seg.core.errors import ModelError
from xray_seg.evaluation.alarms import ALARM_FILE, AlarmRule, calibrate_thresholds, decide, load_rule


@dataclass
class CalibrationResult:
    rule: AlarmRule
    written: list


def _savedmodel_dir(path: Path) -> Path | None:
    for candidate in (path, path / "savedmodel"):
        if (candidate / "saved_model.pb").is_file():
            return candidate
    return None


def bag_scores(model_path, voc_dir, rule: AlarmRule, *, split: str, limit=None, tta=None, progress=True):
    """Scores [N, K] and held classes [N, K] of every bag of ``split`` under ``rule``'s area and closing."""
    from tqdm import tqdm

    from xray_seg.conversion.voc import VocLayout, load_label_png, read_split
    from xray_seg.core.images import read_image_rgb
    from xray_seg.evaluation.evaluator import TTAOptions
    from xray_seg.evaluation.objects import load_gt_objects
    from xray_seg.inference.loader import load_for_inference
    from xray_seg.inference.tta import predict_probabilities

    loaded = load_for_inference(model_path, rule.class_names)
    tta = tta or TTAOptions()
    layout = VocLayout(voc_dir)
    scores, held = [], []
    for stem in tqdm(read_split(voc_dir, split)[:limit], desc=f"calibrate {split}", unit="img", disable=not progress):
        image = read_image_rgb(layout.image_path(stem))
        truth = load_label_png(layout.mask_path(stem))
        probs = predict_probabilities(loaded.logits_fn, image, input_size=loaded.input_size, **tta.as_kwargs())
        scores.append(decide(probs.argmax(-1).astype(np.uint8), probs, rule)["scores"])
        row = np.zeros(len(rule.class_names), bool)
        for obj in load_gt_objects(voc_dir, stem, truth)[0]:
            row[obj.class_index] = True
        held.append(row)
    k = len(rule.class_names)
    return np.asarray(scores, float).reshape(-1, k), np.asarray(held, bool).reshape(-1, k)


def rebuild_savedmodel(savedmodel: Path, rule: AlarmRule) -> list[Path]:
    """Write ``rule`` into an export's ``export.json`` / ``manifest.json`` and rebuild its graph (module docstring)."""
    from xray_seg.core.fileio import write_json_atomic
    from xray_seg.serving.export_source import load_source
    from xray_seg.serving.savedmodel import write_savedmodel

    meta = json.loads((savedmodel / "export.json").read_text(encoding="utf-8"))
    source_file = Path(meta.get("source", ""))
    if not source_file.is_file():
        raise ModelError(
            "the .keras file this SavedModel was exported from is gone, so its graph cannot be rebuilt",
            path=savedmodel / "export.json",
            fix="calibrate the run folder instead, then `xray-seg export` it again",
        )
    is_run = source_file.name == "best_model.keras" and (source_file.parent / "class_names.txt").is_file()
    source = load_source(source_file.parent if is_run else source_file)
    source.alarm = rule.to_dict()
    meta["alarm"] = rule.to_dict()
    out_dir = savedmodel.parent
    old = out_dir / ".savedmodel.before-calibration"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(savedmodel, old)
    try:
        new = write_savedmodel(source, out_dir, meta)
    except BaseException:
        os.replace(old, savedmodel)
        raise
    if new != savedmodel:
        os.replace(new, savedmodel)
    shutil.rmtree(old, ignore_errors=True)
    written = [savedmodel / "export.json"]
    manifest = out_dir / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        data["export"] = meta
        write_json_atomic(manifest, data)
        written.append(manifest)
    return written


def calibrate_model(
    model_path, voc_dir, *, split="val", target_pfa=0.05, min_area=None, closing=None, limit=None, progress=True
) -> CalibrationResult:
    """Calibrate ``model_path`` on ``split`` of ``voc_dir`` and store the rule with it (module docstring)."""
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.core.fileio import write_json_atomic

    path = Path(model_path)
    names = read_class_names(voc_dir)
    base = load_rule(path, names)
    if min_area is not None:
        base.min_area = [0] + [int(min_area)] * (len(names) - 1)
    if closing is not None:
        base.closing = int(closing)
    scores, held = bag_scores(path, voc_dir, base, split=split, limit=limit, progress=progress)
    rule = calibrate_thresholds(scores, held, names, target_pfa=target_pfa, base=base, split=split)
    savedmodel = _savedmodel_dir(path)
    if savedmodel is not None:
        written = rebuild_savedmodel(savedmodel, rule)
    else:
        target = (path if path.is_dir() else path.parent) / ALARM_FILE
        write_json_atomic(target, rule.to_dict())
        written = [target]
    return CalibrationResult(rule, written)


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
