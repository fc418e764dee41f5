"""Object-level evaluation: hand-made cases with known AP, and agreement with a stock pycocotools run."""

from __future__ import annotations

import numpy as np
import pytest

from xray_seg.evaluation.objects import (
    SIZE_EDGES,
    Obj,
    ObjectEvaluator,
    gt_objects,
    items_to_objects,
    load_gt_objects,
)
from xray_seg.inference.alarm_rule import find_items

NAMES = ["_background_", "gun", "knife"]


def _box(x, y, w, h, c=1, conf=1.0):
    return Obj(c, np.ones((h, w), bool), (x, y, w, h), w * h, conf)


def test_one_matched_one_missed_one_false():
    ev = ObjectEvaluator(NAMES)
    gts = [_box(10, 10, 10, 10), _box(50, 50, 10, 10)]
    dets = [_box(11, 10, 10, 10, conf=0.9), _box(80, 10, 10, 10, conf=0.8)]  # IoU 90/110 with the first
    ev.add(gts, dets, (100, 100))
    ev.add([], [_box(5, 5, 8, 8, c=2, conf=0.7)], (100, 100))  # a clean bag with one false knife
    r = ev.results()
    gun = r["per_class"]["gun"]
    # ranked TP then FP: recall 0.5 reached at precision 1 -> 51 of the 101 recall points
    assert gun["ap50"] == pytest.approx(51 / 101)
    assert gun["recall50"] == 0.5 and gun["precision50"] == 0.5
    assert gun["num_gt"] == 2 and gun["num_det"] == 2 and gun["tp50"] == 1
    # IoU 90/110 = 0.818 matches at 0.5..0.8 (7 of 10 thresholds), misses at 0.85..0.95
    assert gun["ap"] == pytest.approx(0.7 * 51 / 101)
    assert gun["ap_medium"] == pytest.approx(0.7 * 51 / 101)  # 100 px of 10 000 = 1 %: medium
    assert gun["ap_small"] is None and gun["ap_large"] is None
    assert r["per_class"]["knife"]["ap50"] is None  # no knife in the truth: undefined, not 0
    assert r["map50"] == pytest.approx(51 / 101)
    assert r["fp_per_image"] == 1.0 and r["fp_per_clean_image"] == 1.0
    assert r["images"] == 2 and r["clean_images"] == 1


def test_false_positive_ranked_first_halves_precision():
    ev = ObjectEvaluator(NAMES)
    ev.add(
        [_box(10, 10, 10, 10), _box(50, 50, 10, 10)],
        [_box(10, 10, 10, 10, conf=0.5), _box(80, 10, 10, 10, conf=0.8)],
        (100, 100),
    )
    assert ev.results()["per_class"]["gun"]["ap50"] == pytest.approx(0.5 * 51 / 101)


def test_ignore_pixels_do_not_count():
    ignore = np.zeros((20, 20), bool)
    ignore[:, 10:] = True
    aps = []
    for ign in (None, ignore):
        ev = ObjectEvaluator(NAMES)
        ev.add([_box(0, 0, 10, 10)], [_box(0, 0, 20, 10)], (20, 20), ignore=ign)
        aps.append(ev.results()["per_class"]["gun"]["ap"])
    # IoU 100/200 = 0.5 matches at the first of 10 thresholds; without the ignored half, IoU 1 at all
    assert aps == [pytest.approx(0.1), pytest.approx(1.0)]


def test_no_cap_on_detections_per_image():
    ev = ObjectEvaluator(NAMES)  # COCO keeps the 100 best per image; the 150th here is the true one
    ev.add([_box(0, 0, 5, 5)], [_box(10, 10, 2, 2, conf=0.9)] * 149 + [_box(0, 0, 5, 5, conf=0.1)], (50, 50))
    gun = ev.results()["per_class"]["gun"]
    assert gun["tp50"] == 1 and gun["num_det"] == 150 and gun["recall50"] == 1.0
    assert gun["ap50"] == pytest.approx(1 / 150)  # precision 1/150 at every recall point


