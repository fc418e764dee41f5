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

Matching: pycocotools' ``COCOeval`` (``iouType="segm"``) itself
    Per image and class, detections in decreasing confidence each take the unmatched
    ground truth of highest mask IoU >= the threshold; AP is the mean of the interpolated
    precision at 101 recall points; ``ap50`` at IoU 0.5, ``ap`` the mean over IoU
    0.5:0.05:0.95. A class with no ground-truth object has AP, recall = None (undefined),
    and is left out of the means. What COCOeval lacks and this module adds:

    * pixels the ground truth marks 255 (ignore) are removed from both masks before they
      are run-length encoded, so they count for neither side of the IoU;
    * no cap on detections per image (COCO keeps the 100 best; ``maxDets`` is unbounded here);
    * bags: images without ground truth count as clean bags, and the false objects at
      IoU 0.5 per image and per clean image;
    * size buckets relative to the image area (below).

Size buckets (relative to the image area, so long scans and small crops compare)
    ``small``: area < 32²/(640·480) = 0.333 % of the image; ``medium``: up to
    96²/(640·480) = 3 %; ``large``: above. These are COCO's absolute edges (32², 96² px)
    at COCO's typical 640×480 image. Each annotation's ``area`` given to COCOeval is its
    pixel area (before the ignore pixels are removed) over its image's area, and
    ``params.areaRng`` holds these fractions; as in COCO, a size bucket ignores ground
    truth outside it and unmatched detections outside it.
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from xray_seg.conversion.voc import load_label_png
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
    path = Path(voc_dir) / "SegmentationObject" / f"{stem}.png"
    if path.is_file():
        return gt_objects(class_mask, load_label_png(path)), "SegmentationObject"
    return gt_objects(class_mask), "connected components"


def items_to_objects(items: list[dict]) -> list[Obj]:
    """``find_items(..., with_masks=True)`` items as predicted :class:`Obj`."""
    return [
        Obj(it["class_index"], it["mask"], tuple(it["bbox"]), int(it["area"]), float(it["confidence"])) for it in items
    ]


def _rles(objs: list[Obj], height: int, width: int, ignore: np.ndarray | None) -> list[dict]:
    """COCO run-length encodings of ``objs`` drawn on the full image, ignore pixels removed."""
    if not objs:
        return []
    full = np.zeros((height, width, len(objs)), np.uint8, order="F")
    for i, o in enumerate(objs):
        x, y, w, h = o.bbox
        full[y : y + h, x : x + w, i] = o.mask
    if ignore is not None:
        full[np.asarray(ignore, bool)] = 0
    return mask_utils.encode(full)


def _cocoeval(images: list[dict], gt_anns: list[dict], dt_anns: list[dict], class_names) -> COCOeval:
    """``COCOeval`` run (evaluate + accumulate) with our thresholds, size buckets and no detection cap."""
    from pycocotools.coco import COCO  # lazy: pycocotools.coco imports urllib.request (~28 ms)

    categories = [{"id": c, "name": n} for c, n in enumerate(class_names) if c]
    gt, dt = COCO(), COCO()
    gt.dataset = {"images": images, "categories": categories, "annotations": gt_anns}
    dt.dataset = {"images": images, "categories": categories, "annotations": dt_anns}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt.createIndex()
        dt.createIndex()
        ev = COCOeval(gt, dt, "segm")
        p = ev.params
        p.imgIds, p.catIds = [im["id"] for im in images], list(range(1, len(class_names)))
        p.iouThrs = IOU_THRESHOLDS  # COCO's own linspace has 0.8999999999999999 for 0.9
        p.areaRng, p.areaRngLbl = [list(r) for r in SIZE_RANGES.values()], list(SIZE_RANGES)
        p.maxDets = [sys.maxsize]
        ev.evaluate()
        ev.accumulate()
    return ev


