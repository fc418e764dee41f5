"""Bag-level screening figures: PD and PFA, ROC and AUC, threshold calibration.

The decision itself (:class:`~xray_seg.inference.alarm_rule.AlarmRule`,
:func:`~xray_seg.inference.alarm_rule.decide`) is prediction and lives in
:mod:`xray_seg.inference.alarm_rule`; this module measures it over a split.

Figures
    A bag's score for ``c`` is the highest confidence of its items of ``c`` that pass
    ``min_area[c]`` (0 when none), so it alarms for ``c`` iff ``score >= thresholds[c]``.
    ``PD_c``: fraction of bags holding a ``c`` (ground truth) that alarm for ``c``.
    ``PFA``: fraction of threat-free bags that alarm for anything; ``PFA_c`` that alarm for
    ``c``. Overall ``PD``: fraction of bags holding any threat that alarm for anything.

ROC
    Per class: ``PD_c`` against ``PFA_c`` as ``thresholds[c]`` sweeps the observed scores;
    overall: ``PD`` against ``PFA`` for one threshold shared by every class. Each curve
    runs from (0, 0) (nothing alarms) to (1, 1) (every bag alarms, threshold 0); AUC is the
    trapezoid area. ``PD @ PFA x`` is the highest PD of a point with ``PFA <= x``; None
    when the split has no threat-free bag (PFA cannot be estimated).

Calibration (:func:`calibrate_thresholds`)
    Chooses per-class thresholds that maximise the number of detections (bag, class)
    over the split subject to ``PFA <= target``: at most ``F = floor(target * clean bags)``
    threat-free bags may alarm. An optimal choice lets some set ``S`` of at most ``F`` clean
    bags alarm, each threshold just above (+0.0001) the highest score of ``c`` among the
    other clean bags, and ``S`` is a union of every class's top-scoring clean bags; the
    search enumerates those unions exactly when there are at most ``MAX_EXACT``
    candidates, else it lowers thresholds greedily (largest detection gain per new false
    alarm). Checked against a brute-force search in the tests.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np

from xray_seg.inference.alarm_rule import AlarmRule

TARGET_PFAS = (0.01, 0.05, 0.10)
STEP = 1e-4  # confidences are rounded to 4 decimals
MAX_EXACT = 200_000


# --------------------------------------------------------------------------- figures


def roc_curve(pos_scores, neg_scores) -> dict:
    """PD against PFA as the threshold sweeps the scores (module docstring); JSON-ready."""
    pos, neg = np.asarray(pos_scores, float), np.asarray(neg_scores, float)
    levels = np.unique(np.concatenate([pos, neg]))
    levels = levels[levels > 0][::-1]
    thresholds = [math.inf] + levels.tolist() + [0.0]
    pd = [float((pos >= t).mean()) if pos.size else None for t in thresholds]
    pfa = [float((neg >= t).mean()) if neg.size else None for t in thresholds]
    auc = None
    if pos.size and neg.size:
        auc = float(np.sum(np.diff(pfa) * (np.asarray(pd[1:]) + np.asarray(pd[:-1])) / 2))
    return {
        "thresholds": [None if math.isinf(t) else t for t in thresholds],
        "pd": pd,
        "pfa": pfa,
        "auc": auc,
        "positives": int(pos.size),
        "negatives": int(neg.size),
    }


def pd_at_pfa(curve: dict, target: float):
    """Highest PD of an operating point with PFA <= ``target`` (None without clean or threat bags)."""
    if not curve["positives"] or not curve["negatives"]:
        return None
    return max(d for d, f in zip(curve["pd"], curve["pfa"]) if f <= target + 1e-12)


def bag_metrics(scores: np.ndarray, truth: np.ndarray, thresholds, class_names) -> dict:
    """PD per class and overall, PFA overall and per class, at ``thresholds``.

    ``scores`` [N, K] bag scores; ``truth`` [N, K] bool, bag holds class c.
    """
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    t = np.asarray(thresholds, float)
    alarms = scores >= t[None, :]
    alarms[:, 0] = False
    threat = truth[:, 1:].any(axis=1)
    clean = ~threat
    any_alarm = alarms.any(axis=1)

    def frac(mask, sel):
        return float(mask[sel].mean()) if sel.any() else None

    per_class = {}
    for c in range(1, len(class_names)):
        per_class[class_names[c]] = {
            "threshold": float(t[c]),
            "bags_with": int(truth[:, c].sum()),
            "pd": frac(alarms[:, c], truth[:, c]),
            "pfa": frac(alarms[:, c], clean),
        }
    return {
        "bags": len(scores),
        "threat_bags": int(threat.sum()),
        "clean_bags": int(clean.sum()),
        "alarmed_bags": int(any_alarm.sum()),
        "pd": frac(any_alarm, threat),
        "pfa": frac(any_alarm, clean),
        "per_class": per_class,
    }


def screening_report(scores: np.ndarray, truth: np.ndarray, rule: AlarmRule) -> dict:
    """ROC per class and overall, AUC, PD at PFA 1/5/10 %, and the figures at the rule's thresholds."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    names = rule.class_names
    clean = ~truth[:, 1:].any(axis=1)
    curves = {names[c]: roc_curve(scores[truth[:, c], c], scores[clean, c]) for c in range(1, len(names))}
    masked = scores.copy()
    masked[:, 0] = 0
    curves["overall"] = roc_curve(masked[~clean].max(axis=1, initial=0), masked[clean].max(axis=1, initial=0))
    at = {name: {f"{p:g}": pd_at_pfa(curve, p) for p in TARGET_PFAS} for name, curve in curves.items()}
    note = None if clean.any() else "no threat-free bag in this split: PFA cannot be estimated"
    return {
        "roc": curves,
        "pd_at_pfa": at,
        "at_thresholds": bag_metrics(scores, truth, rule.thresholds, names),
        "rule": rule.to_dict(),
        "note": note,
    }


