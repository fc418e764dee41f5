"""Keras callbacks of the trainer: validation by confusion matrix, checkpoints, NaN stop.

The validation callback must run before the checkpoint, history.csv and TensorBoard
callbacks in the list: it adds ``lr`` and, on the epochs that validate, ``val_miou``,
``val_mpa``, ``val_pa`` and per-class ``val_iou_<name>`` to the epoch logs that those
callbacks then record. Epochs are numbered from 1 in the console, ``history.csv`` and
TensorBoard; an epoch that does not validate has no ``val_*`` value anywhere (blank cells
in ``history.csv``).
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from xray_seg.core.errors import XraySegError
from xray_seg.core.fileio import atomic_path, write_json_atomic
from xray_seg.core.layouts import RunLayout
from xray_seg.core.model_metadata import run_model_metadata, write_model_metadata
from xray_seg.core.viz import overlay
from xray_seg.evaluation.metrics import confusion_matrix, segmentation_scores
from xray_seg.inference.tta import batch_class_maps
from xray_seg.models.outputs import logits_of


class TrainingError(XraySegError):
    """Training cannot continue (e.g. the loss became NaN)."""


class ValidationCallback(keras.callbacks.Callback):
    """Paper-1 metrics on the validation split every ``every`` epochs (eqs. 4-7).

    One confusion matrix is accumulated over the whole split, never averaged per batch.
    """

    def __init__(self, dataset, class_names, *, every=1, log_dir=None, num_images=4, geometry=None):
        super().__init__()
        self.dataset = dataset
        self.geometry = geometry  # ScanGeometry: scans other than one tile are tiled (docs/architecture.md)
        self.class_names = list(class_names)
        self.every = max(1, int(every))
        self.num_images = num_images
        self.writer = None
        if log_dir is not None and num_images > 0:
            self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "val_images"))
        self.last_scores = None
        self._forward = None

    def evaluate(self):

        k = len(self.class_names)
        cm = np.zeros((k, k), dtype=np.int64)
        samples = []
        if self._forward is None:
            # A plain compiled forward pass: Keras' predict_on_batch under MirroredStrategy
            # feeds the whole batch to every replica, which would count pixels several times.
            self._forward = tf.function(lambda x: logits_of(self.model(x, training=False)), reduce_retracing=True)
        for images, masks in self.dataset:
            if self.geometry is None or self.geometry.is_single_tile(*images.shape[1:3]):
                pred = np.argmax(self._forward(images).numpy(), axis=-1)
            else:
                pred = batch_class_maps(self._forward, np.asarray(images), self.geometry)
            cm += confusion_matrix(np.asarray(masks), pred, k)
            if len(samples) < self.num_images:
                samples.append((np.asarray(images[0]), pred[0]))
        return segmentation_scores(cm, self.class_names), samples

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if (epoch + 1) % self.every and epoch + 1 != self.params.get("epochs"):
            return  # no val_* keys: nothing to print, blank cells in history.csv (HistoryCSV)
        scores, samples = self.evaluate()
        self.last_scores = scores
        logs["val_miou"] = scores["miou"]
        logs["val_mpa"] = scores["mpa"]
        logs["val_pa"] = scores["pa"]
        for name, iou in zip(self.class_names, scores["iou"]):
            logs[f"val_iou_{name}"] = float("nan") if iou is None else float(iou)
        print(f"\nepoch {epoch + 1}: val mIoU {scores['miou']:.4f}  mPA {scores['mpa']:.4f}  PA {scores['pa']:.4f}")
        if self.writer is not None and samples:
            self._log_images(epoch, samples)

    def _log_images(self, epoch, samples):

        grid = np.stack([overlay(np.clip(img, 0, 255).astype(np.uint8), pred) for img, pred in samples])
        with self.writer.as_default():
            tf.summary.image("predictions", grid, step=epoch + 1, max_outputs=len(samples))
        self.writer.flush()

    def val_keys(self) -> list[str]:
        """The log keys an epoch that validates adds."""
        return ["val_miou", "val_mpa", "val_pa"] + [f"val_iou_{n}" for n in self.class_names]


class HistoryCSV(keras.callbacks.Callback):
    """``history.csv``: a row per epoch, numbered from 1, with the columns Keras' ``CSVLogger``
    wrote (``epoch`` then the sorted log keys) plus ``val_keys`` from the first row on; a key an
    epoch has no value for (validation on an epoch that does not validate) is a blank cell.
    ``append`` continues the file of a resumed run with its own header."""

    def __init__(self, path, val_keys, *, append=False):
        super().__init__()
        self.path, self.val_keys, self.append = Path(path), list(val_keys), append
        self.columns = None

    def on_train_begin(self, logs=None):
        self.columns = None
        if self.append and self.path.is_file() and self.path.stat().st_size:
            with self.path.open(newline="") as fh:
                self.columns = next(csv.reader(fh), None)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.columns is None:
            self.columns = ["epoch", *sorted(set(logs) | set(self.val_keys))]
            with self.path.open("w", newline="") as fh:
                csv.writer(fh).writerow(self.columns)
        row = {**{k: _cell(v) for k, v in logs.items()}, "epoch": epoch + 1}
        with self.path.open("a", newline="") as fh:
            csv.writer(fh).writerow([row.get(k, "") for k in self.columns])


def _cell(value):
    try:
        return float(np.asarray(value).item()) if np.ndim(value) == 0 else value
    except (TypeError, ValueError):
        return value


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard with epochs from 1, as the console and ``history.csv`` count them, and one
    learning-rate tag (Keras' own ``epoch_learning_rate``; our ``lr`` log key is left out)."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, {k: v for k, v in (logs or {}).items() if k != "lr"})


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where it happened."""

    def __init__(self):
        super().__init__()
        self.where = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = (self._epoch + 1, batch + 1)
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` and ``train_images_per_sec`` to the epoch logs."""

    def __init__(self, images_per_epoch):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        if logs is not None:
            logs["epoch_seconds"] = seconds
            logs["train_images_per_sec"] = self.images_per_epoch / seconds


class RunCheckpoint(keras.callbacks.Callback):
    """Every epoch: ``checkpoints/last.weights.h5`` (model + optimizer state) and
    ``checkpoints/state.json`` (epochs done, best mIoU). On a new best ``val_miou``:
    ``checkpoints/best.weights.h5`` and ``best_model.keras``, the inference model
    (main logits only) that evaluate, predict and export load.
    """

    def __init__(self, run_dir, inference_model, *, best_miou=-1.0, best_epoch=0):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.layout = RunLayout(run_dir)
        self.inference_model = inference_model
        self.best_miou = best_miou
        self.best_epoch = best_epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return  # never overwrite a good checkpoint with NaN weights
        miou = logs.get("val_miou")
        if miou is not None and math.isfinite(miou) and miou > self.best_miou:
            self.best_miou, self.best_epoch = float(miou), epoch + 1
            with atomic_path(self.layout.best_weights) as tmp:
                self.model.save_weights(tmp)
            with atomic_path(self.layout.best_model) as tmp:
                self.inference_model.save(tmp)
                write_model_metadata(tmp, run_model_metadata(self.run_dir, self.inference_model))
        with atomic_path(self.layout.last_weights) as tmp:
            self.model.save_weights(tmp)
        save_rng_state(self.model, self.layout.rng_state)
        write_json_atomic(self.layout.state_file, self.state(epoch + 1))

    def state(self, epochs_done):
        return {"epochs_done": epochs_done, "best_miou": self.best_miou, "best_epoch": self.best_epoch}


def _seed_states(model):
    # Dropout and other random layers keep a SeedGenerator state that save_weights skips.
    return [v for v in model.non_trainable_variables if "seed_generator_state" in v.path]


def save_rng_state(model, path) -> None:
    """Save the models' random-layer (dropout) generator states, for an exact resume."""
    states = {f"s{i}": keras.ops.convert_to_numpy(v.value) for i, v in enumerate(_seed_states(model))}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **states)


def load_rng_state(model, path) -> None:
    """Restore what :func:`save_rng_state` saved (no-op if the file is absent)."""
    if not Path(path).is_file():
        return
    with np.load(path) as data:
        for i, v in enumerate(_seed_states(model)):
            v.assign(data[f"s{i}"])


def read_state(run_dir) -> dict:
    path = RunLayout(run_dir).state_file
    if not path.is_file():
        raise TrainingError("no checkpoint to resume from", path=path, fix="start a new run without --resume")
    return json.loads(path.read_text())
