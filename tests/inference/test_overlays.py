"""Readable overlays: labels inside the image and never overlapping, header, faint non-alarms, contact sheet."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xray_seg.core.viz import display_palette
from xray_seg.inference.overlays import HEADER_H, contact_sheet, header_text, place_labels, screening_overlay

NAMES = ["_background_", "gun", "knife"]


def _intersect(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


boxes = st.lists(
    st.tuples(st.integers(0, 150), st.integers(0, 110), st.integers(1, 60), st.integers(1, 40)), min_size=1, max_size=8
)


@settings(max_examples=60, deadline=None)
@given(boxes=boxes, lw=st.integers(20, 70), lh=st.integers(8, 14))
def test_labels_stay_inside_and_never_overlap(boxes, lw, lh):
    width, height = 160, 120
    boxes = [(x, y, min(w, width - x), min(h, height - y)) for x, y, w, h in boxes]
    rects = place_labels(boxes, [(lw, lh)] * len(boxes), (width, height))
    placed = [r for r in rects if r is not None]
    assert len(placed) == len(boxes)  # 8 labels always find room in a 160x120 image
    for r in placed:
        assert 0 <= r[0] < r[2] <= width and 0 <= r[1] < r[3] <= height
    for i, a in enumerate(placed):
        for b in placed[i + 1 :]:
            assert not _intersect(a, b)


def _scene():
    image = np.full((100, 140, 3), 230, np.uint8)
    class_map = np.zeros((100, 140), np.uint8)
    class_map[10:40, 10:50] = 1
    class_map[12:30, 60:90] = 2
    class_map[70:95, 100:135] = 2
    items = [  # three items side by side near the top: their labels would collide if drawn naively
        {"class": "gun", "class_index": 1, "area": 1200, "confidence": 0.93, "bbox": [10, 10, 40, 30], "alarm": True},
        {"class": "knife", "class_index": 2, "area": 540, "confidence": 0.71, "bbox": [12, 12, 30, 18], "alarm": True},
        {
            "class": "knife",
            "class_index": 2,
            "area": 875,
            "confidence": 0.40,
            "bbox": [100, 70, 35, 25],
            "alarm": False,
        },
    ]
    return image, class_map, items


def test_overlay_header_labels_and_faint_non_alarms(tmp_path):
    image, class_map, items = _scene()
    out, layout = screening_overlay(image, class_map, items, NAMES, return_layout=True)
    assert out.shape[0] > 100 + HEADER_H and out.shape[1] >= 140
    assert layout["header"] == "ALARM: gun (0.93), knife (0.71)"
    assert np.all(out[2, 2] == (200, 20, 20))  # red header
    labels = [r for r in layout["labels"] if r is not None]
    assert len(labels) == 2  # one per alarmed item, none for the non-alarmed knife
    for r in labels:
        assert r[0] >= 0 and r[2] <= 140 and r[1] >= HEADER_H and r[3] <= HEADER_H + 100
    assert not _intersect(*labels)
    # the alarmed gun box is drawn solid in its class colour; the non-alarmed knife box is fainter
    gun_edge = out[HEADER_H + 10, 30].astype(int)
    faint_edge = out[HEADER_H + 70, 117].astype(int)
    palette = display_palette()
    assert np.all(gun_edge == palette[1])
    assert np.abs(faint_edge - palette[2]).sum() > 100
    clear = [dict(it, alarm=False) for it in items]
    out, layout = screening_overlay(image, class_map, clear, NAMES, return_layout=True)
    assert layout["header"] == "CLEAR" and all(r is None for r in layout["labels"]) or not layout["labels"]
    assert np.all(out[2, 2] == (20, 140, 40))
    assert header_text([]) == "CLEAR"
    small, layout = screening_overlay(image[:40, :40], class_map[:40, :40], items[:2], NAMES, return_layout=True)
    assert small.shape[1] > 40 and layout["scan_size"] == (40, 40)  # the header is widened, not cut
    sheet = contact_sheet(tmp_path / "sheet.png", [("a", out), ("b", out)], thumb=64)
    assert sheet.is_file() and contact_sheet(tmp_path / "none.png", []) is None


def test_overlay_legend_lists_what_is_drawn_and_text_grows_with_the_scan():
    image, class_map, items = _scene()
    _, layout = screening_overlay(image, class_map, items[:1], NAMES, return_layout=True)
    assert layout["legend"] == [1, 2]  # the gun's item, and the knife regions the class map draws
    _, layout = screening_overlay(image, np.zeros_like(class_map), [], NAMES, return_layout=True)
    assert layout["legend"] == [] and layout["header"] == "CLEAR"
    big = np.repeat(np.repeat(image, 10, axis=0), 10, axis=1)  # a 1000 x 1400 scan
    big_map = np.repeat(np.repeat(class_map, 10, axis=0), 10, axis=1)
    scaled = [dict(it, bbox=[10 * v for v in it["bbox"]]) for it in items]
    _, small_layout = screening_overlay(image, class_map, items, NAMES, return_layout=True)
    _, big_layout = screening_overlay(big, big_map, scaled, NAMES, return_layout=True)
    assert small_layout["font_size"] == 11 and big_layout["font_size"] == 25
    assert big_layout["scan_offset"][1] > HEADER_H  # the header grows with its text
