"""Scores on subsets of a split: ``xray-seg evaluate --subset NAME`` and the per-subset table.

A VOC folder's subsets are the annotations' image flags (``subsets.json``, written by
``xray-seg convert`` from Labelme's ``flags``; ``xray-seg synth`` flags ``hidden``, ``small``
and ``clean`` bags). docs/evaluation.md, "Subsets", states the rule this module applies:

- **Pixel metrics** (PA, mPA, IoU, mIoU; paper 1 eqs. 4-7) come from one confusion matrix
  over the images of the split that are in the subset.
- **PD** is measured on the threat bags of the split that are in the subset; **PFA** on
  every threat-free bag of the split, in the subset or not. A subset of hard threat bags
  (``hidden``, ``small``) holds few or no clean bags, so PD at PFA 5 % could not be
  estimated from the subset alone; the false alarms a station would raise do not depend on
  which threat bags are hard, so the split's clean bags are the right reference. A subset
  that is itself threat-free (``clean``) has no PD, and its PFA is measured on the split's
  clean bags as always.
- A bag belongs to a subset as a whole: a ``hidden`` bag may hold a second threat in plain
  view, and PD counts the bag detected when any of its threats alarms.

``evaluate --subset`` predicts only the bags it needs (the subset's and the split's clean
bags, found from the masks first) and writes the objects' AP over exactly those bags. Without
``--subset`` every image of the split is predicted once and :func:`subset_table` reports
``all`` and each subset from the per-image confusion matrices and bag scores.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from xray_seg.conversion.voc import load_label_png, read_subsets
from xray_seg.core.errors import DatasetError
from xray_seg.core.layouts import VocLayout
from xray_seg.evaluation.alarms import screening_report
from xray_seg.evaluation.metrics import segmentation_scores
from xray_seg.evaluation.report import _md_table, _text_table, display_name

RULE = (
    "pixel metrics on the split's images in the subset; PD on the subset's threat bags; "
    "PFA on all threat-free bags of the split (docs/evaluation.md, Subsets)"
)


def threat_free(voc_dir: str | Path, stem: str) -> bool:
    """Whether ``stem``'s class mask has no threat pixel (only background and ignore)."""
    mask = load_label_png(VocLayout(voc_dir).mask_path(stem))
    return not bool(((mask > 0) & (mask < 255)).any())


def select_subset(voc_dir: str | Path, split: str, stems: list[str], subset: str) -> tuple[list[str], set[str]]:
    """``(stems to predict, members)``: the split's images in ``subset`` plus its threat-free
    images (for PFA), in split order, and the set of the subset's images in the split."""
    subsets = read_subsets(voc_dir)
    path = VocLayout(voc_dir).subsets_file
    if subset not in subsets:
        known = ", ".join(sorted(subsets)) or "none (the annotations have no image flags)"
        raise DatasetError(
            f"no subset {subset!r}; the dataset has {known}",
            path=path if path.exists() else Path(voc_dir),
            fix="pass one of those to --subset, or tick the flag in Labelme and re-run `xray-seg convert --resume`",
        )
    listed = set(subsets[subset])
    members = {s for s in stems if s in listed}
    if not members:
        raise DatasetError(
            f"subset {subset!r} has no image in split {split!r}",
            path=path,
            fix="evaluate another --split, or a subset with images in this one",
        )
    return [s for s in stems if s in members or threat_free(voc_dir, s)], members


def bag_selection(screening, members: set[str]) -> np.ndarray:
    """Bags of ``screening`` the subset rule scores: the subset's bags and every threat-free bag."""
    _, truth = screening.bag_arrays()
    clean = ~truth[:, 1:].any(axis=1)
    return np.asarray([s in members for s in screening.stems], bool) | clean


def subset_row(per_image_cm: dict, screening, members: set[str], names) -> dict:
    """Pixel scores over ``members`` and PD at PFA of the subset rule (module docstring)."""
    k = len(names)
    cm = sum((per_image_cm[s] for s in members), np.zeros((k, k), np.int64))
    scores = segmentation_scores(cm, names)
    bag_scores, truth = screening.bag_arrays()
    keep = bag_selection(screening, members)
    report = screening_report(bag_scores[keep], truth[keep], screening.rule)
    in_subset = np.asarray([s in members for s in screening.stems], bool)
    threat = truth[:, 1:].any(axis=1)
    return {
        "images": len(members),
        "threat_bags": int((in_subset & threat).sum()),
        "pfa_clean_bags": int((keep & ~threat).sum()),
        "miou": scores["miou"],
        "mpa": scores["mpa"],
        "pa": scores["pa"],
        "iou": dict(zip(names, scores["iou"])),
        "pd_at_pfa": report["pd_at_pfa"]["overall"],
        "at_thresholds": {key: report["at_thresholds"][key] for key in ("pd", "pfa")},
    }


def subset_table(voc_dir: str | Path, per_image_cm: dict, screening, names) -> dict:
    """``{"all": row, subset: row, ...}`` for the evaluated images; ``{}`` when no subset has an
    evaluated image (the demo's bags, for one, are none of hidden, small or clean)."""
    subsets = read_subsets(voc_dir)
    if not subsets:
        return {}
    evaluated = set(per_image_cm)
    table = {"all": subset_row(per_image_cm, screening, evaluated, names)}
    for name, stems in subsets.items():
        members = evaluated & set(stems)
        if members:
            table[name] = subset_row(per_image_cm, screening, members, names)
    return table if len(table) > 1 else {}


def _pct(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.2f}"


def format_subset_table(table: dict, names, *, markdown: bool = False) -> str:
    """``all`` and each subset: images, threat bags, mIoU, mPA, per-class IoU, PD at PFA 5 %."""
    classes = list(names)[1:]
    header = ["subset", "images", "threat bags", "clean bags (PFA)", "mIoU (%)", "mPA (%)"]
    header += [f"IoU {display_name(n)}" for n in classes] + ["PD@PFA 5% (%)"]
    rows = [
        [name, str(row["images"]), str(row["threat_bags"]), str(row["pfa_clean_bags"])]
        + [_pct(row["miou"]), _pct(row["mpa"])]
        + [_pct(row["iou"][n]) for n in classes]
        + [_pct(row["pd_at_pfa"]["0.05"])]
        for name, row in table.items()
    ]
    lines = (_md_table if markdown else _text_table)(header, rows)
    return "\n".join(lines + ["", f"Rule: {RULE}."])


def folder_name(subset: str) -> str:
    """A file-name-safe form of a subset name (flags are free text) for ``eval-<split>-<subset>``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", subset).strip("._") or "subset"
