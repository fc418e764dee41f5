"""Calibrate -> export -> station: the thresholds travel into export.json and the graph, and the
SavedModel's in-graph `alarm` equals `predict`'s decision on the same images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from test_screening_eval import make_run  # noqa: E402

from xray_seg.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def station(tiny_voc, tmp_path_factory):
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.serving.exporter import export_model

    base = tmp_path_factory.mktemp("station")
    names = read_class_names(tiny_voc)
    run = make_run(base / "run", names)
    assert main(["calibrate", str(run), str(tiny_voc), "--split", "train", "--target-pfa", "0.25"]) == 0
    export_model(run, base / "export", formats=("savedmodel",), progress=False)
    return names, run, base / "export"


def test_calibration_travels_into_the_export(station):
    _, run, export = station
    stored = json.loads((run / "alarm_thresholds.json").read_text())
    assert stored["calibrated"] and stored["calibration"]["target_pfa"] == 0.25
    assert stored["calibration"]["pfa"] <= 0.25
    meta = json.loads((export / "savedmodel" / "export.json").read_text())
    assert meta["alarm"]["thresholds"] == stored["thresholds"]
    info = tf.saved_model.load(str(export / "savedmodel")).signatures["model_info"]()
    np.testing.assert_allclose(info["alarm_thresholds"].numpy(), stored["thresholds"], rtol=1e-6)
    assert list(info["alarm_min_area"].numpy()) == stored["min_area"] and bool(info["alarm_calibrated"].numpy())


def test_signature_alarm_equals_predict(station, tiny_voc, tmp_path, capsys):
    from xray_seg.conversion.voc import VocLayout, read_split
    from xray_seg.core.images import read_image_rgb

    names, _, export = station
    layout = VocLayout(tiny_voc)
    paths = [layout.image_path(s) for s in read_split(tiny_voc, "train") + read_split(tiny_voc, "val")]
    assert main(["predict", str(export / "savedmodel"), *map(str, paths), "--out", str(tmp_path / "pred")]) == 0
    out = capsys.readouterr().out
    loaded = tf.saved_model.load(str(export / "savedmodel"))
    outcomes = []
    for path in paths:
        record = json.loads((tmp_path / "pred" / f"{path.stem}.json").read_text())
        got = loaded.signatures["serving_default"](images=tf.constant(read_image_rgb(path)[None]))
        assert bool(got["alarm"].numpy()[0]) == record["alarm"]
        graph_classes = [n for n, a in zip(names, got["alarm_per_class"].numpy()[0]) if a]
        assert graph_classes == record["alarm_classes"]
        assert record["alarm"] == any(it["alarm"] for it in record["items"])
        encoded = tf.constant([tf.io.encode_png(read_image_rgb(path)).numpy()])
        assert bool(loaded.signatures["serve_encoded"](encoded=encoded)["alarm"].numpy()[0]) == record["alarm"]
        outcomes.append(record["alarm"])
    assert set(outcomes) == {True, False}  # both decisions are exercised
    assert f"{len(paths)} bags, {sum(outcomes)} alarmed (calibrated thresholds)" in out
    assert (tmp_path / "pred" / "alarmed_contact_sheet.png").is_file()


def test_calibrate_an_export_rebuilds_its_graph(station, tiny_voc):
    names, _, export = station
    assert (
        main(["calibrate", str(export), str(tiny_voc), "--split", "train", "--target-pfa", "0.0", "--min-area", "60"])
        == 0
    )
    meta = json.loads((export / "savedmodel" / "export.json").read_text())
    assert meta["alarm"]["min_area"][1:] == [60] * (len(names) - 1)
    assert json.loads((export / "manifest.json").read_text())["export"]["alarm"] == meta["alarm"]
    info = tf.saved_model.load(str(export / "savedmodel")).signatures["model_info"]()
    np.testing.assert_allclose(info["alarm_thresholds"].numpy(), meta["alarm"]["thresholds"], rtol=1e-6)
    assert list(info["alarm_min_area"].numpy())[1:] == [60] * (len(names) - 1)
    assert not any(p.name.startswith(".savedmodel") for p in export.iterdir())


def test_calibrate_refuses_what_it_cannot_do(station, tiny_voc, tmp_path, capsys):
    import shutil

    _, _, export = station
    assert main(["calibrate", str(export), str(tiny_voc), "--target-pfa", "1.5"]) == 2
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    meta_file = copy / "savedmodel" / "export.json"
    meta = json.loads(meta_file.read_text())
    meta["source"] = str(tmp_path / "gone" / "best_model.keras")
    meta_file.write_text(json.dumps(meta))
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    assert main(["calibrate", str(copy), str(tiny_voc), "--split", "train"]) == 2
    assert "is gone" in capsys.readouterr().err
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before  # nothing touched
