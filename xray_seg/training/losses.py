"""Segmentation losses: ignore-aware cross-entropy, OHEM cross-entropy, aux-head weights.

All losses take logits ``[B, H, W, K]`` (no softmax) and labels ``[B, H, W]`` (or
``[B, H, W, 1]``) holding 0 background, 1..K-1 classes and 255 ignore (:data:`IGNORE_INDEX`).
They use ``keras.ops`` only and are registered serialisable ``keras.losses.Loss`` subclasses.

Reduction. The default ``reduction="sum_over_batch_size"`` gives the (class-weighted) mean
over the *valid* pixels of the batch, ``sum(w_y * ce) / sum(w_y)``; an all-ignore batch gives
0 (never NaN). ``call`` returns per-pixel values already divided by that normaliser (times the
pixel count), so Keras' own reduction produces the mean and applies its per-replica scaling
under ``tf.distribute`` (each replica normalises over its own valid pixels, as mmsegmentation
under DDP). ``reduction="sum"`` gives ``sum(w_y * ce)``, ``reduction=None`` the per-pixel
weighted losses ``[B, H, W]`` (0 at ignored pixels). A Keras ``sample_weight`` multiplies these
values, so give it per pixel (``[B, H, W]``).

Auxiliary heads (IFBFNet sec. 3.4, eq. 8, following PSPNet): ``L = l_out + 0.4 * l_aux``; for a
dict-output model pass :func:`aux_loss_weights` as ``compile(loss_weights=...)``.

Also :class:`DiceLoss` (soft multi-class dice, Milletari et al. 2016), :class:`FocalLoss` (Lin
et al. 2017, sec. 3.2, eq. 5), :class:`LovaszSoftmaxLoss` (Berman et al. 2018, sec. 3.2, Alg. 1)
and :class:`CompositeLoss`, a weighted sum (``make_loss("ce+dice", weights=[1, 1])``). Dice and
Lovasz are set losses: ``call`` returns the batch (or per-image) value broadcast to every pixel
``[B, H, W]``, so the default reduction gives the value itself and sums with pixel losses
compose. Which to pick for class imbalance: docs/training.md, "Losses".
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence

import keras
from keras import ops

from xray_seg.core.constants import IGNORE_LABEL
from xray_seg.core.errors import ConfigError
from xray_seg.models.outputs import MAIN_OUTPUT

IGNORE_INDEX = IGNORE_LABEL  # the project's one ignore label


def _compute_dtype(y_pred) -> str:
    """float64 logits are kept (gradient checks); everything else is computed in float32."""
    return "float64" if keras.backend.standardize_dtype(y_pred.dtype) == "float64" else "float32"


def _prepare(y_true, y_pred, ignore_index: int, class_weights: Sequence[float] | None):
    """Labels -> (valid-pixel mask (float), pixel weights, per-pixel CE), all [B,H,W]."""
    if len(y_true.shape) == 4 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    if len(y_true.shape) != 3 or len(y_pred.shape) != 4:
        raise ValueError(
            f"expected labels [B,H,W] and logits [B,H,W,K], got {tuple(y_true.shape)} and {tuple(y_pred.shape)}"
        )
    for a, b in zip(y_true.shape[1:3], y_pred.shape[1:3]):
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"labels {tuple(y_true.shape)} and logits {tuple(y_pred.shape)} differ in size; "
                "models must return logits at input resolution (resize inside the model)"
            )
    num_classes = y_pred.shape[-1]
    labels = ops.cast(y_true, "int32")
    valid = ops.logical_and(ops.not_equal(labels, ignore_index), ops.greater_equal(labels, 0))
    if num_classes is not None:
        valid = ops.logical_and(valid, ops.less(labels, num_classes))
    safe = ops.where(valid, labels, ops.zeros_like(labels))
    dtype = _compute_dtype(y_pred)
    log_probs = ops.log_softmax(ops.cast(y_pred, dtype), axis=-1)
    # One-hot product instead of a gather: with K ~ 6 classes it is one fused element-wise
    # pass whose gradient needs no scatter (UnsortedSegmentSum), measurably cheaper on CPU.
    ce = -ops.sum(log_probs * ops.one_hot(safe, ops.shape(y_pred)[-1], dtype=dtype), axis=-1)
    valid = ops.cast(valid, dtype)
    weight = valid
    if class_weights is not None:
        table = ops.convert_to_tensor(list(class_weights), dtype=dtype)
        weight = weight * ops.take(table, safe)
    return valid, weight, ce


def _reduce(ce, weight, reduction):
    """Per-pixel values whose Keras reduction is the weighted mean over weighted pixels."""
    values = weight * ce
    if reduction in ("sum_over_batch_size", "mean"):
        count = ops.cast(ops.size(ce), ce.dtype)
        values = values * ops.divide_no_nan(count, ops.sum(weight))
    return values


def _check_class_weights(class_weights):
    if class_weights is None:
        return None
    weights = [float(w) for w in class_weights]
    if any(w < 0 or not math.isfinite(w) for w in weights):
        raise ValueError(f"class_weights must be finite and >= 0, got {weights}")
    return weights


@keras.saving.register_keras_serializable(package="xray_seg")
class SegmentationCrossEntropy(keras.losses.Loss):
    """Pixel-wise softmax cross-entropy from logits that ignores label 255.

    IFBFNet sec. 3.4, eq. 6 (the plain loss); paper 1 trains with cross-entropy.
    With the default reduction the result is ``sum_p w_{y_p} ce_p / sum_p w_{y_p}``
    over the valid pixels ``p`` of the batch (``w = 1`` without class weights, i.e.
    the plain mean over valid pixels); 0 when every pixel is ignored.

    Args:
        ignore_index: label value excluded from the loss (labels outside 0..K-1 are
            excluded too).
        class_weights: optional list of K non-negative weights, one per class.
        reduction: Keras reduction (see the module docstring).
        name: loss name.
        **kwargs: passed to ``keras.losses.Loss`` (e.g. ``dtype``).
    """

    def __init__(
        self,
        ignore_index: int = IGNORE_INDEX,
        class_weights: Sequence[float] | None = None,
        reduction="sum_over_batch_size",
        name: str = "segmentation_cross_entropy",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.ignore_index = int(ignore_index)
        self.class_weights = _check_class_weights(class_weights)

    def call(self, y_true, y_pred):
        _, weight, ce = _prepare(y_true, y_pred, self.ignore_index, self.class_weights)
        return _reduce(ce, weight, self.reduction)

    def get_config(self):
        config = super().get_config()
        config.update({"ignore_index": self.ignore_index, "class_weights": self.class_weights})
        return config


@keras.saving.register_keras_serializable(package="xray_seg")
class OhemCrossEntropy(keras.losses.Loss):
    """Online hard example mining cross-entropy (IFBFNet sec. 3.4 and 4.3.4; PSPNet/mmseg OHEM).

    Selection, made over all valid pixels of the whole (per-replica) batch as in
    mmsegmentation's ``OHEMPixelSampler``: let ``p`` be the softmax probability of
    the true class and ``p_(k)`` the k-th smallest ``p`` among valid pixels, where
    ``k = max(min_kept, ceil(min_kept_fraction * n_valid))``. A valid pixel is kept
    when ``p < thresh`` or ``p <= p_(k)`` - i.e. the hard pixels below the threshold,
    but never fewer than ``k`` (ties at ``p_(k)`` are all kept; with fewer than ``k``
    valid pixels all valid pixels are kept). The selection uses
    ``stop_gradient(logits)``, so no gradient flows through it. The loss is the
    (class-weighted) mean cross-entropy over the kept pixels; 0 if none.

    IFBFNet's eq. 7 variant (train on the 3/4 of pixels with the largest loss) is
    ``thresh=0.0, min_kept=0, min_kept_fraction=0.75``; its hard-pixel threshold is
    0.7 (sec. 4.3.4), the default here.

    Args:
        thresh: probability threshold below which a pixel is "hard".
        min_kept: minimum number of pixels kept per batch.
        min_kept_fraction: minimum fraction of the valid pixels kept per batch.
        ignore_index: label value excluded from the loss.
        class_weights: optional list of K non-negative weights, one per class.
        reduction: Keras reduction (see the module docstring).
        name: loss name.
        **kwargs: passed to ``keras.losses.Loss``.
    """

    def __init__(
        self,
        thresh: float = 0.7,
        min_kept: int = 100_000,
        min_kept_fraction: float = 0.0,
        ignore_index: int = IGNORE_INDEX,
        class_weights: Sequence[float] | None = None,
        reduction="sum_over_batch_size",
        name: str = "ohem_cross_entropy",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        if not 0.0 <= float(thresh) <= 1.0:
            raise ValueError(f"thresh must be in [0, 1], got {thresh}")
        if int(min_kept) < 0 or not 0.0 <= float(min_kept_fraction) <= 1.0:
            raise ValueError(f"need min_kept >= 0 and 0 <= min_kept_fraction <= 1, got {min_kept}, {min_kept_fraction}")
        self.thresh = float(thresh)
        self.min_kept = int(min_kept)
        self.min_kept_fraction = float(min_kept_fraction)
        self.ignore_index = int(ignore_index)
        self.class_weights = _check_class_weights(class_weights)

    def keep_mask(self, y_true, y_pred):
        """Boolean ``[B, H, W]`` mask of the pixels the loss trains on (no gradient)."""
        valid, _, ce = _prepare(y_true, ops.stop_gradient(y_pred), self.ignore_index, None)
        return self._select(valid, ce)

    def _select(self, valid, ce):
        """The keep mask from the valid-pixel mask (1 valid, 0 ignored) and cross-entropies.

        The true-class probability is ``p = exp(-ce)`` (``ce = -log softmax_y``), so the
        selection reuses the loss's own log-softmax instead of a second softmax.
        """
        valid = ops.greater(valid, 0.0)
        p_true = ops.exp(-ops.stop_gradient(ce))
        # Ignored pixels sort last (p = 2 > any probability).
        p_flat = ops.reshape(ops.where(valid, p_true, 2.0), (-1,))
        total = p_flat.shape[0]
        if self.min_kept_fraction == 0.0 and total is not None:
            # k is static: the k smallest via top_k of -p rather than a full sort (timing:
            # docs/training.md, "Losses"). With fewer than k valid pixels the k-th smallest
            # is an ignored pixel's 2.0, so every valid pixel is kept. When at least k valid
            # pixels are already below thresh, the k-th smallest p is below thresh too and
            # adds nothing to the selection: skip the top_k.
            k = min(self.min_kept, int(total))
            if k == 0:
                kth = ops.convert_to_tensor(-1.0)
            else:
                n_hard = ops.sum(ops.cast(ops.logical_and(valid, ops.less(p_true, self.thresh)), "int32"))
                kth = ops.cond(
                    ops.greater_equal(n_hard, k),
                    lambda: ops.convert_to_tensor(-1.0),
                    lambda: -ops.top_k(-p_flat, k, sorted=True)[0][k - 1],
                )
        else:
            n_valid = ops.sum(ops.cast(valid, "int32"))
            k = ops.maximum(
                ops.cast(self.min_kept, "int32"),
                ops.cast(ops.ceil(ops.cast(n_valid, "float32") * self.min_kept_fraction), "int32"),
            )
            k = ops.minimum(k, n_valid)
            p_sorted = ops.sort(p_flat)
            kth = ops.where(ops.greater(k, 0), ops.take(p_sorted, ops.maximum(k - 1, 0)), ops.convert_to_tensor(-1.0))
        hard = ops.logical_or(ops.less(p_true, self.thresh), ops.less_equal(p_true, kth))
        return ops.logical_and(valid, hard)

    def call(self, y_true, y_pred):
        valid, weight, ce = _prepare(y_true, y_pred, self.ignore_index, self.class_weights)
        keep = ops.stop_gradient(ops.cast(self._select(valid, ce), ce.dtype))
        return _reduce(ce, weight * keep, self.reduction)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "thresh": self.thresh,
                "min_kept": self.min_kept,
                "min_kept_fraction": self.min_kept_fraction,
                "ignore_index": self.ignore_index,
                "class_weights": self.class_weights,
            }
        )
        return config


def _probs_onehot(y_true, y_pred, ignore_index: int):
    """Softmax probabilities, one-hot labels (0 at ignored pixels) and the valid mask, [B,H,W,K] / [B,H,W]."""
    valid, _, _ = _prepare(y_true, y_pred, ignore_index, None)
    if len(y_true.shape) == 4:
        y_true = ops.squeeze(y_true, axis=-1)
    labels = ops.cast(y_true, "int32")
    num_classes = ops.shape(y_pred)[-1]
    safe = ops.where(ops.greater(valid, 0.0), labels, ops.zeros_like(labels))
    dtype = _compute_dtype(y_pred)
    onehot = ops.one_hot(safe, num_classes, dtype=dtype) * valid[..., None]
    probs = ops.softmax(ops.cast(y_pred, dtype), axis=-1) * valid[..., None]
    return probs, onehot, valid


def _class_mean(values, present, class_weights):
    """``sum_c w_c present_c values_c / sum_c w_c present_c`` over the last axis (0 if empty)."""
    weight = present
    if class_weights is not None:
        weight = weight * ops.convert_to_tensor(list(class_weights), dtype=values.dtype)
    return ops.divide_no_nan(ops.sum(weight * values, axis=-1), ops.sum(weight, axis=-1))


def _broadcast(value, y_true):
    """A per-batch scalar (or per-image ``[B]``) as per-pixel values ``[B, H, W]`` whose mean is its mean."""
    if len(y_true.shape) == 4:
        y_true = ops.squeeze(y_true, axis=-1)
    ones = ops.ones_like(ops.cast(y_true, value.dtype))
    if len(value.shape) == 1:
        value = value[:, None, None]
    return ones * value


class _SetLoss(keras.losses.Loss):
    """Base of the losses computed over a set of pixels (dice, Lovasz): mean reduction only."""

    def __init__(self, ignore_index, class_weights, reduction, name, **kwargs):
        if reduction not in ("sum_over_batch_size", "mean"):
            raise ValueError(f"{type(self).__name__} supports reduction='sum_over_batch_size' only, got {reduction!r}")
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.ignore_index = int(ignore_index)
        self.class_weights = _check_class_weights(class_weights)


@keras.saving.register_keras_serializable(package="xray_seg")
class DiceLoss(_SetLoss):
    """Soft multi-class dice loss on softmax probabilities (Milletari et al. 2016, V-Net eq. 1).

    Over the valid pixels ``p`` of the whole batch, per class ``c``:
    ``D_c = (2 sum_p P_pc Y_pc + smooth) / (sum_p P_pc + sum_p Y_pc + smooth)`` with
    ``P`` the softmax probabilities and ``Y`` the one-hot labels; the loss is
    ``1 - sum_c w_c D_c / sum_c w_c`` (``w = 1`` without class weights). Ignored pixels
    take no part. A class absent from the batch has ``D_c = smooth / (sum_p P_pc + smooth)``,
    which rewards predicting it nowhere. Every class counts equally whatever its size,
    which is why dice helps small classes.

    Args:
        smooth: additive smoothing of numerator and denominator (> 0 keeps it finite).
        ignore_index: label value excluded from the loss.
        class_weights: optional list of K non-negative weights for the mean over classes.
        reduction: ``"sum_over_batch_size"`` only (a set loss, see the module docstring).
        name: loss name.
        **kwargs: passed to ``keras.losses.Loss``.
    """

    def __init__(
        self,
        smooth: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
        class_weights=None,
        reduction="sum_over_batch_size",
        name: str = "dice_loss",
        **kwargs,
    ):
        super().__init__(ignore_index, class_weights, reduction, name, **kwargs)
        if float(smooth) < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        probs, onehot, _ = _probs_onehot(y_true, y_pred, self.ignore_index)
        axes = (0, 1, 2)
        inter = ops.sum(probs * onehot, axis=axes)
        card = ops.sum(probs, axis=axes) + ops.sum(onehot, axis=axes)
        dice = (2.0 * inter + self.smooth) / (card + self.smooth)
        loss = 1.0 - _class_mean(dice, ops.ones_like(dice), self.class_weights)
        return _broadcast(loss, y_true)

    def get_config(self):
        config = super().get_config()
        config.update({"smooth": self.smooth, "ignore_index": self.ignore_index, "class_weights": self.class_weights})
        return config


@keras.saving.register_keras_serializable(package="xray_seg")
class FocalLoss(keras.losses.Loss):
    """Multi-class focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection", eq. 5).

    Per valid pixel ``FL = -alpha_y (1 - p_y)^gamma log p_y``, with ``p_y`` the softmax
    probability of the true class. ``gamma = 0`` is cross-entropy; ``gamma = 2`` is the
    paper's choice. ``alpha``, the per-class balance, is the ``class_weights`` list (the
    paper's binary ``alpha`` generalised to K classes). The default reduction is the
    weighted mean ``sum_p alpha_{y_p} FL'_p / sum_p alpha_{y_p}`` over valid pixels, as
    for :class:`SegmentationCrossEntropy`; 0 when every pixel is ignored.

    Args:
        gamma: focusing parameter (>= 0).
        ignore_index: label value excluded from the loss.
        class_weights: optional list of K non-negative per-class weights (alpha).
        reduction: Keras reduction (see the module docstring).
        name: loss name.
        **kwargs: passed to ``keras.losses.Loss``.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        ignore_index: int = IGNORE_INDEX,
        class_weights=None,
        reduction="sum_over_batch_size",
        name: str = "focal_loss",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        if float(gamma) < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.ignore_index = int(ignore_index)
        self.class_weights = _check_class_weights(class_weights)

    def call(self, y_true, y_pred):
        _, weight, ce = _prepare(y_true, y_pred, self.ignore_index, self.class_weights)
        p_true = ops.exp(-ce)
        focal = ops.power(ops.maximum(1.0 - p_true, 0.0), self.gamma) * ce
        return _reduce(focal, weight, self.reduction)

    def get_config(self):
        config = super().get_config()
        config.update({"gamma": self.gamma, "ignore_index": self.ignore_index, "class_weights": self.class_weights})
        return config


