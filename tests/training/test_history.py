"""History (issue 29): validation columns only on epochs that validate (blank cells in history.csv,
absent from the console and TensorBoard), epochs from 1 everywhere, one learning-rate tag."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import keras

from xray_seg.evaluation.report import read_history_csv
from xray_seg.training.callbacks import EpochTensorBoard, HistoryCSV, ValidationCallback

VAL_KEYS = ["val_miou", "val_iou_gun"]


def _epochs(callback, logs_per_epoch, start=0):
    callback.on_train_begin()
    for i, logs in enumerate(logs_per_epoch, start=start):
        callback.on_epoch_end(i, dict(logs))


def test_history_csv_counts_from_one_and_leaves_unvalidated_cells_blank(tmp_path):
    path = tmp_path / "history.csv"
    _epochs(HistoryCSV(path, VAL_KEYS), [{"loss": 2.0, "lr": 0.1}, {"loss": 1.0, "lr": 0.05, "val_miou": 0.5}])
    rows = list(csv.DictReader(path.open(newline="")))
    assert list(rows[0]) == ["epoch", "loss", "lr", "val_iou_gun", "val_miou"]
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["val_miou"] == "" and rows[1]["val_miou"] == "0.5" and rows[1]["val_iou_gun"] == ""
    # a resumed run appends under the same header, numbering on
    _epochs(HistoryCSV(path, VAL_KEYS, append=True), [{"loss": 0.5, "lr": 0.01, "val_miou": 0.6}], start=2)
    columns = read_history_csv(path)  # the report's reader takes blanks as NaN
    assert columns["epoch"].tolist() == [1, 2, 3] and columns["val_miou"][1:].tolist() == [0.5, 0.6]


def test_an_epoch_without_validation_adds_no_val_keys():
    callback = ValidationCallback(None, ["background", "gun"], every=2)
    callback.set_params({"epochs": 3})
    callback.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=0.1)))
    logs = {"loss": 1.0}
    callback.on_epoch_end(0, logs)
    assert set(logs) == {"loss", "lr"}
    assert callback.val_keys() == ["val_miou", "val_mpa", "val_pa", "val_iou_background", "val_iou_gun"]


def test_tensorboard_counts_from_one_with_one_learning_rate_tag(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(
        keras.callbacks.TensorBoard, "on_epoch_end", lambda self, epoch, logs=None: seen.append((epoch, logs))
    )
    EpochTensorBoard(log_dir=str(tmp_path)).on_epoch_end(0, {"loss": 1.0, "lr": 0.1})
    assert seen == [(1, {"loss": 1.0})]
