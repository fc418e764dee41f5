"""``xray-seg calibrate`` storing its rule: thresholds written into a run folder or an export.

The thresholds are chosen by :func:`xray_seg.evaluation.calibration.choose_rule`. They are written:

- run folder or ``.keras`` file: ``alarm_thresholds.json`` beside the model; ``xray-seg
  export`` then carries it into ``export.json`` and the SavedModel graph;
- export (``OUT``, ``OUT/savedmodel`` or ``OUT/savedmodel_optimized``): into ``export.json``
  (``"alarm"``) of every SavedModel variant and ``manifest.json``, each SavedModel rebuilt from
  the ``.keras`` file named in ``export.json`` (``source``, checked against ``source_sha256``:
  another model at that path is refused) so that its graph (``alarm`` outputs, ``model_info``)
  uses the new thresholds. All variants are built in a hidden ``OUT/.calibrate.*.tmp`` folder
  first, then each is swapped into place (``core.fileio.swap_into_place``), so a kill leaves
  every variant whole (old or new). If the source is gone, calibrate the run folder and export
  again. TFLite, ONNX and OpenVINO files carry no rule (the host applies ``export.json``'s).

See docs/architecture.md, "calibration + export".
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from xray_seg.core.fileio import swap_into_place, write_json_atomic
from xray_seg.evaluation.calibration import CalibrationResult, choose_rule, rule_file_target, write_rule_file
from xray_seg.inference.alarm_rule import AlarmRule
from xray_seg.inference.export_file import export_source_file, read_export_json
from xray_seg.serving.export_source import load_source
from xray_seg.serving.optimize import write_optimized_savedmodel
from xray_seg.serving.savedmodel import write_savedmodel

VARIANTS = ("savedmodel", "savedmodel_optimized")  # every SavedModel of an export carries the rule in its graph


def _export_root(path: Path) -> Path | None:
    """The export folder ``path`` names (``OUT``, ``OUT/savedmodel`` or ``OUT/savedmodel_optimized``), if any."""
    root = path.parent if path.name in VARIANTS and (path / "saved_model.pb").is_file() else path
    return root if any((root / v / "saved_model.pb").is_file() for v in VARIANTS) else None


def _write_variant(variant: str, source, staging: Path, meta: dict) -> Path:
    if variant == "savedmodel":
        return write_savedmodel(source, staging, meta)
    return write_optimized_savedmodel(source, staging, meta)[0]


def rebuild_savedmodel(root: Path, rule: AlarmRule) -> list[Path]:
    """Write ``rule`` into every SavedModel variant of the export ``root`` (and ``manifest.json``), each
    rebuilt beside it from the digest-checked source and swapped into place (module docstring)."""
    variants = [root / v for v in VARIANTS if (root / v / "saved_model.pb").is_file()]
    meta_file = variants[0] / "export.json"
    meta = read_export_json(meta_file)
    source_file = export_source_file(meta, meta_file)
    is_run = source_file.name == "best_model.keras" and (source_file.parent / "class_names.txt").is_file()
    source = load_source(source_file.parent if is_run else source_file)
    source.alarm = rule.to_dict()
    meta["alarm"] = rule.to_dict()
    staging = Path(tempfile.mkdtemp(prefix=".calibrate.", suffix=".tmp", dir=root))
    try:
        built = [_write_variant(folder.name, source, staging, meta) for folder in variants]
        for new, folder in zip(built, variants, strict=True):
            swap_into_place(new, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    written = [folder / "export.json" for folder in variants]
    manifest = root / "manifest.json"
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
    root = _export_root(Path(model_path))
    if root is None:
        rule_file_target(model_path, voc_dir)  # refused before the (slow) bag scores, not after
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
    if root is not None:
        return CalibrationResult(rule, rebuild_savedmodel(root, rule))
    return CalibrationResult(rule, [write_rule_file(model_path, rule, voc_dir)])