def _lovasz_grad(gt_sorted):
    """Berman et al. Alg. 1, line 5-6: the gradient of the Lovasz extension of the Jaccard
    loss w.r.t. errors sorted in decreasing order; ``gt_sorted`` ``[..., N]`` (0/1 floats)."""
    gts = ops.sum(gt_sorted, axis=-1, keepdims=True)
    intersection = gts - ops.cumsum(gt_sorted, axis=-1)
    union = gts + ops.cumsum(1.0 - gt_sorted, axis=-1)
    jaccard = 1.0 - ops.divide_no_nan(intersection, union)
    return ops.concatenate([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)


@keras.saving.register_keras_serializable(package="xray_seg")
class LovaszSoftmaxLoss(_SetLoss):
    """Lovasz-softmax loss (Berman et al. 2018, CVPR, sec. 3.2, eq. 12 and Alg. 1).

    A tractable surrogate of ``1 - IoU`` per class: with ``m_c = |Y_c - P_c|`` the errors
    of class ``c`` over the valid pixels, sorted in decreasing order, the loss of class ``c``
    is ``<m_c sorted, grad Delta_J>``, and the loss is their mean over classes
    (weighted by ``class_weights``). ``classes="present"`` averages over the classes that
    occur in the labels only (the paper's default), ``"all"`` over every class.
    ``per_image=True`` computes it per image and averages over images (an image whose
    pixels are all ignored, or with no present class, counts 0), else over the batch as
    one set. Ignored pixels sort last with zero error, so they change nothing: the same
    values as the reference implementation, which drops them.

    Args:
        classes: ``"present"`` or ``"all"``.
        per_image: per-image loss averaged over the batch instead of one batch loss.
        ignore_index: label value excluded from the loss.
        class_weights: optional list of K non-negative weights for the mean over classes.
        reduction: ``"sum_over_batch_size"`` only.
        name: loss name.
        **kwargs: passed to ``keras.losses.Loss``.
    """

    def __init__(
        self,
        classes: str = "present",
        per_image: bool = False,
        ignore_index: int = IGNORE_INDEX,
        class_weights=None,
        reduction="sum_over_batch_size",
        name: str = "lovasz_softmax_loss",
        **kwargs,
    ):
        super().__init__(ignore_index, class_weights, reduction, name, **kwargs)
        if classes not in ("present", "all"):
            raise ValueError(f"classes must be 'present' or 'all', got {classes!r}")
        self.classes = classes
        self.per_image = bool(per_image)

    def call(self, y_true, y_pred):
        probs, onehot, valid = _probs_onehot(y_true, y_pred, self.ignore_index)
        k = ops.shape(probs)[-1]
        groups = ops.shape(probs)[0] if self.per_image else 1
        # [G, K, N]: one row of N pixels per (group, class)
        probs = ops.transpose(ops.reshape(probs, (groups, -1, k)), (0, 2, 1))
        onehot = ops.transpose(ops.reshape(onehot, (groups, -1, k)), (0, 2, 1))
        valid = ops.reshape(valid, (groups, 1, -1))
        errors = ops.abs(onehot - probs)
        # ignored pixels sort last (key -1 < any error) and contribute 0 error
        order = ops.argsort(-ops.stop_gradient(ops.where(valid > 0, errors, -1.0)), axis=-1)
        errors_sorted = ops.take_along_axis(errors * valid, order, axis=-1)
        gt_sorted = ops.take_along_axis(onehot, order, axis=-1)
        per_class = ops.sum(errors_sorted * ops.stop_gradient(_lovasz_grad(gt_sorted)), axis=-1)  # [G, K]
        if self.classes == "present":
            present = ops.cast(ops.greater(ops.sum(onehot, axis=-1), 0.0), per_class.dtype)
        else:
            present = ops.cast(ops.greater(ops.sum(valid, axis=-1), 0.0), per_class.dtype) * ops.ones_like(per_class)
        loss = _class_mean(per_class, present, self.class_weights)  # [G]
        return _broadcast(loss if self.per_image else loss[0], y_true)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "classes": self.classes,
                "per_image": self.per_image,
                "ignore_index": self.ignore_index,
                "class_weights": self.class_weights,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="xray_seg")
