"""Overlays an operator can read at a glance, and a contact sheet of the alarmed bags.

:func:`screening_overlay` draws (docs/architecture.md, "station"):

- a header strip above the scan: ``ALARM: gun (0.93), knife (0.71)`` on red, or ``CLEAR``
  on green;
- the class map as :func:`xray_seg.core.viz.overlay` draws it: a light fill and a bright
  contour over a black casing in the display colours, which stay visible on the scan's
  navy metal and orange organics (the VOC colours of the mask files do not);
- one solid box per alarmed item with a label ``gun 0.93``; the labels are placed by
  :func:`place_labels` so that they stay inside the image and never overlap each other;
- non-alarmed detections as thin boxes blended half into the scan, without a label;
- the legend strip of the classes drawn (the class map's and the items'), below the scan.

Text is sized to the scan (:func:`font_size`): about 1/40 of its shorter side, never below
11 pixels, so a 3000-pixel belt scan's labels are as legible as a 256-pixel crop's.

:func:`contact_sheet` tiles the overlays of a ``predict`` run's alarmed bags into one PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xray_seg.core.fileio import atomic_path
from xray_seg.core.viz import display_palette, overlay, present_classes

HEADER_H = 20  # the header's height at the smallest font; taller on large scans
MIN_FONT = 11
ALARM_RED = (200, 20, 20)
CLEAR_GREEN = (20, 140, 40)


def _intersects(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(boxes, sizes, image_size) -> list[tuple[int, int, int, int]]:
    """Rectangles ``(x0, y0, x1, y1)`` (exclusive ends) for labels of ``sizes`` ``(w, h)`` near ``boxes``.

    Each label tries above its box, below it, inside its top edge, then the same at the
    right edge, then slides down and up in steps of its height; the first place inside
    the image that overlaps no label placed so far wins. A label that fits nowhere is
    stacked in the first free row of the image (the image is large enough for a label per
    row in every practical case; otherwise it is dropped, given as None).
    """
    width, height = image_size
    placed: list = []
    out = []
    for (x, y, w, h), (lw, lh) in zip(boxes, sizes):
        lw, lh = min(lw, width), min(lh, height)
        xs = [x, x + w - lw]
        ys = [y - lh, y + h, y]
        candidates = [(cx, cy) for cx in xs for cy in ys]
        for step in range(1, height // max(lh, 1) + 1):
            candidates += [(cx, y + h + step * lh) for cx in xs] + [(cx, y - lh - step * lh) for cx in xs]
        candidates += [(cx, row * lh) for row in range(height // max(lh, 1)) for cx in (0, width - lw)]
        choice = None
        for cx, cy in candidates:
            cx = int(min(max(cx, 0), width - lw))
            cy = int(min(max(cy, 0), height - lh))
            rect = (cx, cy, cx + lw, cy + lh)
            if not any(_intersects(rect, p) for p in placed):
                choice = rect
                break
        if choice is not None:
            placed.append(choice)
        out.append(choice)
    return out


def header_text(items, class_names=None) -> str:
    """``"ALARM: gun (0.93), knife (0.71)"`` (highest confidence per alarmed class) or ``"CLEAR"``."""
    best: dict = {}
    for it in items:
        if it.get("alarm"):
            best[it["class"]] = max(best.get(it["class"], 0.0), it["confidence"])
    if not best:
        return "CLEAR"
    order = sorted(best, key=lambda c: -best[c])
    return "ALARM: " + ", ".join(f"{c} ({best[c]:.2f})" for c in order)


def font_size(scan_size) -> int:
    """Pixel size of the overlay's text for a scan of ``(width, height)`` (module docstring)."""
    return max(MIN_FONT, round(min(scan_size) / 40))


