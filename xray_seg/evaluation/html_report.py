"""``report.html``: one self-contained page a person opens in a browser, with no network.

Every picture is an inline ``data:image/png;base64`` URI and the style sheet is inline,
so the file can be mailed or archived alone. It holds paper 1's pixel metrics and the
confusion matrix (picture and pixel counts), the object table
(:mod:`xray_seg.evaluation.objects`), the bag figures at the rule stored with the model (the
thresholds ``predict`` and an export use, with where they were calibrated) and PD at PFA
targets (:mod:`xray_seg.evaluation.alarms`), the ROC picture, and the worst misses and false
alarms, each as image | ground truth | prediction with a legend of the classes drawn
(docs/architecture.md, "evaluation"). Every value is formatted for a reader: no Python
``repr`` (dicts, lists, ``None``) reaches the page.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from xray_seg.core.fileio import write_text_atomic
from xray_seg.core.viz import display_palette, overlay, present_classes
from xray_seg.evaluation.alarms import rule_provenance

STYLE = """body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 18px}
td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}td:first-child{text-align:left}
.case{display:inline-block;margin:6px 12px 12px 0;vertical-align:top}.case img{margin-right:3px;border:1px solid #999}
.note{color:#555;font-size:90%}.swatch{display:inline-block;width:11px;height:11px;margin:0 3px 0 8px;
border:1px solid #333;vertical-align:middle}"""


def png_data_uri(array_or_path) -> str:
    """A PNG file or an RGB/label array as a ``data:image/png;base64,...`` URI."""
    if isinstance(array_or_path, (str, Path)):
        data = Path(array_or_path).read_bytes()
    else:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.asarray(array_or_path, dtype=np.uint8)).save(buf, format="PNG")
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}"


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _legend(class_names, indices) -> str:
    """Swatches of the display colours of ``indices`` (the classes drawn in one case)."""
    palette = display_palette(len(class_names))
    return "".join(
        f"<span class='swatch' style='background:rgb({r},{g},{b})'></span>{html.escape(str(class_names[i]))}"
        for i, (r, g, b) in ((i, palette[i]) for i in indices)
    )


def _cases(cases, class_names) -> str:
    """Each case as image | ground truth | prediction, drawn with :func:`~xray_seg.core.viz.overlay`."""
    if not cases:
        return "<p class='note'>none</p>"
    out = []
    for _, stem, caption, image, truth, pred in cases:
        imgs = "".join(
            f"<img alt='{alt}' title='{alt}' src='{png_data_uri(a)}'>"
            for alt, a in (
                ("image", image),
                ("ground truth", overlay(image, truth)),
                ("prediction", overlay(image, pred)),
            )
        )
        drawn = present_classes(truth, pred)
        legend = _legend(class_names, drawn) if drawn else "nothing"
        out.append(
            f"<div class='case'>{imgs}<br><b>{html.escape(stem)}</b>: {html.escape(caption)}"
            f"<br><span class='note'>image | ground truth | prediction; drawn: {legend}</span></div>"
        )
    return "".join(out)


def build_html(
    *,
    title,
    pixel_scores,
    screening,
    roc_png,
    misses,
    false_alarms,
    class_names,
    confusion_png=None,
    evaluated=None,
) -> str:
    """The whole page: pixel metrics, confusion matrix, object metrics, bag decisions, PD at
    PFA, ROC, cases. ``evaluated`` (``{"dataset", "split"}``) says which bags were scored, so
    the bag section can say whether they are the bags the thresholds were calibrated on."""
    parts = [
        (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        )
    ]
    parts += _pixel_section(pixel_scores, class_names)
    parts += _confusion_section(pixel_scores, class_names, confusion_png)
    parts += _object_section(screening["objects"])
    parts += _bag_section(screening, evaluated or {})
    parts.append(
        f"<h2>ROC</h2><img alt='ROC' src='{png_data_uri(roc_png)}'>"
        "<p class='note'>PFA on a log axis from 0.1 % to 100 %; points at PFA 0 are drawn at its left edge. "
        "The star is the stored rule's operating point (the table above).</p>"
    )
    parts.append("<h2>Worst misses</h2>" + _cases(misses, class_names))
    parts.append("<h2>Worst false alarms</h2>" + _cases(false_alarms, class_names))
    parts.append("</body></html>")
    return "\n".join(parts)