class CompositeLoss(keras.losses.Loss):
    """A weighted sum of segmentation losses, ``sum_i weights_i L_i`` (e.g. CE + dice).

    Each term's ``call`` gives per-pixel values whose mean is that term's loss (see the
    module docstring), so the weighted sum of those values has the weighted sum of the
    losses as its mean. Build it by name with ``make_loss("ce+dice", weights=[1, 1])``.

    Args:
        losses: the terms, ``keras.losses.Loss`` instances (or their serialised configs).
        weights: one non-negative weight per term (default all 1).
        reduction: ``"sum_over_batch_size"`` only.
        name: loss name.
        **kwargs: passed to ``keras.losses.Loss``.
    """

    def __init__(self, losses, weights=None, reduction="sum_over_batch_size", name: str = "composite_loss", **kwargs):
        if reduction not in ("sum_over_batch_size", "mean"):
            raise ValueError(f"CompositeLoss supports reduction='sum_over_batch_size' only, got {reduction!r}")
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.losses = [keras.losses.deserialize(loss) if isinstance(loss, dict) else loss for loss in losses]
        weights = [1.0] * len(self.losses) if not weights else [float(w) for w in weights]
        if len(weights) != len(self.losses) or any(w < 0 or not math.isfinite(w) for w in weights):
            raise ValueError(f"need one finite weight >= 0 per loss ({len(self.losses)}), got {weights}")
        self.weights = weights

    def call(self, y_true, y_pred):
        total = None
        for weight, loss in zip(self.weights, self.losses):
            term = weight * loss.call(y_true, y_pred)
            total = term if total is None else total + term
        return total

    def get_config(self):
        config = super().get_config()
        config.update({"losses": [keras.losses.serialize(loss) for loss in self.losses], "weights": self.weights})
        return config