def test_ground_truth_from_instances_or_components(tmp_path):
    from xray_seg.conversion.voc import save_label_png

    cls = np.zeros((20, 20), np.uint8)
    cls[2:8, 2:12] = 1  # two guns side by side: one component, two instances
    cls[15:18, 15:18] = 2
    inst = np.zeros_like(cls)
    inst[2:8, 2:7], inst[2:8, 7:12], inst[15:18, 15:18] = 1, 2, 3
    assert sorted(o.class_index for o in gt_objects(cls)) == [1, 2]
    objs = gt_objects(cls, inst)
    assert sorted((o.class_index, o.area) for o in objs) == [(1, 30), (1, 30), (2, 9)]
    assert load_gt_objects(tmp_path, "a", cls)[1] == "connected components"
    (tmp_path / "SegmentationObject").mkdir()
    save_label_png(tmp_path / "SegmentationObject" / "a.png", inst)
    objs, source = load_gt_objects(tmp_path, "a", cls)
    assert source == "SegmentationObject" and len(objs) == 3


def test_predicted_objects_are_predict_items():
    class_map = np.zeros((30, 30), np.uint8)
    class_map[5:15, 5:15] = 1
    probs = np.zeros((30, 30, 3), np.float32)
    probs[..., 0] = 1.0
    probs[5:15, 5:15] = (0.2, 0.8, 0.0)
    objs = items_to_objects(find_items(class_map, probs, NAMES, min_area=1, with_masks=True))
    assert len(objs) == 1 and objs[0].area == 100 and objs[0].confidence == pytest.approx(0.8)
    assert objs[0].bbox == (5, 5, 10, 10) and objs[0].mask.all()


def _random_scene(rng, h, w):
    gts = []
    for _ in range(rng.integers(0, 4)):
        c = int(rng.integers(1, 3))
        bw, bh = (int(v) for v in rng.integers(2, 30, size=2))
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        gts.append(_box(x, y, bw, bh, c))
    dets = []
    for g in gts:
        if rng.random() < 0.8:
            dx, dy = (int(v) for v in rng.integers(-4, 5, size=2))
            x, y = min(max(g.bbox[0] + dx, 0), w - g.bbox[2]), min(max(g.bbox[1] + dy, 0), h - g.bbox[3])
            dets.append(_box(x, y, g.bbox[2], g.bbox[3], g.class_index, float(rng.random())))
    for _ in range(rng.integers(0, 3)):
        bw, bh = (int(v) for v in rng.integers(2, 20, size=2))
        dets.append(
            _box(
                int(rng.integers(0, w - bw)),
                int(rng.integers(0, h - bh)),
                bw,
                bh,
                int(rng.integers(1, 3)),
                float(rng.random()),
            )
        )
    return gts, dets


def test_matches_pycocotools():
    mask_util = pytest.importorskip("pycocotools.mask")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    h, w = 60, 80
    ev = ObjectEvaluator(NAMES)
    images, anns, results = [], [], []

    def rle(o):
        full = np.zeros((h, w), np.uint8, order="F")
        x, y, bw, bh = o.bbox
        full[y : y + bh, x : x + bw] = o.mask
        r = mask_util.encode(np.asfortranarray(full))
        r["counts"] = r["counts"].decode()
        return r

    for i in range(1, 41):
        gts, dets = _random_scene(rng, h, w)
        ev.add(gts, dets, (h, w))
        images.append({"id": i, "height": h, "width": w})
        for g in gts:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": g.class_index,
                    "segmentation": rle(g),
                    "area": g.area,
                    "bbox": list(g.bbox),
                    "iscrowd": 0,
                }
            )
        results += [
            {"image_id": i, "category_id": d.class_index, "segmentation": rle(d), "score": d.confidence} for d in dets
        ]
    coco = COCO()
    coco.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "gun"}, {"id": 2, "name": "knife"}],
    }
    coco.createIndex()
    cocoeval = COCOeval(coco, coco.loadRes(results), "segm")
    area = h * w
    cocoeval.params.areaRng = [
        [0, 1e10],
        [0, SIZE_EDGES[0] * area],
        list(np.array(SIZE_EDGES) * area),
        [SIZE_EDGES[1] * area, 1e10],
    ]
    cocoeval.evaluate()
    cocoeval.accumulate()
    precision = cocoeval.eval["precision"]  # [T, R, K, A, M]
    ours = ev.results()["per_class"]
    for k, name in enumerate(["gun", "knife"]):
        for a, key in enumerate(["ap", "ap_small", "ap_medium", "ap_large"]):
            p = precision[:, :, k, a, -1]
            expected = None if (p < 0).all() else float(p[p > -1].mean())
            assert ours[name][key] == pytest.approx(expected, abs=1e-12), (name, key)
        assert ours[name]["ap50"] == pytest.approx(float(precision[0, :, k, 0, -1].mean()), abs=1e-12)
        assert ours[name]["recall50"] == pytest.approx(float(cocoeval.eval["recall"][0, k, 0, -1]), abs=1e-12)
