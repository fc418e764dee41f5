"""``export.json`` read back: one validation for every reader, and the ``.keras`` source it names.

Every reader of an export's metadata (the loader, the station engines, ``calibrate``) goes
through :func:`read_export_json`, so a truncated, edited or mismatched file is one
:class:`~xray_seg.core.errors.ModelError` naming the file and the fix, never a traceback or a
silently different rule (NaN thresholds, a class dropped, a geometry that never advances).

The source: since issue 28 ``export.json`` names its ``.keras`` by absolute path
(``source``) and SHA-256 (``source_sha256``). :func:`export_source_file` returns it only if the
digest matches. An export written before has no digest: its ``source`` (relative to the
working directory of the export) is tried as given, then against the folders above the
export, and used with a warning to export again.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

from xray_seg.core.errors import ModelError
from xray_seg.core.fileio import file_sha256
from xray_seg.inference.geometry import ScanGeometry

REEXPORT = "export the model again (`xray-seg export RUN --out OUT --force`)"


def _bad(problem: str, path: Path) -> ModelError:
    return ModelError(f"export.json {problem}", path=path, fix=REEXPORT)


def _names(value, what: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(n, str) and n for n in value):
        raise _bad(f"has no valid {what} (a list of non-empty names)", path)
    return value


def _check_alarm(alarm, names: list[str], path: Path) -> None:
    if not isinstance(alarm, dict):
        raise _bad("'alarm' is not an object", path)
    if _names(alarm.get("class_names"), "'alarm' class_names", path) != names:
        raise _bad("'alarm' class_names differ from class_names, so a class would be dropped or shifted", path)
    for key in ("thresholds", "min_area"):
        values = alarm.get(key)
        if not isinstance(values, list) or len(values) != len(names):
            raise _bad(f"'alarm' {key} has not one value per class ({len(names)})", path)
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise _bad(f"'alarm' {key} holds {value!r}, not a finite number", path)
    if any(not 0.0 <= t <= 1.0 for t in alarm["thresholds"]) or any(a < 0 for a in alarm["min_area"]):
        raise _bad("'alarm' thresholds must lie in [0, 1] and min_area be >= 0", path)
    closing = alarm.get("closing", 0)
    if isinstance(closing, bool) or not isinstance(closing, int) or closing < 0:
        raise _bad(f"'alarm' closing {closing!r} is not a whole number >= 0", path)


def validate_export_metadata(meta, path: Path) -> dict:
    """``meta`` (parsed ``export.json`` at ``path``) if it is whole and consistent, else ModelError."""
    if not isinstance(meta, dict):
        raise _bad(f"holds a {type(meta).__name__}, not an object", path)
    names = _names(meta.get("class_names"), "class_names", path) if "class_names" in meta else None
    if names is not None and "num_classes" in meta and meta["num_classes"] != len(names):
        raise _bad(f"num_classes {meta['num_classes']!r} differs from its {len(names)} class_names", path)
    if names is not None and isinstance(meta.get("palette"), list) and len(meta["palette"]) < len(names):
        raise _bad("has fewer palette colours than class_names", path)
    if meta.get("alarm") is not None:
        if names is None:
            raise _bad("has an 'alarm' rule but no class_names", path)
        _check_alarm(meta["alarm"], names, path)
    if meta.get("geometry") is not None:
        try:
            ScanGeometry.from_dict(meta["geometry"])
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise _bad(f"'geometry' is invalid ({exc})", path) from None
    size = meta.get("input_size")
    if size is not None and (
        not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size)
    ):
        raise _bad(f"input_size {size!r} is not [height, width]", path)
    return meta


def read_export_json(path: str | Path) -> dict:
    """The validated ``export.json`` at ``path`` (:func:`validate_export_metadata`)."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(f"is not valid JSON (truncated or edited? {exc})", path) from None
    except OSError as exc:
        raise ModelError(f"cannot read export.json ({exc.strerror or exc})", path=path, fix=REEXPORT) from None
    return validate_export_metadata(meta, path)


def export_source_file(meta: dict, metadata_file: str | Path) -> Path:
    """The ``.keras`` file an export was made from, checked against its digest (module docstring)."""
    metadata_file = Path(metadata_file)
    source, digest = meta.get("source"), meta.get("source_sha256")
    if not isinstance(source, str) or not source:
        raise ModelError("export.json names no source .keras file", path=metadata_file, fix=REEXPORT)
    if digest is None:  # an export from before the digest: as given, else beside the folders above the export
        tried = [Path(source)] + [parent / source for parent in metadata_file.resolve().parents]
        for candidate in tried if not Path(source).is_absolute() else tried[:1]:
            if candidate.is_file():
                warnings.warn(
                    f"{metadata_file}: export.json has no source_sha256, so {candidate} cannot be checked "
                    f"to be the model exported; {REEXPORT} to record it",
                    stacklevel=2,
                )
                return candidate
        raise ModelError(
            f"the source {source} named in export.json is gone", path=metadata_file, fix="give the run folder itself"
        )
    path = Path(source)
    if not path.is_file():
        raise ModelError(
            f"the source {source} named in export.json is gone (moved or deleted)",
            path=metadata_file,
            fix="calibrate or load the run folder itself, and export it again",
        )
    if file_sha256(path) != digest:
        raise ModelError(
            f"the source {source} is not the model this export was made from (its SHA-256 differs)",
            path=metadata_file,
            fix="give the run folder that was exported, or export the current model again",
        )
    return path
