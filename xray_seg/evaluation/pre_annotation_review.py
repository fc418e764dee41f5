"""What an annotator would keep of a pre-annotation: pre-annotated Labelme files against the truth.

``xray-seg predict --labelme`` (:mod:`xray_seg.inference.pre_annotation`) draws the first
polygons; this module counts, where the truth is known (synthetic bags), how much of that
work an annotator keeps. The papers do not measure pre-annotation; the definitions are ours:

Items
    One item per ``polygon`` shape of a Labelme file (``_background_`` and ``__ignore__``
    shapes skipped), with the pixels labelme fills for it (outline included) less those of
    later shapes, which labelme draws over it (``xray-seg convert`` rasterises the same way).
    A threat that the synthetic truth splits into two polygons is two items, as an annotator
    draws it; an item with no visible pixel left is dropped.
Accepted as is
    A true item is accepted when a predicted item of the same class overlaps it at an IoU of
    at least :data:`MIN_IOU` (0.5, the usual instance-matching threshold); predicted and true
    items are paired one to one, the highest IoU first.
Deleted
    A predicted item paired with no true item: wrong class, too poor an outline, a second
    piece of an item already paired, or anything on a clean bag. The annotator deletes it,
    one action a shape.
Vertices to add or move
    The proxy of the annotator's remaining work: the vertices of every true item not accepted,
    which the annotator draws (or drags an imperfect prediction's vertices onto; about as many
    moves). ``scratch_vertices`` is the work without pre-annotation (every true item's
    vertices), so ``1 - vertices / scratch_vertices`` is the share of drawing saved.
    Deletions are counted apart, not as vertices.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from xray_seg.conversion.labelme_writer import rasterise_polygons

#: Least IoU (same class) at which a predicted item is accepted as the true item.
MIN_IOU = 0.5
SKIPPED_LABELS = ("_background_", "__ignore__")


@dataclass
class Item:
    """One drawn item: its class, the pixels it shows and the vertices of its polygon."""

    label: str
    mask: np.ndarray
    vertices: int


@dataclass
class Review:
    """Counts over reviewed scans (module docstring); shares through :meth:`shares`."""

    scans: int = 0
    true_items: int = 0
    accepted: int = 0
    predicted: int = 0
    deleted: int = 0
    vertices: int = 0
    scratch_vertices: int = 0

    def add(self, other: Review) -> Review:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)
        return self

    def shares(self) -> dict:
        """``accepted_share`` (of true items), ``deleted_share`` (of predicted shapes) and
        ``saved_share`` (of the vertices drawn from scratch); None where nothing was counted."""

        def share(part, whole):
            return part / whole if whole else None

        return {
            "accepted_share": share(self.accepted, self.true_items),
            "deleted_share": share(self.deleted, self.predicted),
            "saved_share": share(self.scratch_vertices - self.vertices, self.scratch_vertices),
        }

    def as_dict(self) -> dict:
        return {**asdict(self), **self.shares()}


def labelme_items(shapes, image_shape) -> list[Item]:
    """The items of a Labelme file's ``shapes`` (module docstring) in an image of ``image_shape``."""
    polygons = [
        s for s in shapes if s.get("shape_type", "polygon") == "polygon" and s.get("label") not in SKIPPED_LABELS
    ]
    covered = np.zeros(tuple(image_shape[:2]), bool)
    items = []
    for shape in reversed(polygons):  # later shapes are drawn over earlier ones
        fill = rasterise_polygons([np.asarray(shape["points"], np.float64)], covered.shape)
        visible = fill & ~covered
        covered |= fill
        if visible.any():
            items.append(Item(shape["label"], visible, len(shape["points"])))
    return items[::-1]


def match_items(truth: list[Item], predicted: list[Item], min_iou: float = MIN_IOU) -> list[tuple[int, int, float]]:
    """``(true index, predicted index, IoU)`` pairs of the same class at ``min_iou`` or more,
    one to one, the highest IoU first."""
    candidates = []
    for i, t in enumerate(truth):
        for j, p in enumerate(predicted):
            if t.label != p.label:
                continue
            inter = int(np.count_nonzero(t.mask & p.mask))
            iou = inter / int(np.count_nonzero(t.mask | p.mask)) if inter else 0.0
            if iou >= min_iou:
                candidates.append((iou, i, j))
    pairs, used_t, used_p = [], set(), set()
    for iou, i, j in sorted(candidates, reverse=True):
        if i not in used_t and j not in used_p:
            pairs.append((i, j, iou))
            used_t.add(i)
            used_p.add(j)
    return pairs


def review_shapes(true_shapes, predicted_shapes, image_shape, min_iou: float = MIN_IOU) -> Review:
    """The :class:`Review` of one scan from its true and predicted Labelme shapes."""
    truth = labelme_items(true_shapes, image_shape)
    predicted = labelme_items(predicted_shapes, image_shape)
    accepted = {i for i, _, _ in match_items(truth, predicted, min_iou)}
    return Review(
        scans=1,
        true_items=len(truth),
        accepted=len(accepted),
        predicted=len(predicted),
        deleted=len(predicted) - len(accepted),
        vertices=sum(t.vertices for i, t in enumerate(truth) if i not in accepted),
        scratch_vertices=sum(t.vertices for t in truth),
    )


def review_files(pairs, min_iou: float = MIN_IOU) -> Review:
    """The summed :class:`Review` of ``(pre-annotation JSON, truth JSON)`` pairs; the image
    size is the truth file's ``imageHeight`` x ``imageWidth``."""
    total = Review()
    for predicted_json, true_json in pairs:
        truth = json.loads(Path(true_json).read_text(encoding="utf-8"))
        predicted = json.loads(Path(predicted_json).read_text(encoding="utf-8"))
        shape = (int(truth["imageHeight"]), int(truth["imageWidth"]))
        total.add(review_shapes(truth["shapes"], predicted["shapes"], shape, min_iou))
    return total