LOSSES = {
    "ce": SegmentationCrossEntropy,
    "ohem": OhemCrossEntropy,
    "dice": DiceLoss,
    "focal": FocalLoss,
    "lovasz": LovaszSoftmaxLoss,
}


def _options_of(cls) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {
        "self",
        "ignore_index",
        "class_weights",
        "reduction",
        "name",
        "kwargs",
    }


def make_loss(
    kind: str = "ce", *, weights=None, ignore_index: int = IGNORE_INDEX, class_weights=None, **options
) -> keras.losses.Loss:
    """Build a loss by name: one of :data:`LOSSES` (``ce``, ``ohem``, ``dice``, ``focal``,
    ``lovasz``) or a weighted sum of them joined by ``+`` (``"ce+dice"``, with ``weights``
    one per term, default all 1). ``options`` go to every term that takes them
    (``thresh``, ``min_kept``, ``min_kept_fraction`` for ohem; ``smooth`` for dice;
    ``gamma`` for focal; ``classes``, ``per_image`` for lovasz); an option no term takes is
    a ConfigError. ``ignore_index``, ``class_weights`` and ``dtype`` go to every term."""
    common = {"dtype": options.pop("dtype")} if "dtype" in options else {}
    names = [part.strip() for part in str(kind).split("+")]
    unknown = [n for n in names if n not in LOSSES]
    if unknown or not names:
        raise ConfigError(f"unknown loss {kind!r}", fix=f"use one of {', '.join(LOSSES)} or a sum such as ce+dice")
    accepted = set().union(*(_options_of(LOSSES[n]) for n in names))
    stray = sorted(set(options) - accepted)
    if stray:
        raise ConfigError(
            f"loss {kind!r} takes no option {', '.join(stray)}",
            fix=f"options of {kind}: {', '.join(sorted(accepted)) or 'none'}",
        )
    if weights and len(weights) != len(names):
        raise ConfigError(
            f"loss {kind!r} has {len(names)} terms but {len(weights)} weights",
            fix="give one weight per term, e.g. loss.weights=[1.0,1.0]",
        )
    terms = [
        LOSSES[n](
            ignore_index=ignore_index,
            class_weights=class_weights,
            **common,
            **{k: v for k, v in options.items() if k in _options_of(LOSSES[n])},
        )
        for n in names
    ]
    if len(terms) == 1 and not weights:
        return terms[0]
    return CompositeLoss(
        terms, weights=list(weights) if weights else None, name=str(kind).replace("+", "_plus_"), **common
    )