def screening_overlay(
    image: np.ndarray, class_map: np.ndarray, items: list[dict], class_names: list[str], *, return_layout: bool = False
):
    """The overlay (module docstring) as an RGB array; with ``return_layout`` also the label rectangles
    (in the returned image's coordinates), the scan's offset ``(0, header height)``, the legend's
    class indices and the font size."""
    from PIL import Image, ImageDraw, ImageFont

    palette = display_palette()
    scan = Image.fromarray(overlay(image, class_map, alpha=0.25))
    font = ImageFont.load_default(size=font_size(scan.size))
    draw = ImageDraw.Draw(scan)
    base = image if image.ndim == 3 else np.repeat(image[..., None], 3, -1)  # uint8: a box's patch is cast alone
    line = max(1, font.size // 8)
    for it in items:
        if it.get("alarm"):
            continue
        x, y, w, h = it["bbox"]
        colour = palette[it["class_index"]].astype(np.float32)
        patch = base[y : y + h, x : x + w].astype(np.float32).mean(axis=(0, 1)) if w and h else colour
        faint = tuple(int(v) for v in 0.5 * colour + 0.5 * patch)
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=faint, width=line)
    alarmed = sorted((it for it in items if it.get("alarm")), key=lambda it: -it["confidence"])
    texts = [f"{it['class']} {it['confidence']:.2f}" for it in alarmed]
    sizes = []
    for text in texts:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        sizes.append((right - left + 6, bottom - top + 6))
    rects = place_labels([it["bbox"] for it in alarmed], sizes, scan.size)
    for it in alarmed:
        x, y, w, h = it["bbox"]
        colour = tuple(int(c) for c in palette[it["class_index"]])
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=(0, 0, 0), width=3 * line + 2)
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=colour, width=3 * line)
    for it, text, rect in zip(alarmed, texts, rects):
        if rect is None:
            continue
        colour = tuple(int(c) for c in palette[it["class_index"]])
        draw.rectangle([rect[0], rect[1], rect[2] - 1, rect[3] - 1], fill=colour, outline=(0, 0, 0))
        draw.text(
            (rect[0] + 3, rect[1] + 3 - draw.textbbox((0, 0), text, font=font)[1]), text, fill=(0, 0, 0), font=font
        )
    array, header_h, header, legend = _frame(scan, items, class_map, class_names, font)
    if return_layout:
        shifted = [None if r is None else (r[0], r[1] + header_h, r[2], r[3] + header_h) for r in rects]
        layout = {"labels": shifted, "scan_offset": (0, header_h), "scan_size": scan.size, "header": header}
        return array, {**layout, "legend": legend, "font_size": font.size}
    return array


def _frame(scan, items, class_map, class_names, font):
    """``(picture, header height, header text, legend classes)``: ``scan`` under its header
    strip, above the legend of the classes drawn (the class map's and the items')."""
    from PIL import Image, ImageDraw

    palette = display_palette()
    found = sorted({it["class_index"] for it in items} | set(present_classes(class_map)))
    found = [i for i in found if i < len(class_names)]
    row_h = font.size + 5
    header_h = max(HEADER_H, font.size + 9)
    legend_h = row_h * max(1, len(found)) + 8
    header = header_text(items)
    draw = ImageDraw.Draw(scan)
    text_w = draw.textbbox((0, 0), header, font=font)[2] + 12
    # a scan narrower than its header (small crops) gets a white margin at the right, never a cut header
    out = Image.new("RGB", (max(scan.width, text_w), header_h + scan.height + legend_h), "white")
    d = ImageDraw.Draw(out)
    d.rectangle([0, 0, out.width - 1, header_h - 1], fill=CLEAR_GREEN if header == "CLEAR" else ALARM_RED)
    d.text((6, (header_h - font.size) // 2 - 1), header, fill=(255, 255, 255), font=font)
    out.paste(scan, (0, header_h))
    top = header_h + scan.height
    if not found:
        d.text((6, top + 5), "no prohibited items found", fill=(0, 0, 0), font=font)
    for row, index in enumerate(found):
        y0 = top + 4 + row_h * row
        d.rectangle(
            [6, y0, 6 + font.size, y0 + font.size], fill=tuple(int(c) for c in palette[index]), outline=(0, 0, 0)
        )
        d.text((12 + font.size, y0 - 1), class_names[index], fill=(0, 0, 0), font=font)
    return np.asarray(out), header_h, header, found


def thumbnail(array: np.ndarray, thumb: int = 256):
    """The overlay shrunk to fit ``thumb x thumb`` as the contact sheet shows it (a PIL image);
    ``predict`` keeps these, not the alarmed scans whole, until the sheet is written."""
    from PIL import Image

    img = Image.fromarray(np.asarray(array, dtype=np.uint8))
    img.thumbnail((thumb, thumb))
    return img


def contact_sheet(
    path: str | Path, overlays: list[tuple[str, np.ndarray]], *, thumb: int = 256, columns: int = 4
) -> Path | None:
    """Tile ``(caption, overlay)`` pairs into one PNG (None and nothing written when there are none);
    an overlay may be an array or already a :func:`thumbnail`."""
    from PIL import Image, ImageDraw

    if not overlays:
        return None
    cells = []
    for caption, array in overlays:
        img = array.copy() if isinstance(array, Image.Image) else Image.fromarray(np.asarray(array, dtype=np.uint8))
        img.thumbnail((thumb, thumb))
        cells.append((caption, img))
    columns = min(columns, len(cells))
    rows = -(-len(cells) // columns)
    cell_h = thumb + 16
    sheet = Image.new("RGB", (columns * (thumb + 8) + 8, rows * (cell_h + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (caption, img) in enumerate(cells):
        x0 = 8 + (i % columns) * (thumb + 8)
        y0 = 8 + (i // columns) * (cell_h + 8)
        sheet.paste(img, (x0, y0))
        draw.text((x0, y0 + img.height + 2), caption[:40], fill=(0, 0, 0))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(path)