def _pixel_section(pixel_scores, class_names) -> list[str]:
    """Paper 1's pixel metrics (eqs. 4-7): mIoU, mPA, PA, then IoU and PA per class."""
    iou, pa = pixel_scores.get("iou", []), pixel_scores.get("class_pa", [])
    return [
        "<h2>Pixels (paper 1, eqs. 4-7)</h2>",
        _table(
            ["", "mIoU", "mPA", "PA"],
            [["all", _pct(pixel_scores.get("miou")), _pct(pixel_scores.get("mpa")), _pct(pixel_scores.get("pa"))]],
        ),
        _table(
            ["class", "IoU", "PA"],
            [
                [n, _pct(iou[i] if i < len(iou) else None), _pct(pa[i] if i < len(pa) else None)]
                for i, n in enumerate(class_names)
            ],
        ),
    ]


def _confusion_section(pixel_scores, class_names, confusion_png) -> list[str]:
    """The split's one confusion matrix: the row-normalised picture and the pixel counts."""
    cm = pixel_scores.get("confusion_matrix")
    if cm is None:
        return []
    parts = ["<h2>Confusion matrix (rows: truth, columns: prediction)</h2>"]
    if confusion_png is not None and Path(confusion_png).is_file():
        parts.append(f"<img alt='confusion matrix' src='{png_data_uri(confusion_png)}'>")
    rows = [[name, *(f"{int(v):,}" for v in row)] for name, row in zip(class_names, cm)]
    parts.append(_table(["truth \\ prediction (pixels)", *class_names], rows))
    return parts


def gt_source_text(source) -> str:
    """``{"SegmentationObject": 8}`` -> ``"SegmentationObject (8 images)"``."""
    if isinstance(source, dict):
        return ", ".join(f"{k} ({v} image{'s' if v != 1 else ''})" for k, v in source.items()) or "no images"
    return str(source)


def _object_section(objs) -> list[str]:
    """Object-level metrics per class (COCO matching) and false objects per image."""
    keys = ("recall50", "precision50", "ap50", "ap", "ap_small", "ap_medium", "ap_large")
    rows = [[n, r["num_gt"], r["num_det"], *(_pct(r[k]) for k in keys)] for n, r in objs["per_class"].items()]
    fp_clean = objs["fp_per_clean_image"]
    return [
        "<h2>Objects (mask AP, COCO matching)</h2>",
        _table(
            ["class", "GT", "det", "recall@0.5", "precision@0.5", "AP50", "AP", "AP small", "AP medium", "AP large"],
            rows,
        ),
        f"<p>mAP50 {_pct(objs['map50'])}, mAP {_pct(objs['map'])}; false objects per image "
        f"{objs['fp_per_image'] or 0:.2f}, per clean bag {'n/a' if fp_clean is None else f'{fp_clean:.2f}'}. "
        f"Ground truth from: {html.escape(gt_source_text(objs['gt_source']))}.</p>",
    ]


def _bag_section(screening, evaluated: dict) -> list[str]:
    """Bag decisions at the rule stored with the model (its thresholds, minimum areas and
    where they were calibrated), and PD at target PFAs with each curve's AUC."""
    bags, at, rule = screening["at_thresholds"], screening["pd_at_pfa"], screening["rule"]
    state = "calibrated" if rule["calibrated"] else "uncalibrated defaults"
    min_area = dict(zip(rule["class_names"], rule["min_area"]))
    parts = [
        f"<h2>Bags at the rule stored with the model ({state})</h2>",
        "<p>" + html.escape(rule_provenance(rule, bags["bags"], **evaluated)) + "</p>",
        _table(
            ["class", "threshold", "min area (px)", "bags with", "PD", "PFA (this class)"],
            [
                [n, f"{r['threshold']:.4f}", min_area.get(n, ""), r["bags_with"], _pct(r["pd"]), _pct(r["pfa"])]
                for n, r in bags["per_class"].items()
            ]
            + [["any threat / any alarm", "", "", bags["threat_bags"], _pct(bags["pd"]), _pct(bags["pfa"])]],
        ),
        f"<p>{bags['bags']} bags, {bags['clean_bags']} threat-free, {bags['alarmed_bags']} alarmed; "
        f"closing {rule['closing']} px.</p>",
        "<h2>PD at target PFA</h2>",
        _table(
            ["curve", "AUC", "PD @ PFA 1%", "PD @ PFA 5%", "PD @ PFA 10%"],
            [
                [n, _pct(screening["roc"][n]["auc"]), _pct(v["0.01"]), _pct(v["0.05"]), _pct(v["0.1"])]
                for n, v in at.items()
            ],
        ),
    ]
    if screening.get("note"):
        parts.append(f"<p class='note'>{html.escape(screening['note'])}</p>")
    return parts


def write_html_report(path: str | Path, **kwargs) -> Path:
    """Write :func:`build_html`'s page atomically."""
    write_text_atomic(path, build_html(**kwargs))
    return Path(path)
