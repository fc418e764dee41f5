"""Reviewing pre-annotations against the truth, on hand-made polygons: acceptance at IoU 0.5
of the right class, one to one; deletions; vertices to add or move; later shapes over earlier."""

from __future__ import annotations

import json

import pytest

from xray_seg.evaluation.pre_annotation_review import (
    Item,
    Review,
    labelme_items,
    match_items,
    review_files,
    review_shapes,
)

SHAPE = (40, 40)


def box(label, x0, y0, x1, y1, extra=0):
    """A rectangle as a polygon; ``extra`` collinear vertices on its top edge (same pixels, more vertices)."""
    top = [[x0 + (x1 - x0) * (i + 1) / (extra + 1), y0] for i in range(extra)]
    return {"label": label, "points": [[x0, y0], *top, [x1, y0], [x1, y1], [x0, y1]], "shape_type": "polygon"}


def test_exact_copy_is_accepted_and_saves_every_vertex():
    truth = [box("gun", 5, 5, 15, 15), box("knife", 20, 20, 35, 30, extra=2)]
    review = review_shapes(truth, truth, SHAPE)
    assert (review.true_items, review.accepted, review.predicted, review.deleted) == (2, 2, 2, 0)
    assert (review.vertices, review.scratch_vertices) == (0, 4 + 6)
    assert review.shares() == {"accepted_share": 1.0, "deleted_share": 0.0, "saved_share": 1.0}


def test_iou_threshold_and_class():
    truth = [box("gun", 0, 0, 9, 9)]  # 10 x 10 pixels, outline included
    half = [box("gun", 0, 0, 9, 4)]  # 50 pixels of the 100: IoU 0.5, accepted
    under = [box("gun", 0, 0, 9, 3)]  # 40 pixels: IoU 0.4, not
    assert review_shapes(truth, half, SHAPE).accepted == 1
    missed = review_shapes(truth, under, SHAPE)
    assert (missed.accepted, missed.deleted, missed.vertices) == (0, 1, 4)
    wrong_class = review_shapes(truth, [box("knife", 0, 0, 9, 9)], SHAPE)
    assert (wrong_class.accepted, wrong_class.deleted, wrong_class.vertices) == (0, 1, 4)


def test_one_to_one_highest_iou_first():
    gun = labelme_items([box("gun", 0, 0, 9, 9)], SHAPE)[0]
    near, exact = Item("gun", gun.mask.copy(), 4), Item("gun", gun.mask.copy(), 4)
    near.mask[7:] = False  # IoU 0.7
    assert [(i, j) for i, j, _ in match_items([gun], [near, exact])] == [(0, 1)]
    assert [(i, j) for i, j, _ in match_items([gun], [exact, near])] == [(0, 0)]
    halves = [box("gun", 0, 0, 9, 4), box("gun", 0, 5, 9, 9)]  # two true items, IoU 0.5 each with the whole
    review = review_shapes(halves, [box("gun", 0, 0, 9, 9), box("gun", 30, 30, 35, 35)], SHAPE)
    assert (review.true_items, review.accepted, review.predicted, review.deleted) == (2, 1, 2, 1)
    assert review.vertices == 4


def test_clean_bag_every_prediction_deleted_nothing_to_draw():
    review = review_shapes([], [box("gun", 1, 1, 5, 5)], SHAPE)
    assert (review.true_items, review.deleted, review.vertices) == (0, 1, 0)
    assert review.shares() == {"accepted_share": None, "deleted_share": 1.0, "saved_share": None}


def test_later_shape_covers_earlier_and_background_skipped():
    under, over = box("gun", 0, 0, 9, 9), box("knife", 0, 0, 9, 9)
    items = labelme_items([under, over, box("_background_", 0, 0, 39, 39)], SHAPE)
    assert [i.label for i in items] == ["knife"]  # the gun shows no pixel: not an item
    partly = labelme_items([under, box("knife", 0, 0, 9, 4)], SHAPE)
    assert [(i.label, int(i.mask.sum())) for i in partly] == [("gun", 50), ("knife", 50)]


def test_review_files_sums_scans(tmp_path):
    def write(name, shapes):
        path = tmp_path / name
        path.write_text(json.dumps({"shapes": shapes, "imageHeight": SHAPE[0], "imageWidth": SHAPE[1]}))
        return path

    pairs = [
        (write("p1.json", [box("gun", 5, 5, 15, 15)]), write("t1.json", [box("gun", 5, 5, 15, 15)])),
        (write("p2.json", []), write("t2.json", [box("knife", 2, 2, 8, 8, extra=3)])),
    ]
    total = review_files(pairs)
    assert (total.scans, total.true_items, total.accepted, total.vertices, total.scratch_vertices) == (2, 2, 1, 7, 11)
    assert total.as_dict()["saved_share"] == pytest.approx(4 / 11)
    assert Review().add(total).add(total).true_items == 4