def loss_from_config(loss_cfg, class_weights=None) -> keras.losses.Loss:
    """The loss of a :class:`~xray_seg.training.config.LossConfig` (``type``, ``weights`` and the
    options of the terms ``type`` names)."""
    options = {
        "thresh": loss_cfg.ohem_thresh,
        "min_kept": loss_cfg.ohem_min_kept,
        "gamma": loss_cfg.focal_gamma,
        "smooth": loss_cfg.dice_smooth,
        "classes": loss_cfg.lovasz_classes,
        "per_image": loss_cfg.lovasz_per_image,
    }
    names = [part.strip() for part in str(loss_cfg.type).split("+")]
    accepted = set().union(*(_options_of(LOSSES[n]) for n in names if n in LOSSES))
    options = {k: v for k, v in options.items() if k in accepted}
    return make_loss(loss_cfg.type, weights=tuple(loss_cfg.weights) or None, class_weights=class_weights, **options)


def aux_loss_weights(
    output_names: Iterable[str], aux_weight: float = 0.4, *, main_output: str = MAIN_OUTPUT
) -> dict[str, float]:
    """Loss weights for a dict-output model: main head 1.0, every ``aux*`` head ``aux_weight``.

    IFBFNet eq. 8, ``loss = l_out + lambda * l_aux`` with ``lambda = 0.4`` (sec. 3.5,
    Table 5; PSPNet's value). Use as ``model.compile(loss={n: loss for n in names},
    loss_weights=aux_loss_weights(names))``.

    Raises:
        ValueError: if the main output is missing or a name is neither the main output
            nor starts with ``"aux"``.
    """
    names = list(output_names)
    if main_output not in names:
        raise ValueError(f"output {main_output!r} not among the model outputs {names}")
    weights = {}
    for name in names:
        if name == main_output:
            weights[name] = 1.0
        elif name.startswith("aux"):
            weights[name] = float(aux_weight)
        else:
            raise ValueError(f"output {name!r} is neither {main_output!r} nor an 'aux*' head")
    return weights