def _counts(ev: COCOeval, k: int, a: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image of class index ``k`` and size bucket ``a``, at IoU 0.5: ground truth inside the
    bucket, detections not ignored, and those matched among them (zeros where COCO skipped)."""
    n = len(ev.params.imgIds)
    out = np.zeros((3, n), np.int64)
    for i, e in enumerate(ev.evalImgs[(k * len(SIZE_RANGES) + a) * n : (k * len(SIZE_RANGES) + a + 1) * n]):
        if e is not None:
            kept = ~e["dtIgnore"][0].astype(bool)
            out[:, i] = (~e["gtIgnore"].astype(bool)).sum(), kept.sum(), ((e["dtMatches"][0] > 0) & kept).sum()
    return out[0], out[1], out[2]


def _ap_row(ev: COCOeval, k: int) -> dict:
    """AP, AP50, recall and counts of class index ``k`` (0 = first class after background)."""
    precision, recall = ev.eval["precision"], ev.eval["recall"]  # [T, R, K, A, M], [T, K, A, M]

    def aps(a):
        q = precision[:, :, k, a, -1]
        if (q[0] < 0).all():
            return None, None
        per_thr = [float(np.ascontiguousarray(q[t]).mean()) for t in range(len(IOU_THRESHOLDS))]
        return per_thr[0], float(np.mean(per_thr))

    gt, det, tp = (int(v.sum()) for v in _counts(ev, k, 0))
    ap50, ap = aps(0)
    row = {"num_gt": gt, "num_det": det, "tp50": tp, "ap50": ap50}
    row["recall50"] = None if recall[0, k, 0, -1] < 0 else float(recall[0, k, 0, -1])
    row["precision50"] = tp / det if det else None
    row["ap"] = ap
    for a, size in enumerate(list(SIZE_RANGES)[1:], start=1):
        ap50, ap = aps(a)
        row[f"ap_{size}"], row[f"ap50_{size}"] = ap, ap50
        row[f"num_gt_{size}"] = int(_counts(ev, k, a)[0].sum())
    return row


@dataclass
class ObjectEvaluator:
    """Accumulates images (:meth:`add`), then :meth:`results` gives the per-class table."""

    class_names: list
    images: int = 0
    clean_images: int = 0
    gt_sources: dict = field(default_factory=dict)
    _images: list = field(default_factory=list, repr=False)  # COCO "images": id, height, width
    _clean: list = field(default_factory=list, repr=False)  # per image: no ground-truth object
    _gt: list = field(default_factory=list, repr=False)  # COCO annotations
    _dt: list = field(default_factory=list, repr=False)  # COCO results

    def add(
        self, gts: list[Obj], dets: list[Obj], image_shape, ignore: np.ndarray | None = None, source: str = ""
    ) -> None:
        """Add one image: its ground-truth and predicted objects, and the ignore pixels (bool, full image)."""
        h, w = int(image_shape[0]), int(image_shape[1])
        self.images += 1
        self._images.append({"id": self.images, "height": h, "width": w})
        self._clean.append(not gts)
        self.clean_images += not gts
        if source:
            self.gt_sources[source] = self.gt_sources.get(source, 0) + 1
        for objs, anns in ((gts, self._gt), (dets, self._dt)):
            for o, rle in zip(objs, _rles(objs, h, w, ignore)):
                ann = {"id": len(anns) + 1, "image_id": self.images, "category_id": o.class_index, "iscrowd": 0}
                anns.append({**ann, "segmentation": rle, "area": o.area / (h * w), "score": o.confidence})

    def results(self) -> dict:
        """Per-class and mean object metrics (module docstring), JSON-ready."""
        ev = _cocoeval(self._images, self._gt, self._dt, self.class_names)
        per_class = {name: _ap_row(ev, c - 1) for c, name in enumerate(self.class_names) if c}
        clean = np.asarray(self._clean, bool)
        false = np.zeros(self.images, np.int64)  # unmatched detections per image at IoU 0.5
        for k in range(len(per_class)):
            _gt, det, tp = _counts(ev, k, 0)
            false += det - tp

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
            "fp_per_image": int(false.sum()) / self.images if self.images else None,
            "fp_per_clean_image": int(false[clean].sum()) / self.clean_images if self.clean_images else None,
            "gt_source": self.gt_sources,
            "size_edges_fraction_of_image": list(SIZE_EDGES),
            "iou_thresholds": IOU_THRESHOLDS.tolist(),
            "note": "COCO matching and 101-point AP; None = class has no ground-truth object",
        }
