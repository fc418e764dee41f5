"""Property-based fuzz target for the Labelme reader (issue 16): hostile JSON never crashes it.

Whatever bytes or JSON values a ``.json`` file holds, :func:`read_labelme` followed by the
rasteriser either succeeds or raises :class:`DatasetError` (one line naming the file);
never another exception. Inputs: the seed corpus ``tests/fuzz_corpus/labelme/`` mutated
by hypothesis (values replaced with arbitrary JSON, keys dropped, bytes flipped or
truncated), plus arbitrary JSON documents. Bounded: a fixed number of examples, no deadline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xray_seg.conversion.labelme import read_labelme, shapes_to_label
from xray_seg.core.errors import DatasetError

CORPUS = sorted((Path(__file__).resolve().parents[1] / "fuzz_corpus" / "labelme").glob("*.json"))
SEEDS = [json.loads(p.read_text()) for p in CORPUS]
FIELDS = ["shapes", "imagePath", "imageData", "imageHeight", "imageWidth"]
SHAPE_FIELDS = ["label", "points", "shape_type", "mask", "group_id"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def _check(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "case.json"
    path.write_bytes(payload)
    try:
        record = read_labelme(path, tmp_path)
        labels = {shape.label: 1 for shape in record.shapes}
        shapes_to_label(record.shapes, record.image.shape, {"__ignore__": -1, **labels})
    except DatasetError as exc:
        assert "\n" not in exc.message and str(path) in exc.message


def test_corpus_reads_cleanly(tmp_path):
    assert len(CORPUS) >= 3
    for doc in SEEDS:
        path = tmp_path / "seed.json"
        path.write_text(json.dumps(doc))
        assert read_labelme(path, tmp_path).shapes


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    field=st.sampled_from(FIELDS),
    value=json_values,
    shape_field=st.sampled_from(SHAPE_FIELDS),
    shape_value=json_values,
    drop=st.booleans(),
)
def test_mutated_fields_give_dataset_errors_only(tmp_path, seed, field, value, shape_field, shape_value, drop):
    doc = json.loads(json.dumps(SEEDS[seed]))
    if drop:
        doc.pop(field, None)
    else:
        doc[field] = value
    if isinstance(doc.get("shapes"), list) and doc["shapes"] and isinstance(doc["shapes"][0], dict):
        doc["shapes"][0][shape_field] = shape_value
    _check(tmp_path, json.dumps(doc).encode())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.sampled_from(range(len(CORPUS))),
    cuts=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=6),
    truncate=st.integers(0, 4000),
)
def test_flipped_and_truncated_bytes_give_dataset_errors_only(tmp_path, seed, cuts, truncate):
    data = bytearray(CORPUS[seed].read_bytes())
    for pos, byte in cuts:
        data[pos % len(data)] = byte
    _check(tmp_path, bytes(data[: max(1, truncate)] if truncate < len(data) else data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=json_values)
def test_arbitrary_json_documents_give_dataset_errors_only(tmp_path, doc):
    _check(tmp_path, json.dumps(doc).encode())


@pytest.mark.parametrize("points", [[[0, 0], [1e308, 1e308], [-1e308, 5]], [[2, 2], [2, 2], [2, 2]]])
def test_extreme_coordinates_are_handled(tmp_path, points):
    doc = json.loads(json.dumps(SEEDS[0]))
    doc["shapes"][0]["points"] = points
    _check(tmp_path, json.dumps(doc).encode())
