"""Paper 1's segmentation metrics (sec. 4.3, eqs. 4-7) from one confusion matrix.

Metrics are always computed from a single confusion matrix accumulated over the whole
split (never averaged per batch or per image). ``cm[i, j]`` counts pixels of true class
``i`` predicted as ``j`` (rows = truth, columns = prediction, paper 1's ``p_ij``).
Pixels labelled 255 (ignore) are never counted.

- PA (eq. 4): ``sum_i p_ii / sum_ij p_ij``, the overall pixel accuracy.
- per-class PA: recall ``p_ii / sum_j p_ij``. mPA (eq. 5) is the mean of the per-class
  PA (eq. 5 as printed divides the overall PA by k+1 again; we follow its name and the
  usual definition, mmseg's ``mAcc``).
- IoU (eq. 6): ``p_ii / (sum_j p_ij + sum_j p_ji - p_ii)``; mIoU (eq. 7) its mean.

Absent classes (mmseg's ``nanmean`` convention):

- a class absent from both truth and prediction has undefined (NaN) IoU and PA and is
  left out of mIoU and mPA;
- a class absent from the truth but predicted somewhere has IoU 0 (it counts in mIoU,
  false positives are punished) and undefined (NaN) PA (left out of mPA);
- ``segmentation_scores`` reports which classes were in the truth and which were
  evaluated (had a defined IoU).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from xray_seg.core.constants import IGNORE_LABEL
from xray_seg.core.errors import DatasetError

IGNORE_INDEX = IGNORE_LABEL  # the project's one ignore label

ABSENT_CLASS_POLICY = (
    "A class absent from both truth and prediction has undefined (NaN) IoU and PA and is excluded "
    "from mIoU and mPA; a class absent from the truth but predicted has IoU 0 (included in mIoU) and "
    "undefined PA (excluded from mPA)."
)


def confusion_matrix(y_true, y_pred, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Confusion matrix ``[K, K]`` (int64) of label arrays of any equal shape.

    Args:
        y_true: true labels (0..K-1, ``ignore_index`` for ignore).
        y_pred: predicted labels (0..K-1).
        num_classes: K.
        ignore_index: truth value whose pixels are not counted.

    Raises:
        DatasetError: a truth label outside 0..K-1 that is not ``ignore_index``.
        ValueError: shapes differ, or a prediction outside 0..K-1.
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred_arr = np.asarray(y_pred)
    if y_pred_arr.size != y_true.size:
        raise ValueError(f"y_true and y_pred differ in size: {np.shape(y_true)} vs {np.shape(y_pred)}")
    y_pred = y_pred_arr.astype(np.int64).ravel()
    valid = y_true != ignore_index
    t, p = y_true[valid], y_pred[valid]
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        bad = sorted(set(np.unique(t[(t < 0) | (t >= num_classes)]).tolist()))
        raise DatasetError(
            f"label values {bad} are outside 0..{num_classes - 1} and are not {ignore_index} (ignore)",
            fix="check class_names.txt against the masks, or re-run xray-seg convert",
        )
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"predictions must lie in 0..{num_classes - 1}, got [{p.min()}, {p.max()}]")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def segmentation_scores(cm, class_names: Sequence[str] | None = None) -> dict:
    """PA, per-class PA, mPA, per-class IoU and mIoU (paper 1, eqs. 4-7) from ``cm``.

    Returns a dict of plain Python values (fractions in 0..1, NaN where undefined):
    ``pa``, ``mpa``, ``miou``; per class (lists in class order) ``iou``, ``class_pa``,
    ``gt_pixels`` (row sums) and ``pred_pixels`` (column sums); ``class_names``,
    ``num_classes``, ``total_pixels``, ``classes_in_truth`` and ``classes_evaluated``
    (names with a defined IoU, i.e. in truth or prediction), ``absent_class_policy``
    (the rule in the module docstring) and ``confusion_matrix`` (list of lists).
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k}x{k} confusion matrix")
    tp = np.diag(cm)
    gt = cm.sum(axis=1)
    pred = cm.sum(axis=0)
    union = gt + pred - tp
    total = cm.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        class_pa = np.where(gt > 0, tp / gt, np.nan)
        iou = np.where(union > 0, tp / union, np.nan)
    pa = float(tp.sum() / total) if total > 0 else float("nan")
    return {
        "pa": pa,
        "mpa": _nanmean(class_pa),
        "miou": _nanmean(iou),
        "iou": [float(v) for v in iou],
        "class_pa": [float(v) for v in class_pa],
        "gt_pixels": [int(v) for v in gt],
        "pred_pixels": [int(v) for v in pred],
        "class_names": names,
        "num_classes": k,
        "total_pixels": int(total),
        "classes_in_truth": [n for n, g in zip(names, gt) if g > 0],
        "classes_evaluated": [n for n, u in zip(names, union) if u > 0],
        "absent_class_policy": ABSENT_CLASS_POLICY,
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }


@keras.saving.register_keras_serializable(package="xray_seg")
class StreamingConfusionMatrix(keras.metrics.Metric):
    """Streaming confusion matrix over a split; ``result()`` is its mIoU (paper 1, eq. 7).

    ``update_state(y_true, y_pred)`` takes labels ``[B, H, W]`` (or ``[B, H, W, 1]``) and
    logits ``[B, H, W, K]`` at the same size (nothing is resized), takes the argmax and
    adds to a ``[K, K]`` state. Pixels labelled ``ignore_index`` or outside 0..K-1 are
    not counted (the data pipeline validates labels; :func:`confusion_matrix` raises).
    A ``sample_weight`` broadcastable to ``[B, H, W]`` acts as a mask: pixels with weight
    0 are skipped, the others count once. The state is float64 (exact counts up to
    2**53 pixels per cell) and, like every Keras metric variable, is synchronised on
    read with SUM aggregation, so under a ``tf.distribute`` strategy the replicas'
    matrices add up. ``result()`` follows the absent-class rule of the module docstring.

    Args:
        num_classes: K.
        ignore_index: label value that is not counted.
        class_names: optional K names, used by :meth:`scores`.
        name: metric name (default ``"miou"``, so the monitor key is ``val_miou``).
        **kwargs: passed to ``keras.metrics.Metric`` (e.g. ``dtype``).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        class_names: Sequence[str] | None = None,
        name: str = "miou",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        self.total_cm = self.add_variable(
            shape=(self.num_classes, self.num_classes), initializer="zeros", dtype="float64", name="total_cm"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        k = self.num_classes
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != k:
            raise ValueError(f"logits have {y_pred.shape[-1]} channels, the metric counts {k} classes")
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) == 4 and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        preds = ops.reshape(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), (-1,))
        valid = ops.logical_and(ops.greater_equal(labels, 0), ops.less(labels, k))
        valid = ops.logical_and(valid, ops.not_equal(labels, self.ignore_index))
        if sample_weight is not None:
            sw = ops.broadcast_to(ops.convert_to_tensor(sample_weight), ops.shape(y_true))
            valid = ops.logical_and(valid, ops.not_equal(ops.reshape(sw, (-1,)), 0))
        # Scatter-add of ones at (truth, prediction); uncounted pixels add 0 at (0, 0).
        # A fixed-size scatter (not bincount) keeps the update XLA-compilable.
        zeros = ops.zeros_like(labels)
        index = ops.stack([ops.where(valid, labels, zeros), ops.where(valid, preds, zeros)], axis=1)
        counts = ops.scatter(index, ops.cast(valid, "int32"), (k, k))
        self.total_cm.assign_add(ops.cast(counts, "float64"))

    def result(self):
        cm = self.total_cm
        tp = ops.diagonal(cm)
        union = ops.sum(cm, axis=0) + ops.sum(cm, axis=1) - tp
        present = ops.greater(union, 0)
        iou = ops.divide_no_nan(tp, union)
        n = ops.sum(ops.cast(present, "float64"))
        miou = ops.where(ops.greater(n, 0), ops.divide_no_nan(ops.sum(iou), n), float("nan"))
        return ops.cast(miou, self.dtype)

    def reset_state(self):
        self.total_cm.assign(ops.zeros((self.num_classes, self.num_classes), dtype="float64"))

    def matrix(self) -> np.ndarray:
        """The accumulated confusion matrix as a numpy int64 array (rows truth, cols prediction)."""
        return np.rint(ops.convert_to_numpy(ops.convert_to_tensor(self.total_cm))).astype(np.int64)

    def scores(self) -> dict:
        """:func:`segmentation_scores` of the accumulated matrix."""
        return segmentation_scores(self.matrix(), self.class_names)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_classes": self.num_classes, "ignore_index": self.ignore_index, "class_names": self.class_names}
        )
        return config