# --------------------------------------------------------------------------- calibration


def _objective(scores, truth, clean, t):
    alarms = scores >= t[None, :]
    alarms[:, 0] = False
    detections = int((alarms & truth)[:, 1:].sum())
    false_alarms = int(alarms[clean].any(axis=1).sum())
    return detections, false_alarms


def _thresholds_excluding(scores_clean, allowed: np.ndarray) -> np.ndarray:
    """Per-class thresholds just above the highest score of the clean bags not in ``allowed``."""
    rest = scores_clean[~allowed]
    top = rest.max(axis=0) if len(rest) else np.zeros(scores_clean.shape[1])
    t = np.round(np.floor(top / STEP + 1e-6) * STEP + STEP, 4)
    t[0] = 1.0
    return t


def calibrate_thresholds(
    scores: np.ndarray,
    truth: np.ndarray,
    class_names,
    *,
    target_pfa: float = 0.05,
    base: AlarmRule | None = None,
    split: str = "val",
) -> AlarmRule:
    """Per-class thresholds for ``PFA <= target_pfa`` with the most detections (module docstring).

    ``scores`` [N, K] are bag scores computed with ``base``'s ``min_area`` and ``closing``
    (default rule if None), which the returned rule keeps; ``truth`` [N, K] bool.
    """
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    k = len(class_names)
    clean = ~truth[:, 1:].any(axis=1)
    sc = scores[clean]
    budget = math.floor(target_pfa * clean.sum() + 1e-9)
    tops = [[int(i) for i in np.argsort(-sc[:, c], kind="mergesort") if sc[i, c] > 0][:budget] for c in range(1, k)]
    best_key, best_t = None, None

    def consider(allowed):
        nonlocal best_key, best_t
        t = _thresholds_excluding(sc, allowed)
        det, fa = _objective(scores, truth, clean, t)
        key = (det, -fa, float(t.sum()))
        if fa <= budget and (best_key is None or key > best_key):
            best_key, best_t = key, t

    def gain(allowed):
        return _objective(scores, truth, clean, _thresholds_excluding(sc, allowed))[0]

    method = _search_allowed(len(sc), tops, budget, consider, gain)
    return _calibrated_rule(
        class_names,
        base,
        best_t,
        scores,
        truth,
        split=split,
        target_pfa=target_pfa,
        method=method,
        any_clean=bool(clean.any()),
    )


