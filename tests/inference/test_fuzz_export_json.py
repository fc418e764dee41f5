"""Property-based fuzz target for the export reader: a hostile ``export.json`` never crashes it.

Whatever an export's ``export.json`` holds, :func:`read_export_json` either returns metadata
that every reader can use (the tile and geometry, the class names and palette, the alarm rule,
the engine-file digests) or raises one :class:`~xray_seg.core.errors.ModelError` line naming the
file; never another exception. Input: the seed ``tests/fuzz_corpus/export/export.json`` (a
real export's) mutated by hypothesis: values replaced with arbitrary JSON (NaN, infinities,
huge numbers included), keys dropped, lists shortened, bytes flipped or truncated. Bounded: a
fixed number of examples, no deadline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xray_seg.core.errors import ModelError
from xray_seg.inference.alarm_rule import AlarmRule
from xray_seg.inference.export_file import read_export_json
from xray_seg.serving.engines import ExportInfo

SEED_FILE = Path(__file__).resolve().parents[1] / "fuzz_corpus" / "export" / "export.json"
SEED = json.loads(SEED_FILE.read_text())
FUZZ_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
# (path inside the document, as keys and list indices) of the values a reader uses
FIELDS = [
    ("class_names",),
    ("class_names", 1),
    ("num_classes",),
    ("palette",),
    ("palette", 2),
    ("palette", 2, 0),
    ("input_size",),
    ("input_size", 0),
    ("model_name",),
    ("source",),
    ("source_sha256",),
    ("geometry",),
    ("geometry", "tile"),
    ("geometry", "tile", 1),
    ("geometry", "scale"),
    ("geometry", "overlap"),
    ("geometry", "pad_value"),
    ("geometry", "blend_sigma"),
    ("alarm",),
    ("alarm", "class_names"),
    ("alarm", "thresholds"),
    ("alarm", "thresholds", 1),
    ("alarm", "min_area"),
    ("alarm", "min_area", 2),
    ("alarm", "closing"),
    ("alarm", "calibrated"),
    ("alarm", "calibration"),
    ("engine_files",),
    ("engine_files", "model.onnx"),
    ("engine_files", "model.onnx", "sha256"),
    ("engine_files", "model.onnx", "bytes"),
]


def _use(meta: dict, root: Path) -> None:
    """What the loader and the station engines do with accepted metadata."""
    info = ExportInfo(root, meta)
    names = info.class_names
    if meta.get("geometry") or meta.get("input_size"):
        tile = info.tile
        geometry = info.geometry
        assert geometry.tile == tile and len(geometry.tile_origins(*tile)) >= 1
        assert np.isfinite(geometry.tile_weights()).all()
    if names:
        palette = np.asarray(meta.get("palette") or [[0, 0, 0]] * len(names), dtype=np.uint8)
        assert palette.shape[1:] == (3,) and len(palette) >= len(names)
    if meta.get("alarm") is not None:
        rule = AlarmRule.from_dict(meta["alarm"])
        assert rule.class_names == names and isinstance(rule.item_min_area(), int)
    for name, entry in (meta.get("engine_files") or {}).items():
        assert (root / name).resolve().is_relative_to(root.resolve()) and int(entry["bytes"]) >= 0


def _check(folder: Path, payload: bytes) -> None:
    path = folder / "export.json"
    path.write_bytes(payload)
    try:
        meta = read_export_json(path)
    except ModelError as exc:
        assert "\n" not in exc.message and str(path) in exc.message and "Fix:" in exc.message
        return
    _use(meta, folder)


def _set(doc, where: tuple, value, drop: bool) -> None:
    *parents, last = where
    for key in parents:
        if isinstance(key, int):
            if not isinstance(doc, list) or not doc:
                return
            doc = doc[key % len(doc)]
        elif isinstance(doc, dict) and key in doc:
            doc = doc[key]
        else:
            return
    if isinstance(last, int) and isinstance(doc, list) and doc:
        if drop:
            del doc[last % len(doc)]
        else:
            doc[last % len(doc)] = value
    elif isinstance(doc, dict):
        if drop:
            doc.pop(last, None)
        else:
            doc[last] = value


def test_the_seed_reads_cleanly(tmp_path):
    _check(tmp_path, SEED_FILE.read_bytes())
    meta = read_export_json(tmp_path / "export.json")
    assert meta["class_names"] == SEED["class_names"] and meta["engine_files"]


@FUZZ_SETTINGS
@given(
    edits=st.lists(st.tuples(st.sampled_from(FIELDS), json_values, st.booleans()), min_size=1, max_size=3),
)
def test_mutated_fields_give_one_line_errors_only(tmp_path, edits):
    doc = json.loads(json.dumps(SEED))
    for where, value, drop in edits:
        _set(doc, where, value, drop)
    _check(tmp_path, json.dumps(doc).encode())


@FUZZ_SETTINGS
@given(
    where=st.sampled_from(FIELDS),
    number=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0.0", "9" * 5000, "1" + "0" * 400]),
)
def test_extreme_numbers_give_one_line_errors_only(tmp_path, where, number):
    doc = json.loads(json.dumps(SEED))
    _set(doc, where, "@@NUMBER@@", drop=False)
    _check(tmp_path, json.dumps(doc).replace('"@@NUMBER@@"', number).encode())


@FUZZ_SETTINGS
@given(cuts=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), max_size=6), truncate=st.integers(0, 5000))
def test_flipped_and_truncated_bytes_give_one_line_errors_only(tmp_path, cuts, truncate):
    data = bytearray(SEED_FILE.read_bytes())
    for pos, byte in cuts:
        data[pos % len(data)] = byte
    _check(tmp_path, bytes(data[: max(1, truncate)] if truncate < len(data) else data))


def test_shapes_other_than_an_object_give_one_line_errors(tmp_path):
    for payload in (b"[]", b"null", b"3", b'"export"', b"[" * 100_000, b"\xff\xfe", b""):
        _check(tmp_path, payload)
