"""Screening figures of one ``evaluate`` pass: objects (AP), bags (PD / PFA, ROC), worst cases.

``evaluate`` (:mod:`xray_seg.evaluation.evaluator`) feeds every image's probabilities to
:class:`ScreeningEvaluation`; it keeps the object matches
(:mod:`xray_seg.evaluation.objects`), each bag's score per class
(:mod:`xray_seg.evaluation.alarms`) and thumbnails of the few worst misses and false
alarms. :meth:`ScreeningEvaluation.write` adds to the evaluation folder:

- ``screening.json``: object metrics, PD / PFA at the model's thresholds, PD at PFA 1/5/10 %;
- ``roc.json`` and ``roc.png``: PD against PFA per class and overall, with AUC;
- ``report.html``: one self-contained page (:mod:`xray_seg.evaluation.html_report`).

A bag "holds" class ``c`` when its ground truth has an object of ``c``; it is threat-free
when it has no object at all (docs/architecture.md, "screening decisions").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.core.fileio import write_json_atomic
from xray_seg.core.viz import IGNORE_LABEL
from xray_seg.evaluation.alarms import rule_provenance, screening_report
from xray_seg.evaluation.html_report import gt_source_text, write_html_report
from xray_seg.evaluation.objects import ObjectEvaluator, items_to_objects, load_gt_objects
from xray_seg.evaluation.report import _pyplot, _save_figure
from xray_seg.inference.alarm_rule import AlarmRule, decide

REPORT_MIN_AREA = 50  # predict's default item size: the predicted objects of the AP
THUMBS = 4
THUMB_SIZE = 192


def _thumb(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    scale = THUMB_SIZE / max(h, w)
    if scale >= 1:
        return image
    return np.asarray(
        Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.NEAREST)
    )


@dataclass
class ScreeningEvaluation:
    voc_dir: Path
    rule: AlarmRule
    objects: ObjectEvaluator = None
    stems: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    truth: list = field(default_factory=list)
    misses: list = field(default_factory=list)  # (badness, stem, caption, image, truth, pred)
    false_alarms: list = field(default_factory=list)

    def __post_init__(self):
        self.objects = ObjectEvaluator(list(self.rule.class_names))

    def add(self, stem: str, image: np.ndarray, truth: np.ndarray, probs: np.ndarray) -> None:

        class_map = probs.argmax(axis=-1).astype(np.uint8)
        decision = decide(class_map, probs, self.rule, with_masks=True, min_area=REPORT_MIN_AREA)
        gts, source = load_gt_objects(self.voc_dir, stem, truth)
        preds = [it for it in decision["items"] if it["area"] >= REPORT_MIN_AREA]
        self.objects.add(gts, items_to_objects(preds), truth.shape, ignore=truth == IGNORE_LABEL, source=source)
        held = np.zeros(len(self.rule.class_names), bool)
        for g in gts:
            held[g.class_index] = True
        self.stems.append(stem)
        self.scores.append(decision["scores"])
        self.truth.append(held)
        names = self.rule.class_names
        alarmed = {names.index(c) for c in decision["alarm_classes"]}
        missed = [c for c in np.nonzero(held)[0] if c not in alarmed]
        if missed:
            caption = "missed " + ", ".join(f"{names[c]} (score {decision['scores'][c]:.2f})" for c in missed)
            self._keep(self.misses, -max(decision["scores"][c] for c in missed), stem, caption, image, truth, class_map)
        if not held.any() and decision["alarm"]:
            best = max(decision["scores"][1:])
            caption = "false alarm: " + ", ".join(decision["alarm_classes"]) + f" ({best:.2f})"
            self._keep(self.false_alarms, best, stem, caption, image, truth, class_map)

    @staticmethod
    def _keep(bucket, badness, stem, caption, image, truth, pred):
        bucket.append((float(badness), stem, caption, _thumb(image), _thumb(truth), _thumb(pred)))
        bucket.sort(key=lambda b: -b[0])
        del bucket[THUMBS:]

    def summary(self, keep: np.ndarray | None = None) -> dict:
        """Everything ``screening.json`` holds; ``keep`` (bool per bag) limits the bag figures
        (PD, PFA, ROC) to some bags (a subset's rule, :mod:`xray_seg.evaluation.subsets`);
        the objects' AP covers every bag added."""
        scores, truth = self.bag_arrays()
        if keep is not None:
            scores, truth = scores[keep], truth[keep]
        return {"objects": self.objects.results(), **screening_report(scores, truth, self.rule)}

    def bag_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        k = len(self.rule.class_names)
        return np.asarray(self.scores, float).reshape(-1, k), np.asarray(self.truth, bool).reshape(-1, k)

    def write(self, out_dir: Path, summary: dict, *, pixel_scores: dict, title: str, split=None) -> list[Path]:
        """``screening.json``, ``roc.json``, ``roc.png`` (with the stored rule's operating point)
        and ``report.html`` (with ``confusion_matrix.png`` when the folder has it) in ``out_dir``."""
        out_dir = Path(out_dir)
        write_json_atomic(out_dir / "screening.json", summary)
        write_json_atomic(
            out_dir / "roc.json", {"roc": summary["roc"], "pd_at_pfa": summary["pd_at_pfa"], "note": summary["note"]}
        )
        plot_roc(out_dir / "roc.png", summary["roc"], title=title, operating=operating_point(summary))
        write_html_report(
            out_dir / "report.html",
            title=title,
            pixel_scores=pixel_scores,
            screening=summary,
            roc_png=out_dir / "roc.png",
            misses=self.misses,
            false_alarms=self.false_alarms,
            class_names=self.rule.class_names,
            confusion_png=out_dir / "confusion_matrix.png",
            evaluated={"dataset": self.voc_dir, "split": split},
        )
        return [out_dir / n for n in ("screening.json", "roc.json", "roc.png", "report.html")]


ROC_PFA_MIN = 1e-3  # the log PFA axis starts at 0.1 %; PFA 0 is drawn there


def operating_point(summary: dict) -> dict | None:
    """``{"pfa", "pd", "label"}``: where the rule stored with the model sits on the overall
    ROC (its PD and PFA over the bags), or None when the split has no threat-free or no threat bag."""
    at, rule = summary["at_thresholds"], summary["rule"]
    if at["pd"] is None or at["pfa"] is None:
        return None
    state = "calibrated rule" if rule["calibrated"] else "default rule (uncalibrated)"
    return {
        "pfa": at["pfa"],
        "pd": at["pd"],
        "label": f"{state}: PD {100 * at['pd']:.1f} %, PFA {100 * at['pfa']:.1f} %",
    }


def roc_figure(curves: dict, *, title: str = "", operating: dict | None = None):
    """The ROC as a matplotlib figure: PD against PFA per class (thin) and overall (thick),
    AUC in the legend, PFA on a log axis from 0.1 % to 100 % (a screening rule lives at PFA of
    a few per cent, which a linear 0-1 axis squeezes into its left edge; points at PFA 0 are
    drawn at 0.1 %), the PFA targets 1 / 5 / 10 % dotted, and ``operating`` (the stored rule's
    point, :func:`operating_point`) as a star."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    for name, curve in curves.items():
        if curve["pd"][0] is None or curve["pfa"][0] is None:
            continue
        auc = f"{curve['auc']:.3f}" if curve["auc"] is not None else "n/a"
        overall = name == "overall"
        ax.plot(
            np.maximum(np.asarray(curve["pfa"], float), ROC_PFA_MIN),
            curve["pd"],
            lw=2.6 if overall else 1.2,
            color="black" if overall else None,
            label=f"{name} (AUC {auc})",
            marker="." if not overall else None,
        )
    for p in (0.01, 0.05, 0.10):
        ax.axvline(p, color="grey", lw=0.6, ls=":")
    if operating is not None and ax.lines:
        ax.plot(
            [max(operating["pfa"], ROC_PFA_MIN)], [operating["pd"]], marker="*", ms=16, ls="none",
            color="#e6007e", markeredgecolor="black", zorder=5, clip_on=False, label=operating["label"],
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlim(ROC_PFA_MIN, 1.0)
    ax.set_ylim(-0.01, 1.01)
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:g} %")
    ax.set_xlabel("PFA (threat-free bags that alarm; log axis)")
    ax.set_ylabel("PD (fraction of threat bags that alarm)")
    ax.set_title(title or "ROC: PD vs PFA")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8)  # never over a curve
    else:
        ax.text(0.5, 0.5, "no threat-free bags: PFA cannot be estimated", ha="center", va="center", fontsize=9,
                transform=ax.transAxes)  # fmt: skip
    ax.grid(alpha=0.25, which="both")
    return fig


def plot_roc(path: Path, curves: dict, *, title: str = "", operating: dict | None = None) -> Path:
    """``roc.png``: :func:`roc_figure` written atomically."""
    return _save_figure(roc_figure(curves, title=title, operating=operating), path)


def format_screening(summary: dict, *, dataset=None, split=None) -> str:
    """Plain-text tables: objects per class, bags at the stored rule (and where it was
    calibrated, :func:`~xray_seg.evaluation.alarms.rule_provenance`), PD at PFA targets."""
    lines = ["Objects (mask AP, COCO matching; predicted objects = predict's items)"]
    lines.append(f"{'class':<14}{'GT':>5}{'det':>6}{'R@.5':>8}{'P@.5':>8}{'AP50':>8}{'AP':>8}")

    def f(v):
        return f"{100 * v:.1f}" if v is not None else "n/a"

    objs = summary["objects"]
    for name, row in objs["per_class"].items():
        lines.append(
            f"{name:<14}{row['num_gt']:>5}{row['num_det']:>6}{f(row['recall50']):>8}{f(row['precision50']):>8}"
            f"{f(row['ap50']):>8}{f(row['ap']):>8}"
        )
    fp = objs["fp_per_clean_image"]
    lines.append(
        f"mAP50 {f(objs['map50'])}  mAP {f(objs['map'])}  FP objects/image {objs['fp_per_image'] or 0:.2f}"
        f"  on clean bags {'n/a' if fp is None else round(fp, 2)}  (GT from {gt_source_text(objs['gt_source'])})"
    )
    bags = summary["at_thresholds"]
    rule = summary["rule"]
    state = "calibrated" if rule["calibrated"] else "uncalibrated default"
    lines.append(
        f"Bags ({state} thresholds): {bags['bags']} bags, {bags['threat_bags']} with threats, "
        f"{bags['clean_bags']} clean, {bags['alarmed_bags']} alarmed; PD {f(bags['pd'])}  PFA {f(bags['pfa'])}"
    )
    lines.append(
        "  thresholds: "
        + ", ".join(f"{n} {r['threshold']:.4f}" for n, r in bags["per_class"].items())
        + f"; min area {min(rule['min_area'][1:], default=0)} px"
    )
    lines.append("  " + rule_provenance(rule, bags["bags"], dataset=dataset, split=split))
    at = summary["pd_at_pfa"]["overall"]
    lines.append(
        "PD at PFA 1% / 5% / 10%: "
        + " / ".join(f(at[k]) for k in ("0.01", "0.05", "0.1"))
        + f"   ROC AUC {f(summary['roc']['overall']['auc'])}"
    )
    if summary["note"]:
        lines.append(summary["note"])
    return "\n".join(lines)
