"""``xray-seg calibrate`` storing its rule: thresholds written into a run folder or an export.

The thresholds are chosen by :func:`xray_seg.evaluation.calibration.choose_rule`. They are written:

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
from pathlib import Path

from xray_seg.core.errors import ModelError
from xray_seg.core.fileio import write_json_atomic
from xray_seg.evaluation.calibration import CalibrationResult, choose_rule, write_rule_file
from xray_seg.inference.alarm_rule import AlarmRule
from xray_seg.serving.export_source import load_source
from xray_seg.serving.savedmodel import write_savedmodel


def _savedmodel_dir(path: Path) -> Path | None:
    for candidate in (path, path / "savedmodel"):
        if (candidate / "saved_model.pb").is_file():
            return candidate
    return None


def rebuild_savedmodel(savedmodel: Path, rule: AlarmRule) -> list[Path]:
    """Write ``rule`` into an export's ``export.json`` / ``manifest.json`` and rebuild its graph (module docstring)."""
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
    rule = choose_rule(
        model_path,
        voc_dir,
        split=split,
        target_pfa=target_pfa,
        min_area=min_area,
        closing=closing,
        limit=limit,
        progress=progress,
    )
    savedmodel = _savedmodel_dir(Path(model_path))
    if savedmodel is not None:
        return CalibrationResult(rule, rebuild_savedmodel(savedmodel, rule))
    return CalibrationResult(rule, [write_rule_file(model_path, rule)])
