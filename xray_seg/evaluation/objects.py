"""Object-level evaluation: mask AP, recall and precision per class, as COCO defines them.

Paper 1 (sec. 4.3) measures pixels; a station and the PIDray detection literature count
objects. This module counts them (docs/architecture.md, "evaluation").

Ground-truth objects
    The instances of VOC ``SegmentationObject/<stem>.png`` when that file exists (instance
    ids, 0 background, 255 ignore; the class of an instance is the majority class of its
    pixels in ``SegmentationClass``); otherwise the connected components (8-connectivity)
    of each class in the class mask. :func:`load_gt_objects` says which was used
    (``"SegmentationObject"`` or ``"connected components"``).

Predicted objects
    Exactly the items ``xray-seg predict`` reports: :func:`xray_seg.inference.alarm_rule.find_items`
    (connected components of the arg-max class map, mean class probability as confidence).

Matching (COCO ``cocoeval.evaluateImg``/``accumulate``, reproduced and checked against
pycocotools in ``tests/evaluation/test_objects.py``)
    Per image and class, detections in decreasing confidence each take the unmatched
    ground truth of highest mask IoU >= the threshold. Pixels the ground truth marks 255
    (ignore) are removed from both masks before the IoU. AP is the mean of the
    interpolated precision at 101 recall points (0, 0.01, ..., 1); ``ap50`` at IoU 0.5,
    ``ap`` the mean over IoU 0.5:0.05:0.95. A class with no ground-truth object has AP,
    recall = None (undefined), and is left out of the means.

Size buckets (relative to the image area, so long scans and small crops compare)
    ``small``: area < 32²/(640·480) = 0.333 % of the image; ``medium``: up to
    96²/(640·480) = 3 %; ``large``: above. These are COCO's absolute edges (32², 96² px)
    at COCO's typical 640×480 image. As in COCO, a size bucket ignores ground truth
    outside it and unmatched detections outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.core.viz import IGNORE_LABEL

REFERENCE_AREA = 640 * 480
SIZE_EDGES = (32 * 32 / REFERENCE_AREA, 96 * 96 / REFERENCE_AREA)  # fractions of the image area
SIZE_RANGES = {
    "all": (0.0, np.inf),
    "small": (0.0, SIZE_EDGES[0]),
    "medium": SIZE_EDGES,
    "large": (SIZE_EDGES[1], np.inf),
}
IOU_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass
class Obj:
    """One object: class index, bool mask cropped to ``bbox`` ``[x, y, w, h]``, pixel area."""

    class_index: int
    mask: np.ndarray
    bbox: tuple
    area: int
    confidence: float = 1.0


def _crop_objects(binary_by_label: np.ndarray, label_ids, class_of) -> list[Obj]:
    objs = []
    for lab in label_ids:
        ys, xs = np.nonzero(binary_by_label == lab)
        if ys.size == 0:
            continue
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        crop = binary_by_label[y0:y1, x0:x1] == lab
        objs.append(Obj(int(class_of(lab, ys, xs)), crop, (int(x0), int(y0), int(x1 - x0), int(y1 - y0)), int(ys.size)))
    return objs


def gt_objects(class_mask: np.ndarray, instance_mask: np.ndarray | None = None) -> list[Obj]:
    """Ground-truth objects of one image (module docstring); ``instance_mask`` from SegmentationObject."""
    import cv2

    class_mask = np.asarray(class_mask)
    if instance_mask is not None:
        inst = np.asarray(instance_mask).astype(np.int64)
        inst = np.where((inst == IGNORE_LABEL) | (class_mask == IGNORE_LABEL) | (class_mask == 0), 0, inst)

        def majority(_lab, ys, xs):
            return np.bincount(class_mask[ys, xs].astype(np.int64)).argmax()

        return _crop_objects(inst, [v for v in np.unique(inst) if v != 0], majority)
    objs = []
    for c in np.unique(class_mask):
        if c in (0, IGNORE_LABEL):
            continue
        count, labels = cv2.connectedComponents((class_mask == c).astype(np.uint8), connectivity=8)
        objs += _crop_objects(labels, range(1, count), lambda _lab, _ys, _xs, c=c: c)
    return objs


def load_gt_objects(voc_dir: str | Path, stem: str, class_mask: np.ndarray) -> tuple[list[Obj], str]:
    """Objects of ``stem``, and which source gave them: ``"SegmentationObject"`` or ``"connected components"``."""
    from xray_seg.conversion.voc import load_label_png

    path = Path(voc_dir) / "SegmentationObject" / f"{stem}.png"
    if path.is_file():
        return gt_objects(class_mask, load_label_png(path)), "SegmentationObject"
    return gt_objects(class_mask), "connected components"


def items_to_objects(items: list[dict]) -> list[Obj]:
    """``find_items(..., with_masks=True)`` items as predicted :class:`Obj`."""
    return [
        Obj(it["class_index"], it["mask"], tuple(it["bbox"]), int(it["area"]), float(it["confidence"])) for it in items
    ]


def mask_iou(a: Obj, b: Obj, ignore: np.ndarray | None = None) -> float:
    """IoU of two cropped masks; pixels where ``ignore`` (full image, bool) is set count for neither."""

    def full(o):
        x, y, w, h = o.bbox
        m = o.mask
        if ignore is not None:
            m = m & ~ignore[y : y + h, x : x + w]
        return m, x, y

    ma, xa, ya = full(a)
    mb, xb, yb = full(b)
    area_a, area_b = int(ma.sum()), int(mb.sum())
    x0, y0 = max(xa, xb), max(ya, yb)
    x1 = min(xa + ma.shape[1], xb + mb.shape[1])
    y1 = min(ya + ma.shape[0], yb + mb.shape[0])
    inter = 0
    if x1 > x0 and y1 > y0:
        inter = int((ma[y0 - ya : y1 - ya, x0 - xa : x1 - xa] & mb[y0 - yb : y1 - yb, x0 - xb : x1 - xb]).sum())
    union = area_a + area_b - inter
    return inter / union if union else 0.0


def match_image(dets: list[Obj], gts: list[Obj], ious: np.ndarray, iou_thr: float, area_rng, image_area: int):
    """COCO's greedy matching of one image and class.

    Returns ``(dt_matched, dt_ignored, num_gt, gt_matched)``: bool arrays over ``dets``,
    the number of ground-truth objects inside ``area_rng`` and a bool array over ``gts``.

    ``dets`` are sorted by decreasing confidence; ``ious`` is ``[len(dets), len(gts)]``.
    """
    lo, hi = area_rng
    gt_ig = np.array([not (lo <= g.area / image_area <= hi) for g in gts], dtype=bool)
    order = np.argsort(gt_ig, kind="mergesort")  # non-ignored ground truth first
    gt_ig, ious = gt_ig[order], ious[:, order] if ious.size else ious
    gt_matched = np.zeros(len(gts), dtype=bool)
    dt_matched = np.zeros(len(dets), dtype=bool)
    dt_ig = np.zeros(len(dets), dtype=bool)
    for d in range(len(dets)):
        best, m = min(iou_thr, 1 - 1e-10), -1
        for g in range(len(gts)):
            if gt_matched[g]:
                continue
            if m > -1 and not gt_ig[m] and gt_ig[g]:
                break
            if ious[d, g] < best:
                continue
            best, m = ious[d, g], g
        if m == -1:
            continue
        dt_ig[d], dt_matched[d], gt_matched[m] = gt_ig[m], True, True
    outside = np.array([not (lo <= o.area / image_area <= hi) for o in dets], dtype=bool)
    dt_ig |= ~dt_matched & outside
    gt_matched_orig = np.zeros(len(gts), dtype=bool)
    gt_matched_orig[order] = gt_matched
    return dt_matched, dt_ig, int((~gt_ig).sum()), gt_matched_orig


def interpolated_ap(scores, matched, ignored, num_gt: int) -> tuple[float | None, float | None]:
    """COCO's 101-point interpolated AP and final recall of detections pooled over images."""
    if num_gt == 0:
        return None, None
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    keep = ~np.asarray(ignored, dtype=bool)[order]
    tp = np.asarray(matched, dtype=bool)[order][keep]
    tps, fps = np.cumsum(tp), np.cumsum(~tp)
    if tp.size == 0:
        return 0.0, 0.0
    recall = tps / num_gt
    precision = tps / (tps + fps + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    q = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(q.mean()), float(recall[-1])


@dataclass
class _Record:
    """One image and class at one IoU threshold and size bucket."""

    scores: list
    matched: np.ndarray
    ignored: np.ndarray
    num_gt: int


@dataclass
class ObjectEvaluator:
    """Accumulates images (:meth:`add`), then :meth:`results` gives the per-class table."""

    class_names: list
    records: dict = field(default_factory=dict)  # (class, size, iou index) -> list[_Record]
    images: int = 0
    clean_images: int = 0
    fp50: int = 0
    fp50_clean: int = 0
    gt_sources: dict = field(default_factory=dict)

    def add(
        self, gts: list[Obj], dets: list[Obj], image_shape, ignore: np.ndarray | None = None, source: str = ""
    ) -> dict:
        """Match one image; returns ``{"matched_gt": [...], "missed_gt": [...], "false_dets": [...]}`` at IoU 0.5."""
        image_area = int(image_shape[0]) * int(image_shape[1])
        self.images += 1
        clean = not gts
        self.clean_images += clean
        if source:
            self.gt_sources[source] = self.gt_sources.get(source, 0) + 1
        outcome = {"missed_gt": [], "false_dets": [], "matched_gt": []}
        for c in range(1, len(self.class_names)):
            g = [o for o in gts if o.class_index == c]
            d = sorted((o for o in dets if o.class_index == c), key=lambda o: -o.confidence)
            if not g and not d:
                continue
            ious = np.array([[mask_iou(a, b, ignore) for b in g] for a in d]).reshape(len(d), len(g))
            for size, rng in SIZE_RANGES.items():
                for t_i, thr in enumerate(IOU_THRESHOLDS):
                    dm, di, n_gt, gm = match_image(d, g, ious, thr, rng, image_area)
                    rec = _Record([o.confidence for o in d], dm, di, n_gt)
                    self.records.setdefault((c, size, t_i), []).append(rec)
                    if size == "all" and t_i == 0:
                        false = [o for o, m in zip(d, dm) if not m]
                        self.fp50 += len(false)
                        self.fp50_clean += len(false) if clean else 0
                        outcome["false_dets"] += false
                        outcome["matched_gt"] += [o for o, m in zip(g, gm) if m]
                        outcome["missed_gt"] += [o for o, m in zip(g, gm) if not m]
        return outcome

    def _ap(self, c: int, size: str, t_i: int):
        recs = self.records.get((c, size, t_i), [])
        scores = [s for r in recs for s in r.scores]
        matched = np.concatenate([r.matched for r in recs]) if recs else np.zeros(0, bool)
        ignored = np.concatenate([r.ignored for r in recs]) if recs else np.zeros(0, bool)
        return interpolated_ap(scores, matched, ignored, sum(r.num_gt for r in recs)), matched, ignored

    def results(self) -> dict:
        """Per-class and mean object metrics (module docstring), JSON-ready."""
        per_class = {}
        for c in range(1, len(self.class_names)):
            row = {}
            (ap50, rec50), matched, ignored = self._ap(c, "all", 0)
            num_gt = sum(r.num_gt for r in self.records.get((c, "all", 0), []))
            num_det = int((~ignored).sum())
            tp = int((matched & ~ignored).sum())
            row.update(
                num_gt=num_gt,
                num_det=num_det,
                tp50=tp,
                ap50=ap50,
                recall50=rec50,
                precision50=(tp / num_det) if num_det else None,
            )
            aps = [self._ap(c, "all", t)[0][0] for t in range(len(IOU_THRESHOLDS))]
            row["ap"] = None if aps[0] is None else float(np.mean(aps))
            for size in ("small", "medium", "large"):
                aps = [self._ap(c, size, t)[0][0] for t in range(len(IOU_THRESHOLDS))]
                row[f"ap_{size}"] = None if aps[0] is None else float(np.mean(aps))
                row[f"ap50_{size}"] = aps[0]
                row[f"num_gt_{size}"] = sum(r.num_gt for r in self.records.get((c, size, 0), []))
            per_class[self.class_names[c]] = row

        def mean(key):
            vals = [r[key] for r in per_class.values() if r[key] is not None]
            return float(np.mean(vals)) if vals else None

        return {
            "per_class": per_class,
            "map50": mean("ap50"),
            "map": mean("ap"),
            "map_small": mean("ap_small"),
            "map_medium": mean("ap_medium"),
            "map_large": mean("ap_large"),
            "images": self.images,
            "clean_images": self.clean_images,
            "fp_per_image": self.fp50 / self.images if self.images else None,
            "fp_per_clean_image": self.fp50_clean / self.clean_images if self.clean_images else None,
            "gt_source": self.gt_sources,
            "size_edges_fraction_of_image": list(SIZE_EDGES),
            "iou_thresholds": IOU_THRESHOLDS.tolist(),
            "note": "COCO matching and 101-point AP; None = class has no ground-truth object",
        }
