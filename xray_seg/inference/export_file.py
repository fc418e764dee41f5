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
MAX_TILE = 8192  # pixels per tile side; an export's tile is its training size
MAX_CLOSING = 64  # pixels of the alarm's morphological closing


def _bad(problem: str, path: Path) -> ModelError:
    return ModelError(f"export.json {problem}", path=path, fix=REEXPORT)


def _names(value, what: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(n, str) and n for n in value):
        raise _bad(f"has no valid {what} (a list of non-empty names)", path)
    return value


def _is_colour(value) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(_is_number(v) and 0 <= v <= 255 for v in value)


def _check_palette(palette, names: list[str] | None, path: Path) -> None:
    if not isinstance(palette, list) or not all(_is_colour(c) for c in palette):
        raise _bad("'palette' is not a list of [r, g, b] colours (0..255)", path)
    if names is not None and len(palette) < len(names):
        raise _bad("has fewer palette colours than class_names", path)


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
            if not _is_number(value):
                raise _bad(f"'alarm' {key} holds {value!r}, not a finite number", path)
    if any(not 0.0 <= t <= 1.0 for t in alarm["thresholds"]) or any(a < 0 for a in alarm["min_area"]):
        raise _bad("'alarm' thresholds must lie in [0, 1] and min_area be >= 0", path)
    closing = alarm.get("closing", 0)
    if isinstance(closing, bool) or not isinstance(closing, int) or not 0 <= closing <= MAX_CLOSING:
        raise _bad(f"'alarm' closing {closing!r} is not a whole number in [0, {MAX_CLOSING}]", path)
    if not isinstance(alarm.get("calibrated", False), bool) or not isinstance(alarm.get("calibration", {}), dict):
        raise _bad("'alarm' calibrated is not true/false or its calibration not an object", path)


def _is_number(value) -> bool:
    """A finite JSON number (not a bool); integers beyond a float's range are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) < 2**63 if isinstance(value, int) else math.isfinite(value)


def _check_geometry(data, size, path: Path) -> None:
    """The tiling rule: what :meth:`ScanGeometry.from_dict` accepts, with finite values in the
    ranges an export writes, and its tile the ``input_size``."""
    if not isinstance(data, dict):
        raise _bad("'geometry' is not an object", path)
    try:
        geometry = ScanGeometry.from_dict(data)
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise _bad(f"'geometry' is invalid ({str(exc)[:200]})", path) from None
    values = [data.get(key, 0.0) for key in ("scale", "overlap", "pad_value", "blend_sigma")]
    if not all(_is_number(v) for v in [*values, *data["tile"]]):
        raise _bad("'geometry' holds a value that is not a finite number", path)
    if not (0 < geometry.scale <= 64 and 0 <= geometry.pad_value <= 255 and geometry.blend_sigma <= 16):
        raise _bad("'geometry' scale, pad_value or blend_sigma lies outside (0, 64], [0, 255], [0, 16]", path)
    if max(geometry.tile) > MAX_TILE or (size is not None and list(geometry.tile) != list(size)):
        raise _bad(f"'geometry' tile {list(geometry.tile)} is not the input_size {size} (or over {MAX_TILE})", path)


def _check_engine_files(files, path: Path) -> None:
    """``engine_files``: ``{relative path: {"sha256": 64 hex digits, "bytes": int >= 0}}``."""
    if not isinstance(files, dict):
        raise _bad("'engine_files' is not an object", path)
    for name, entry in files.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
        ok = ok and all(c in "0123456789abcdef" for c in entry["sha256"])
        size = entry.get("bytes") if isinstance(entry, dict) else None
        if not ok or isinstance(size, bool) or not isinstance(size, int) or size < 0 or name.startswith(("/", "..")):
            raise _bad(f"'engine_files' entry {name!r} is not a relative path with sha256 and bytes", path)


def validate_export_metadata(meta, path: Path) -> dict:
    """``meta`` (parsed ``export.json`` at ``path``) if it is whole and consistent, else ModelError."""
    if not isinstance(meta, dict):
        raise _bad(f"holds a {type(meta).__name__}, not an object", path)
    names = _names(meta.get("class_names"), "class_names", path) if "class_names" in meta else None
    if names is not None and "num_classes" in meta and meta["num_classes"] != len(names):
        raise _bad(f"num_classes {meta['num_classes']!r} differs from its {len(names)} class_names", path)
    if names is not None and len(names) > 255:
        raise _bad(f"names {len(names)} classes; a uint8 class map holds at most 255", path)
    if meta.get("palette") is not None:
        _check_palette(meta["palette"], names, path)
    if meta.get("alarm") is not None:
        if names is None:
            raise _bad("has an 'alarm' rule but no class_names", path)
        _check_alarm(meta["alarm"], names, path)
    size = meta.get("input_size")
    if size is not None and (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_TILE for v in size)
    ):
        raise _bad(f"input_size {size!r} is not [height, width] (1 to {MAX_TILE} each)", path)
    if meta.get("geometry") is not None:
        _check_geometry(meta["geometry"], size, path)
    for key in ("model_name", "source", "source_sha256"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise _bad(f"{key} {meta[key]!r} is not a string", path)
    if meta.get("engine_files") is not None:
        _check_engine_files(meta["engine_files"], path)
    return meta


def read_export_json(path: str | Path) -> dict:
    """The validated ``export.json`` at ``path`` (:func:`validate_export_metadata`)."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: also ints over 4300 digits
        raise _bad(f"is not valid JSON (truncated or edited? {str(exc)[:200]})", path) from None
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
