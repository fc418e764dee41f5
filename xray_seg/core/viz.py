"""Pictures a person would rather look at than read: palettes, overlays, grids.

Two palettes, for two jobs:

- :func:`voc_palette`, the PASCAL VOC colour map that labelme (``imgviz.label_colormap``)
  and ``labelme2voc.py`` use, is a *file format*: the palette of every mask PNG we write
  (``SegmentationClass/``, ``predict``'s masks) and the colours an export's metadata lists.
- :func:`display_palette` is for *pictures* (:func:`overlay`, :func:`colorize`, legends). The
  VOC colours are dark (maroon, green, olive, navy, purple: pliers are navy, the very colour
  of metal in a dual-energy scan), so blended over an X-ray they vanish. The display colours
  are saturated and bright (magenta, yellow, cyan, lime, ...), away from the scan's own
  colours (near-white air, orange organics, green mixed, blue to black metal), and
  :func:`overlay` draws each region with a bright contour and a black casing outside it, so
  it reads on a light background (the casing) and on dark metal (the contour) alike.
  ``tests/core/test_viz.py`` checks the contrast on a rendered bag.

Text on pictures is drawn by matplotlib in points (:func:`save_grid`), so it keeps its size
whatever the image's pixel size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xray_seg.core.constants import IGNORE_LABEL
from xray_seg.core.fileio import atomic_path

# Bright, saturated, none orange or blue: the scan's own colours (module docstring).
_DISPLAY_COLOURS = (
    (255, 0, 255),  # magenta
    (255, 240, 0),  # yellow
    (0, 255, 255),  # cyan
    (60, 255, 60),  # lime
    (255, 60, 60),  # red
    (255, 150, 230),  # pink
    (190, 255, 120),  # light green
    (255, 255, 255),  # white (its black casing shows it on air)
    (120, 255, 200),  # aquamarine
)
IGNORE_COLOUR = (224, 224, 192)  # the VOC palette's 255: beige, as labelme shows ignore
MIN_OUTLINE_CONTRAST = 150.0  # RGB distance of every display colour from navy to black metal (test_viz)


def voc_palette(n: int = 256) -> np.ndarray:
    """The VOC colour map as a ``[n, 3]`` uint8 array (label i -> colour of row i)."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def display_palette(n: int = 256) -> np.ndarray:
    """The picture colours (module docstring) as a ``[n, 3]`` uint8 array: 0 (background) black,
    1.. the bright colours in turn, 255 (ignore) beige."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(1, n):
        palette[i] = _DISPLAY_COLOURS[(i - 1) % len(_DISPLAY_COLOURS)]
    if n > IGNORE_LABEL:
        palette[IGNORE_LABEL] = IGNORE_COLOUR
    return palette


def colorize(mask: np.ndarray) -> np.ndarray:
    """A label mask ``[H, W]`` (0..254, 255 ignore) as an RGB picture in the display colours
    (background black). Mask *files* keep the VOC palette (:func:`voc_palette`)."""
    return display_palette()[np.asarray(mask, dtype=np.uint8)]


def present_classes(*masks: np.ndarray) -> list[int]:
    """The class indices (not background 0, not ignore 255) with a pixel in any of ``masks``: a legend lists these."""
    found: set[int] = set()
    for mask in masks:
        found.update(int(v) for v in np.unique(np.asarray(mask)))
    return sorted(found - {0, IGNORE_LABEL})


OVERLAY_STRIP = 256  # rows of a scan the overlay blends at a time (bounded memory on long scans)


def outline_width(shape) -> int:
    """Contour width in pixels for an image of ``shape``: about 1/150 of its shorter side, at
    least 1, so the line looks the same at every size once the picture is scaled to a page."""
    return max(1, round(min(shape[:2]) / 150))


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.3) -> np.ndarray:
    """``image`` (RGB or grey uint8) with the regions of ``mask`` drawn to be seen at a glance:
    a light fill (``alpha`` of the class's display colour), a contour of that colour
    :func:`outline_width` wide just inside each region, and a 1-pixel black casing just
    outside it. Ignore (255) gets the beige fill only; background (0) stays untouched."""
    import cv2  # lazy: OpenCV loads slowly and only pictures need it here

    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    mask = np.asarray(mask)
    palette = display_palette().astype(np.float32)
    width = outline_width(mask.shape)
    inner = np.ones((2 * width + 1,) * 2, np.uint8)
    ring = np.ones((3, 3), np.uint8)
    halo = width + 1  # rows beyond a strip that the contour and the casing of its own rows look at
    out = np.empty(image.shape, np.uint8)
    for top in range(0, image.shape[0], OVERLAY_STRIP):  # float32 copies of a strip of rows, not of the scan
        y0, y1 = max(0, top - halo), min(image.shape[0], top + OVERLAY_STRIP + halo)
        part = mask[y0:y1]
        blend = image[y0:y1].astype(np.float32)
        blend = np.where((part > 0)[..., None], (1 - alpha) * blend + alpha * palette[part.astype(np.uint8)], blend)
        for index in present_classes(part):
            region = (part == index).astype(np.uint8)
            eroded = cv2.erode(region, inner, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            edge = region.astype(bool) & ~eroded.astype(bool)
            blend[cv2.dilate(region, ring).astype(bool) & ~region.astype(bool)] = 0.0
            blend[edge] = palette[index]
        rows = blend[top - y0 : top - y0 + OVERLAY_STRIP]
        out[top : top + rows.shape[0]] = np.clip(rows + 0.5, 0, 255).astype(np.uint8)
    return out


def save_grid(
    path: str | Path,
    rows: Sequence[Sequence[np.ndarray]],
    *,
    col_titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    legend: Sequence[int] | None = None,
    title: str | None = None,
    cell_inches: float = 2.6,
    labels: Sequence[Sequence[Sequence[tuple]]] | None = None,
) -> Path:
    """Write a grid of RGB images as a PNG, with optional titles and a class legend.

    ``legend`` lists the class indices drawn in the grid (:func:`present_classes` of its
    masks); the legend shows those of ``class_names`` in the display colours, or says that
    nothing is drawn. Without ``legend`` every class but the background is listed.
    ``labels[r][c]`` is a list of ``(x, y, text, class_index)`` (image pixels) written on
    cell ``(r, c)`` in points, boxed in the class's colour, so text keeps its size whatever
    the image's pixel size. All text is in points relative to the figure.
    """
    fig = grid_figure(
        rows,
        col_titles=col_titles,
        row_titles=row_titles,
        class_names=class_names,
        legend=legend,
        title=title,
        cell_inches=cell_inches,
        labels=labels,
    )
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def _legend_handles(class_names, legend):
    from matplotlib.patches import Patch

    palette = display_palette(max(len(class_names), 1)) / 255.0
    shown = range(1, len(class_names)) if legend is None else [i for i in legend if 0 < i < len(class_names)]
    return [Patch(facecolor=palette[i], edgecolor="black", label=f"{i}: {class_names[i]}") for i in shown]


def _draw_labels(ax, cell_labels) -> None:
    palette = display_palette() / 255.0
    for x, y, text, index in cell_labels:
        ax.text(
            x, y, text, fontsize=8, ha="left", va="bottom", color="black", clip_on=True,
            bbox={"boxstyle": "square,pad=0.15", "facecolor": palette[index], "edgecolor": "black", "linewidth": 0.6},
        )  # fmt: skip


def grid_figure(
    rows, *, col_titles=None, row_titles=None, class_names=None, legend=None, title=None, cell_inches=2.6, labels=None
):
    """The matplotlib figure of :func:`save_grid` (its arguments); the caller closes it."""
    import matplotlib  # lazy: slow to import, and only the pictures need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    legend_inches = 0.5 if class_names else 0.0
    height = cell_inches * n_rows + legend_inches
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_inches * n_cols, height), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                ax.imshow(row[c], interpolation="nearest")
                if labels and r < len(labels) and c < len(labels[r]):
                    _draw_labels(ax, labels[r][c])
            if r == 0 and col_titles and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=9)
            if c == 0 and row_titles and r < len(row_titles):
                ax.text(-0.04, 0.5, row_titles[r], transform=ax.transAxes, ha="right", va="center", fontsize=8)
    if class_names:
        handles = _legend_handles(class_names, legend)
        if handles:
            fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
        else:
            fig.text(0.5, 0.01, "no class drawn", ha="center", va="bottom", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, legend_inches / height, 1, 1))  # the legend's strip: the same inches at every size
    return fig
