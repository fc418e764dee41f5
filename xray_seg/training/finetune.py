"""Fine-tuning callbacks: the backbone frozen for the first epochs, and early stopping.

docs/training.md, "Fine-tuning: freezing, learning-rate multipliers, early stopping", says
when to use which. The papers train from scratch and are silent on both; the choices:

- **Freezing** (``freeze: backbone``, ``freeze_epochs: N``, :class:`BackboneFreeze`): the
  backbone is the model's backbone sub-model
  (:func:`~xray_seg.models.backbones.pretrained.backbone_of`). For epochs 1..N its layers are
  not trainable: no gradient reaches its weights, and its batch norms run in inference mode
  (Keras's rule, kept by :class:`~xray_seg.layers.norm.BatchNorm`'s fused path: statistics
  move only when ``training and trainable``), so its moving statistics stay as loaded too.
  Keras traces the train step once, with the trainable variables of that moment, so the
  step is re-traced where the set changes (``make_train_function(force=True)``), and the
  optimizer is built over every variable before the first frozen step: a Keras optimizer
  updates only the variables it was built with.
- **Early stopping** (``early_stop_patience: P``, :class:`EarlyStopOnMiou`): patience counts
  *validations*, not epochs. The trainer validates every ``val_every`` epochs, so training
  stops after P validations in a row whose val mIoU is not above the best so far (up to
  ``P x val_every`` epochs). The stopping epoch has validated, been checkpointed and written
  to ``history.csv`` like any other; ``checkpoints/state.json`` says how many epochs ran.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import keras

from xray_seg.core.layouts import RunLayout
from xray_seg.models.backbones.pretrained import backbone_of


class BackboneFreeze(keras.callbacks.Callback):
    """Keep ``backbone`` frozen (weights and batch-norm statistics) for the first ``epochs`` epochs.

    The layers are frozen from the start of each frozen epoch to its end and their own
    trainable flags restored in between, so the checkpoints and ``best_model.keras`` written
    at the end of an epoch record the model as built (trainable), not frozen.

    Args:
        backbone: the sub-model to freeze (:func:`~xray_seg.models.backbones.pretrained.backbone_of`).
        epochs: how many epochs, counted from the first of the run, it stays frozen.
    """

    def __init__(self, backbone, epochs: int):
        super().__init__()
        self.backbone = backbone
        self.epochs = int(epochs)
        self._flags = None  # {layer: trainable} saved while frozen
        self._traced_frozen = None  # whether the current train function was traced frozen

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            with self.model.distribute_strategy.scope():
                optimizer.build(self.model.trainable_variables)
        self._traced_frozen = None

    def on_epoch_begin(self, epoch, logs=None):
        frozen = epoch < self.epochs
        if frozen:
            self._freeze()
        if frozen != self._traced_frozen:
            if self._traced_frozen is not None or frozen:
                self._announce(epoch, frozen)
            self.model.make_train_function(force=True)
            self._traced_frozen = frozen

    def on_epoch_end(self, epoch, logs=None):
        self._restore()

    def on_train_end(self, logs=None):
        self._restore()

    def _freeze(self):
        if self._flags is None:
            layers = [self.backbone, *self.backbone._flatten_layers(include_self=False, recursive=True)]
            self._flags = {layer: layer.trainable for layer in layers}
            self.backbone.trainable = False

    def _restore(self):
        if self._flags is not None:
            for layer, flag in self._flags.items():
                layer._trainable = flag  # each layer its own flag (the setter would cascade)
                for variable in layer._trainable_variables:
                    variable.trainable = flag
            self._flags = None

    def _announce(self, epoch, frozen):
        name = self.backbone.name
        if frozen:
            tensors = len(self.backbone.weights)
            print(
                f"epochs {epoch + 1}..{self.epochs}: backbone {name!r} frozen ({tensors} tensors, batch norm in inference mode)"
            )
        else:
            print(f"epoch {epoch + 1}: backbone {name!r} unfrozen")


class EarlyStopOnMiou(keras.callbacks.Callback):
    """Stop after ``patience`` validations in a row without a val mIoU above the best so far.

    Runs after the checkpoint and ``history.csv`` callbacks, so the last epoch is recorded
    before training stops. Epochs that do not validate (no ``val_miou`` in the logs) neither
    count nor reset the count; a NaN mIoU counts as no improvement.

    Args:
        patience: validations without improvement before stopping (>= 1).
        best: the best val mIoU so far (a resumed run's, from ``state.json``).
        waited: validations since that best (a resumed run's, :func:`validations_since`).
    """

    def __init__(self, patience: int, *, best: float = -1.0, best_epoch: int = 0, waited: int = 0):
        super().__init__()
        self.patience = int(patience)
        self.best, self.best_epoch, self.waited = float(best), int(best_epoch), int(waited)
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        miou = (logs or {}).get("val_miou")
        if miou is None:
            return
        if math.isfinite(miou) and miou > self.best:
            self.best, self.best_epoch, self.waited = float(miou), epoch + 1, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True
            print(
                f"early stop after epoch {epoch + 1}: val mIoU has not improved on {self.best:.4f} "
                f"(epoch {self.best_epoch}) for {self.waited} validation(s) in a row"
            )


def validations_since(history_csv: Path, epoch: int) -> int:
    """Rows of ``history.csv`` after ``epoch`` that have a val mIoU (0 without the file)."""
    if not Path(history_csv).is_file():
        return 0
    with open(history_csv, newline="") as fh:
        return sum(1 for row in csv.DictReader(fh) if row.get("val_miou") and int(float(row.get("epoch") or 0)) > epoch)


def fine_tuning_callbacks(cfg, model, state: dict, run_dir: Path) -> tuple[list, list]:
    """``(first, last)``: the callbacks ``cfg`` asks for, to go first (``freeze``: it restores
    the trainable flags before the checkpoint saves the model) and last (``early_stop_patience``:
    after the checkpoint and ``history.csv``) in the trainer's list; ``state`` is the run's
    (:func:`~xray_seg.training.trainer.prepare_run_dir`)."""
    first, callbacks = [], []
    if cfg.freeze == "backbone":
        first.append(BackboneFreeze(backbone_of(model), cfg.freeze_epochs))
    if cfg.early_stop_patience:
        waited = validations_since(RunLayout(run_dir).history_csv, state["best_epoch"]) if state["epochs_done"] else 0
        callbacks.append(
            EarlyStopOnMiou(
                cfg.early_stop_patience, best=state["best_miou"], best_epoch=state["best_epoch"], waited=waited
            )
        )
    return first, callbacks
