"""Property-based fuzz targets for the COCO and PIXray readers (issue 28): hostile JSON never crashes them.

Whatever a COCO instance file or a PIXray ``.json`` file holds, listing, scanning and reading
every item, then rasterising its shapes, either succeeds or raises :class:`XraySegError`
(one line naming the file); never another exception, and never an allocation that grows
with a coordinate's value (coordinates up to 1e12 are drawn from hypothesis). Inputs: the seed
corpora ``tests/fuzz_corpus/coco/`` and ``tests/fuzz_corpus/pixray/`` (images from
``tests/fuzz_corpus/images/``) mutated by hypothesis: values replaced with arbitrary JSON,
keys dropped, coordinates made extreme, bytes flipped or truncated. Bounded: a fixed number
of examples, no deadline.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xray_seg.conversion.coco import CocoReader
from xray_seg.conversion.labelme import shapes_to_label
from xray_seg.conversion.pixray import PixrayReader
from xray_seg.core.errors import XraySegError

FUZZ = Path(__file__).resolve().parents[1] / "fuzz_corpus"
COCO_SEED = json.loads((FUZZ / "coco" / "instances.json").read_text())
PIXRAY_CORPUS = sorted((FUZZ / "pixray").glob("*.json"))
PIXRAY_SEEDS = [json.loads(p.read_text()) for p in PIXRAY_CORPUS]
FUZZ_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
coordinates = st.floats(-1e12, 1e12, allow_nan=False) | st.integers(-(2**40), 2**40)


def _images(folder: Path) -> None:
    for image in (FUZZ / "images").iterdir():
        shutil.copy(image, folder / image.name)


def _read_all(reader, where: Path) -> None:
    """List, scan, read and rasterise every item; only one-line XraySegErrors naming ``where`` may escape."""
    try:
        items = reader.items()
    except XraySegError as exc:
        assert "\n" not in exc.message and str(where) in exc.message
        return
    for item in items:
        reader.scan(item)
        try:
            record = reader.read(item)
            labels = {"__ignore__": -1, **{shape.label: 1 for shape in record.shapes if shape.label != "__ignore__"}}
            shapes_to_label(record.shapes, record.image.shape, labels)
        except XraySegError as exc:
            assert "\n" not in exc.message and str(where) in exc.message


def _check_coco(folder: Path, payload: bytes) -> None:
    path = folder / "instances.json"
    path.write_bytes(payload)
    _read_all(CocoReader(path), path)


def _check_pixray(folder: Path, payload: bytes) -> None:
    path = folder / "case.json"
    path.write_bytes(payload)
    _read_all(PixrayReader(folder), path)


def test_corpora_read_cleanly(tmp_path):
    (tmp_path / "coco").mkdir()
    (tmp_path / "pixray").mkdir()
    _images(tmp_path / "coco")
    _images(tmp_path / "pixray")
    path = tmp_path / "coco" / "instances.json"
    path.write_text(json.dumps(COCO_SEED))
    reader = CocoReader(path)
    assert [len(reader.read(item).shapes) for item in reader.items()] == [1, 2]
    assert len(PIXRAY_SEEDS) >= 2
    for doc in PIXRAY_SEEDS:
        (tmp_path / "pixray" / "case.json").write_text(json.dumps(doc))
        reader = PixrayReader(tmp_path / "pixray")
        assert [reader.read(item).shapes for item in reader.items()][0]


@FUZZ_SETTINGS
@given(
    section=st.sampled_from(["images", "annotations", "categories"]),
    index=st.integers(0, 2),
    key=st.sampled_from(
        ["id", "file_name", "width", "height", "image_id", "category_id", "segmentation", "iscrowd", "name"]
    ),
    value=json_values,
    top=st.sampled_from(["images", "annotations", "categories", None]),
    top_value=json_values,
)
def test_coco_mutated_fields_give_one_line_errors_only(tmp_path, section, index, key, value, top, top_value):
    _images(tmp_path)
    doc = json.loads(json.dumps(COCO_SEED))
    entries = doc[section]
    entries[index % len(entries)][key] = value
    if top is not None:
        doc[top] = top_value
    _check_coco(tmp_path, json.dumps(doc).encode())


@FUZZ_SETTINGS
@given(
    annotation=st.integers(0, 1), position=st.integers(0, 7), value=coordinates, extra=st.lists(coordinates, max_size=8)
)
def test_coco_extreme_coordinates_are_bounded(tmp_path, annotation, position, value, extra):
    _images(tmp_path)
    doc = json.loads(json.dumps(COCO_SEED))
    part = doc["annotations"][annotation]["segmentation"][0]
    part[position % len(part)] = value
    part += extra[: len(extra) // 2 * 2]
    _check_coco(tmp_path, json.dumps(doc).encode())


@FUZZ_SETTINGS
@given(cuts=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6), truncate=st.integers(0, 2000))
def test_coco_flipped_and_truncated_bytes_give_one_line_errors_only(tmp_path, cuts, truncate):
    _images(tmp_path)
    data = bytearray(json.dumps(COCO_SEED).encode())
    for pos, byte in cuts:
        data[pos % len(data)] = byte
    _check_coco(tmp_path, bytes(data[: max(1, truncate)] if truncate < len(data) else data))


@FUZZ_SETTINGS
@given(
    seed=st.sampled_from(range(len(PIXRAY_SEEDS))),
    field=st.sampled_from(["objects", "imagePath", "image", "width", "height"]),
    value=json_values,
    object_field=st.sampled_from(["label", "polygon"]),
    object_value=json_values | st.lists(st.tuples(coordinates, coordinates), min_size=3, max_size=5),
    drop=st.booleans(),
)
def test_pixray_mutated_fields_give_one_line_errors_only(
    tmp_path, seed, field, value, object_field, object_value, drop
):
    _images(tmp_path)
    doc = json.loads(json.dumps(PIXRAY_SEEDS[seed]))
    if drop:
        doc.pop(field, None)
    else:
        doc[field] = value
    if isinstance(doc.get("objects"), list) and doc["objects"] and isinstance(doc["objects"][0], dict):
        doc["objects"][0][object_field] = object_value
    _check_pixray(tmp_path, json.dumps(doc).encode())


@FUZZ_SETTINGS
@given(
    seed=st.sampled_from(range(len(PIXRAY_CORPUS))),
    cuts=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    truncate=st.integers(0, 400),
)
def test_pixray_flipped_and_truncated_bytes_give_one_line_errors_only(tmp_path, seed, cuts, truncate):
    _images(tmp_path)
    data = bytearray(PIXRAY_CORPUS[seed].read_bytes())
    for pos, byte in cuts:
        data[pos % len(data)] = byte
    _check_pixray(tmp_path, bytes(data[: max(1, truncate)] if truncate < len(data) else data))
