"""Issue 28: the ``xray_seg.json`` entry of a ``.keras`` zip is size-checked before it is read."""

from __future__ import annotations

import json
import tracemalloc
import zipfile

import pytest

from xray_seg.core.errors import ModelError
from xray_seg.core.model_metadata import METADATA_ENTRY, read_model_metadata


def _keras(path, text: str):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        archive.writestr(METADATA_ENTRY, text)
    return path


def test_a_deflate_bomb_entry_is_refused_from_its_declared_size(tmp_path):
    path = _keras(tmp_path / "bomb.keras", '{"class_names": ["a"], "pad": "' + " " * (8 << 20) + '"}')
    assert path.stat().st_size < 100_000  # 8 MB of metadata in a few KB of zip
    tracemalloc.start()
    with pytest.raises(ModelError) as info:
        read_model_metadata(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "over the bound of 1048576 bytes" in info.value.message and str(path) in info.value.message
    assert peak < 2_000_000


@pytest.mark.parametrize(
    "meta", [{"class_names": ["_background_", 3]}, {"class_names": "gun"}, {"class_names": ["a"], "model_name": [1]}]
)
def test_non_string_names_are_one_model_error(tmp_path, meta):
    with pytest.raises(ModelError, match="must be"):
        read_model_metadata(_keras(tmp_path / "m.keras", json.dumps(meta)))


def test_good_and_absent_metadata(tmp_path):
    assert read_model_metadata(_keras(tmp_path / "m.keras", '{"class_names": ["_background_", "gun"]}')) == {
        "class_names": ["_background_", "gun"]
    }
    assert read_model_metadata(_keras(tmp_path / "bad.keras", "not json")) is None
