"""Which unlabelled scans are worth labelling next: the per-scan scores and the diverse pick.

``xray-seg rank`` (:mod:`xray_seg.inference.ranking`) scores every unlabelled scan with the
model's own softmax probabilities, then picks the top ``n`` while skipping near-duplicates.
The papers are silent on active learning; the choices below are this module's, and
``docs/labelling.md`` explains them.

Scores (higher = label it sooner):

``uncertainty`` (the default)
    The mean normalised entropy ``H(p) / log K`` of the :data:`UNCERTAIN_FRACTION` (5 %)
    least certain pixels of the scan, in 0..1. Pixel entropy is the classic uncertainty
    sampling score (Settles, "Active Learning Literature Survey", 2009, section 3.1);
    averaging only the least certain pixels keeps a small, doubtful threat from being
    drowned by a bag's thousands of confident background pixels, which a whole-image mean
    would do. It needs no calibrated thresholds, so it works for a first model.
``screening``
    ``1 - margin``, where ``margin`` is the smallest distance between a class's alarm score
    and its threshold under the model's alarm rule (:func:`alarm_margin`). Bags near the
    alarm decision are those where a label can flip the station's answer. Bags with no
    candidate item all score ``1 - threshold``; among equal scores the pixel uncertainty
    decides.
``random``
    A uniform number drawn from a hash of the seed and the scan's stem
    (:func:`random_score`), so the order does not depend on which scans were scored first,
    and a resumed run gives the same pick.

Diversity: :func:`select_diverse` walks the candidates best first and skips one whose
embedding (:func:`thumbnail`, a 16x16 grey thumbnail) lies within ``min_distance`` (RMS
difference, 0..1) of a scan already chosen: the same bag scanned twice, or a run of
near-identical frames, is labelled once. When too few candidates remain the skipped ones
fill up the list, best first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

STRATEGIES = ("uncertainty", "screening", "random")
DEFAULT_STRATEGY = "uncertainty"
UNCERTAIN_FRACTION = 0.05  # the share of a scan's pixels whose entropy is averaged
THUMB_SIDE = 16  # the embedding: a THUMB_SIDE x THUMB_SIDE grey thumbnail, uint8
DEFAULT_MIN_DISTANCE = 0.05  # RMS grey difference (0..1) below which two scans count as the same (docs/labelling.md)


@dataclass
class ScanScore:
    """What ranking keeps of one scan: scalars and a 256-byte thumbnail, never the image.

    Attributes:
        uncertainty: mean normalised entropy of the least certain pixels (0..1).
        margin: smallest ``|alarm score - threshold|`` over the classes (0..1).
        alarm: whether the bag alarms under the model's rule.
        classes: the predicted classes with an item, in class order.
        thumb: ``[THUMB_SIDE, THUMB_SIDE]`` uint8 grey thumbnail (the diversity embedding).
    """

    uncertainty: float
    margin: float
    alarm: bool
    classes: tuple
    thumb: np.ndarray


def pixel_uncertainty(probs: np.ndarray, fraction: float = UNCERTAIN_FRACTION) -> float:
    """Mean of ``H(p) / log K`` over the ``fraction`` least certain pixels (at least one) of ``[H, W, K]`` ``probs``."""
    k = probs.shape[-1]
    p = np.clip(np.asarray(probs, dtype=np.float32).reshape(-1, k), 1e-12, 1.0)
    entropy = -(p * np.log(p)).sum(axis=1) / np.log(max(k, 2))
    count = max(1, int(round(fraction * entropy.size)))
    top = np.partition(entropy, entropy.size - count)[entropy.size - count :]
    return float(np.clip(top.mean(), 0.0, 1.0))


def alarm_margin(scores, rule) -> float:
    """The smallest ``|score_c - threshold_c|`` over the classes ``c >= 1`` of the alarm rule.

    ``scores`` are :func:`xray_seg.inference.alarm_rule.decide`'s per-class alarm scores (the
    best confidence of an item large enough to alarm, 0 when there is none). The smaller the
    margin, the nearer the bag is to flipping its alarm decision.
    """
    thresholds = np.asarray(rule.thresholds[1:], dtype=np.float64)
    values = np.asarray(scores[1:], dtype=np.float64)
    if thresholds.size == 0:
        return 1.0
    return float(np.min(np.abs(values - thresholds)))


def thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """``[side, side]`` uint8 grey thumbnail of an RGB scan (box filter; the aspect ratio is not kept)."""
    from PIL import Image

    grey = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("L")
    return np.asarray(grey.resize((side, side), Image.BOX), dtype=np.uint8)


def score_scan(image: np.ndarray, probs: np.ndarray, decision: dict, rule) -> ScanScore:
    """The :class:`ScanScore` of one predicted scan (``decision`` from ``alarm_rule.decide``)."""
    classes = tuple(sorted({it["class"] for it in decision["items"]}, key=rule.class_names.index))
    return ScanScore(
        uncertainty=pixel_uncertainty(probs),
        margin=alarm_margin(decision["scores"], rule),
        alarm=bool(decision["alarm"]),
        classes=classes,
        thumb=thumbnail(image),
    )


def random_score(stem: str, seed: int) -> float:
    """A uniform number in [0, 1) from ``seed`` and ``stem`` alone (BLAKE2b), the same on every run."""
    digest = hashlib.blake2b(f"{seed}:{stem}".encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def strategy_score(strategy: str, *, stem: str, seed: int, uncertainty: float, margin: float) -> float:
    """The score ``strategy`` ranks by (module docstring); higher = label sooner."""
    if strategy == "uncertainty":
        return uncertainty
    if strategy == "screening":
        return 1.0 - margin
    if strategy == "random":
        return random_score(stem, seed)
    raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")


def thumb_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of two uint8 thumbnails, in 0..1."""
    diff = (np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)) / 255.0
    return float(np.sqrt(np.mean(diff * diff)))


def select_diverse(candidates, n: int, min_distance: float = DEFAULT_MIN_DISTANCE) -> tuple[list, dict]:
    """Greedy diverse pick from ``candidates``, ``(key, thumb)`` pairs sorted best first.

    Returns ``(chosen, near)``: up to ``n`` keys in pick order, and ``{skipped key: the
    chosen key it is within min_distance of}``. A candidate closer than ``min_distance`` to
    any chosen one is skipped; if fewer than ``n`` were chosen, the skipped ones fill up
    the list in their order (and leave ``near``). ``min_distance`` 0 turns diversity off.
    """
    chosen, thumbs, near, skipped = [], [], {}, []
    for key, thumb in candidates:
        if len(chosen) >= n:
            break
        close = next((chosen[i] for i, t in enumerate(thumbs) if thumb_distance(thumb, t) < min_distance), None)
        if close is None:
            chosen.append(key)
            thumbs.append(thumb)
        else:
            near[key] = close
            skipped.append(key)
    for key in skipped[: max(0, n - len(chosen))]:
        chosen.append(key)
        near.pop(key)
    return chosen, near
