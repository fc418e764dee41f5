"""Pictures a person would rather look at than read: palettes, overlays, grids.

The palette is the PASCAL VOC colour map that labelme (``imgviz.label_colormap``)
and ``labelme2voc.py`` use, so masks written here look the same as theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xray_seg.core.constants import IGNORE_LABEL  # noqa: F401  (re-exported: viz callers read it here)
from xray_seg.core.fileio import atomic_path


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


def colorize(mask: np.ndarray) -> np.ndarray:
    """Map a label mask ``[H, W]`` (0..254, 255 ignore) to an RGB image with the VOC palette."""
    return voc_palette()[np.asarray(mask, dtype=np.uint8)]


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured mask over an RGB uint8 image; background (0) stays untouched."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    mask = np.asarray(mask)
    out = np.empty(image.shape, np.uint8)
    for y in range(0, image.shape[0], 256):  # strips of rows: float32 copies of 256 rows, not of the scan
        colour = colorize(mask[y : y + 256]).astype(np.float32)
        blend = image[y : y + 256].astype(np.float32)
        fg = (mask[y : y + 256] > 0)[..., None]
        blend = np.where(fg, (1 - alpha) * blend + alpha * colour, blend)
        out[y : y + 256] = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
    return out


def save_grid(
    path: str | Path,
    rows: Sequence[Sequence[np.ndarray]],
    *,
    col_titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    cell_inches: float = 2.6,
) -> Path:
    """Write a grid of RGB images as a PNG, with optional titles and a class legend."""
    import matplotlib  # lazy: slow to import, and only the pictures need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(cell_inches * n_cols, cell_inches * n_rows + (0.6 if class_names else 0)),
        squeeze=False,
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                ax.imshow(row[c], interpolation="nearest")
            if r == 0 and col_titles and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=9)
            if c == 0 and row_titles and r < len(row_titles):
                ax.text(-0.04, 0.5, row_titles[r], transform=ax.transAxes, ha="right", va="center", fontsize=8)
    if class_names:
        palette = voc_palette(len(class_names)) / 255.0
        handles = [Patch(color=palette[i], label=f"{i}: {name}") for i, name in enumerate(class_names)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06 if class_names else 0, 1, 1))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