def _search_allowed(n_clean: int, tops, budget: int, consider, gain) -> str:
    """Offer ``consider`` every set of clean bags allowed to alarm (module docstring): all
    unions of each class's top-scoring clean bags when there are at most ``MAX_EXACT``,
    else a greedy walk that each step lets in the class's next clean bag with the best
    detection ``gain``. Returns ``"exact"`` or ``"greedy"``."""
    if math.prod(len(tp) + 1 for tp in tops) <= MAX_EXACT:
        for js in itertools.product(*[range(len(tp) + 1) for tp in tops]):
            allowed = np.zeros(n_clean, bool)
            for tp, j in zip(tops, js):
                allowed[tp[:j]] = True
            if allowed.sum() <= budget:
                consider(allowed)
        return "exact"
    allowed = np.zeros(n_clean, bool)
    consider(allowed)
    while True:
        steps = []
        for tp in tops:
            nxt = next((i for i in tp if not allowed[i]), None)
            if nxt is not None and allowed.sum() + 1 <= budget:
                trial = allowed.copy()
                trial[nxt] = True
                steps.append((gain(trial), trial))
        if not steps:
            return "greedy"
        allowed = max(steps, key=lambda s: s[0])[1]
        consider(allowed)


def _calibrated_rule(class_names, base, thresholds, scores, truth, *, split, target_pfa, method, any_clean):
    """``base``'s rule (areas, closing) with the chosen ``thresholds`` and a record of what
    they gave on the calibration split (PD, PFA, per-class PD, the search method)."""
    base = base or AlarmRule.default(class_names)
    rule = AlarmRule(list(class_names), list(base.thresholds), list(base.min_area), base.closing)
    rule.thresholds = [float(v) for v in thresholds]
    rule.calibrated = True
    got = bag_metrics(scores, truth, rule.thresholds, class_names)
    rule.calibration = {
        "split": split,
        "target_pfa": float(target_pfa),
        "method": method,
        "bags": got["bags"],
        "clean_bags": got["clean_bags"],
        "pd": got["pd"],
        "pfa": got["pfa"],
        "pd_per_class": {n: v["pd"] for n, v in got["per_class"].items()},
        "note": None if any_clean else "no threat-free bag: PFA not estimated, thresholds only exceed 0",
    }
    return rule


# --------------------------------------------------------------------------- provenance


def rule_provenance(rule: dict, bags: int, *, dataset=None, split: str | None = None) -> str:
    """One sentence on where ``rule``'s thresholds come from and what the figures at them mean.

    ``bags`` is how many bags were scored at the rule, on ``split`` of ``dataset``. The
    figures of a calibrated rule on the bags it was calibrated on (the same dataset, when
    recorded, and split) are optimistic: the thresholds were chosen to fit them. Said in the
    report and the terminal, not hidden in JSON.
    """
    if not rule.get("calibrated"):
        return (
            f"Uncalibrated defaults (threshold {max(rule['thresholds'][1:], default=0):.2f}, min area "
            f"{min(rule['min_area'][1:], default=0)} px): what predict and an export use until `xray-seg calibrate` "
            f"chooses thresholds for a target PFA."
        )
    cal = rule.get("calibration") or {}
    target = cal.get("target_pfa")
    chosen = (
        f"Thresholds calibrated for PFA <= {100 * target:.1f} % on {cal.get('bags')} {cal.get('split')} bags "
        f"({cal.get('clean_bags')} threat-free), stored with the model: predict and an export use them."
        if target is not None
        else "Thresholds calibrated and stored with the model: predict and an export use them."
    )
    recorded = cal.get("dataset")
    same_data = dataset is None or recorded is None or str(Path(dataset).resolve()) == recorded
    if same_data and cal.get("split") == split:
        which = "the same bags" if cal.get("bags") == bags else f"{bags} bags of the {split} split"
        return (
            chosen + f" The PD and PFA below are measured on {which} the thresholds were chosen on, "
            "so they are optimistic; bags kept out of calibration give an unbiased figure."
        )
    where = f"{bags} {split} bags" + ("" if same_data else " of another dataset")
    return chosen + f" The PD and PFA below are measured on {where}, not the set the thresholds were chosen on."
