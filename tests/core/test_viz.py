"""Pictures read at a glance (core/viz.py): outlines that stand out from X-ray metal in the written
PNG, legends of the classes drawn only, text in points whatever the image's size."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from xray_seg.core.viz import (
    MIN_OUTLINE_CONTRAST,
    display_palette,
    grid_figure,
    outline_width,
    overlay,
    present_classes,
    voc_palette,
)

NAMES = ["_background_", "gun", "knife", "wrench", "pliers", "scissors"]


def _edge(region: np.ndarray, width: int) -> np.ndarray:
    import cv2

    inner = cv2.erode(region.astype(np.uint8), np.ones((2 * width + 1,) * 2, np.uint8), borderValue=0)
    return region & ~inner.astype(bool)


def test_outlines_stand_out_from_the_metal_under_them_in_the_written_png(tiny_voc):
    from xray_seg.conversion.voc import load_label_png, read_split
    from xray_seg.core.images import read_image_rgb
    from xray_seg.core.layouts import VocLayout

    layout = VocLayout(tiny_voc)
    checked = set()
    for stem in read_split(tiny_voc, "train") + read_split(tiny_voc, "val"):
        image, mask = read_image_rgb(layout.image_path(stem)), load_label_png(layout.mask_path(stem))
        buf = io.BytesIO()
        Image.fromarray(overlay(image, mask)).save(buf, format="PNG")
        written = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(float)
        for index in present_classes(mask):
            region = mask == index
            metal = image[region].astype(float).mean(axis=0)  # the item's own X-ray colour (blue to black)
            edge = _edge(region, outline_width(mask.shape))
            distance = np.linalg.norm(written[edge] - metal, axis=1)
            assert edge.sum() > 0 and distance.min() >= MIN_OUTLINE_CONTRAST, (stem, NAMES[index], metal)
            checked.add(index)
    assert len(checked) >= 3
    # the VOC colours this replaces: pliers are navy, the colour of metal itself
    navy_metal = np.array([25, 40, 110])
    assert np.linalg.norm(voc_palette()[4] - navy_metal) < 60
    for colour in display_palette(10)[1:]:
        for metal in ([25, 40, 110], [60, 100, 200], [10, 10, 20]):  # navy, blue and black metal
            assert np.linalg.norm(colour.astype(float) - metal) >= MIN_OUTLINE_CONTRAST, (colour, metal)


def test_overlay_leaves_background_alone_and_fills_lightly():
    image = np.full((60, 60, 3), (30, 45, 120), np.uint8)  # navy metal everywhere
    mask = np.zeros((60, 60), np.uint8)
    mask[10:50, 10:50] = 4  # pliers
    out = overlay(image, mask).astype(int)
    assert np.all(out[2, 2] == image[2, 2])  # background untouched
    assert np.all(out[9, 20] == 0)  # the black casing just outside the region
    assert np.all(out[10, 20] == display_palette()[4])  # the contour just inside
    centre = out[30, 30]
    assert np.all(centre != image[30, 30]) and np.abs(centre - image[30, 30]).max() < 120  # a light fill


def test_legend_lists_only_the_classes_drawn():
    mask = np.zeros((32, 32), np.uint8)
    mask[2:10, 2:10] = 2
    mask[20:30, 20:30] = 4
    mask[0, :] = 255  # ignore is not a class
    drawn = present_classes(mask, np.zeros_like(mask))
    assert drawn == [2, 4]
    image = np.zeros((32, 32, 3), np.uint8)
    fig = grid_figure([[image, overlay(image, mask)]], class_names=NAMES, legend=drawn)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["2: knife", "4: pliers"]
    empty = grid_figure([[image]], class_names=NAMES, legend=[])
    assert not empty.legends and "no class drawn" in [t.get_text() for t in empty.texts]
    _close(fig, empty)


def _close(*figs):
    import matplotlib.pyplot as plt

    for fig in figs:
        plt.close(fig)


def test_grid_text_is_in_points_whatever_the_image_size():
    sizes = {}
    for side in (64, 1024):
        image = np.zeros((side, side, 3), np.uint8)
        label = [[[(side * 0.1, side * 0.5, "knife", 2)]]]
        fig = grid_figure([[image]], class_names=NAMES, legend=[2], labels=label, title="t")
        ax = fig.axes[0]
        sizes[side] = (tuple(fig.get_size_inches()), [t.get_fontsize() for t in ax.texts], ax.texts[0].get_text())
        _close(fig)
    assert sizes[64] == sizes[1024] == (sizes[64][0], [8.0], "knife")
    assert outline_width((64, 64)) == 1 and outline_width((1024, 3000)) == 7  # lines scale with the image instead


def test_overlay_in_strips_equals_the_whole_scan_overlay(monkeypatch):
    """Long scans are blended in strips of rows; contours and casings across a strip edge come out the same."""
    import cv2

    from xray_seg.core import viz

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (700, 300, 3), dtype=np.uint8)
    mask = np.zeros((700, 300), np.uint8)
    for _ in range(30):
        centre = (int(rng.integers(0, 300)), int(rng.integers(0, 700)))
        cv2.circle(mask, centre, int(rng.integers(5, 60)), int(rng.integers(1, 6)), -1)
    mask[250:262] = 255
    in_strips = viz.overlay(image, mask)
    monkeypatch.setattr(viz, "OVERLAY_STRIP", 10**6)
    assert np.array_equal(in_strips, viz.overlay(image, mask))
