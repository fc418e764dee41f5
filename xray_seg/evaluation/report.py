"""Evaluation reports: paper-1 style tables, Markdown, JSON, confusion-matrix and curve PNGs.

``scores`` is the dict of :func:`xray_seg.evaluation.metrics.segmentation_scores` (fractions in
0..1, NaN where undefined). Tables print percentages with two decimals, as paper 1's
Table 2 (per-class IoU and PA) and Table 3 (mIoU, mPA, FPS; we add the overall PA);
undefined values (a class absent from truth and prediction) print as ``n/a`` and are
written to JSON as ``null``. Every file is written atomically (``xray_seg.core.fileio``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from xray_seg.core.errors import XraySegError
from xray_seg.core.fileio import atomic_path, write_json_atomic, write_text_atomic


def display_name(name: str) -> str:
    """``"_background_"`` -> ``"Background"``, ``"gun"`` -> ``"Gun"`` (paper 1's table style)."""
    text = str(name).strip("_").replace("_", " ")
    return text[:1].upper() + text[1:] if text else str(name)


def _pct(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100.0 * float(value):.2f}"


def _fps(fps) -> str:
    return "-" if fps is None else f"{float(fps):.2f}"


def _names(scores: Mapping, class_names: Sequence[str] | None) -> list[str]:
    names = list(class_names) if class_names is not None else list(scores["class_names"])
    if len(names) != len(scores["iou"]):
        raise ValueError(f"{len(names)} class names for scores of {len(scores['iou'])} classes")
    return names


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))
    )
    return [fmt(header), "  ".join("-" * w for w in widths), *[fmt(r) for r in rows]]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|",
        *["| " + " | ".join(str(c) for c in r) + " |" for r in rows],
    ]


def _per_class_rows(scores, names):
    return [[display_name(n), _pct(iou), _pct(pa)] for n, iou, pa in zip(names, scores["iou"], scores["class_pa"])]


def format_paper_tables(scores: Mapping, class_names: Sequence[str] | None = None, fps: float | None = None) -> str:
    """Paper 1's Table 2 (per-class IoU/PA) and Table 3 (mIoU, mPA, PA, FPS) as plain text."""
    names = _names(scores, class_names)
    lines = ["Per-class IoU and PA (paper 1, Table 2)"]
    lines += _text_table(["Category", "IoU(%)", "PA(%)"], _per_class_rows(scores, names))
    lines += ["", "Overall (paper 1, Table 3)"]
    lines += _text_table(
        ["", "mIoU(%)", "mPA(%)", "PA(%)", "FPS"],
        [["", _pct(scores["miou"]), _pct(scores["mpa"]), _pct(scores["pa"]), _fps(fps)]],
    )
    absent = [display_name(n) for n, iou in zip(names, scores["iou"]) if _is_nan(iou)]
    if absent:
        lines += ["", f"n/a: absent from truth and prediction, excluded from means: {', '.join(absent)}"]
    return "\n".join(lines) + "\n"


def _is_nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def write_markdown_report(
    path: str | Path,
    scores: Mapping,
    class_names: Sequence[str] | None,
    *,
    model_name: str,
    split: str,
    fps: float | None = None,
    extra: Mapping | None = None,
) -> Path:
    """Write a Markdown evaluation report (tables, absent-class note, confusion matrix, extras)."""
    names = _names(scores, class_names)
    lines = [f"# Evaluation of {model_name} on `{split}`", ""]
    lines += ["## Overall (paper 1, Table 3)", ""]
    lines += _md_table(
        ["mIoU (%)", "mPA (%)", "PA (%)", "FPS"],
        [[_pct(scores["miou"]), _pct(scores["mpa"]), _pct(scores["pa"]), _fps(fps)]],
    )
    lines += ["", "## Per class (paper 1, Table 2)", ""]
    rows = [
        r + [str(g), str(p)]
        for r, g, p in zip(_per_class_rows(scores, names), scores["gt_pixels"], scores["pred_pixels"])
    ]
    lines += _md_table(["Category", "IoU (%)", "PA (%)", "true pixels", "predicted pixels"], rows)
    lines += [
        "",
        f"{scores.get('total_pixels', sum(scores['gt_pixels']))} labelled pixels (ignore label 255 excluded). "
        "PA (eq. 4) is overall pixel accuracy; per-class PA is recall; mPA (eq. 5) and mIoU (eq. 7) "
        "are means over classes. " + str(scores.get("absent_class_policy", "")),
    ]
    if "confusion_matrix" in scores and len(names) <= 16:
        lines += ["", "## Confusion matrix (rows: truth, columns: prediction, pixels)", ""]
        header = ["truth \\ pred"] + [display_name(n) for n in names]
        lines += _md_table(
            header, [[display_name(n)] + [str(v) for v in row] for n, row in zip(names, scores["confusion_matrix"])]
        )
    if extra:
        lines += ["", "## Details", ""]
        lines += _md_table(["key", "value"], [[str(k).replace("_", " "), plain_text(v)] for k, v in extra.items()])
    write_text_atomic(path, "\n".join(lines) + "\n")
    return Path(path)


def plain_text(value) -> str:
    """A value as a reader writes it, not as Python prints it: ``None`` -> "none", booleans ->
    "yes"/"no", lists -> "1.0, 0.75", mappings -> "tile: 64x64; scale: 1" (a pair of
    integers under a size-like key -> "64x64"), floats with up to 4 significant digits."""
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, Mapping):
        return "; ".join(f"{str(k).replace('_', ' ')}: {_plain_item(k, v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(plain_text(v) for v in value) or "none"
    return str(value)


def _plain_item(key, value) -> str:
    pair = isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value)
    if pair and any(word in str(key) for word in ("size", "tile", "window", "stride", "step")):
        return f"{value[0]}x{value[1]}"
    return plain_text(value)


def _jsonable(value):
    """Plain JSON values: numpy -> Python, NaN/inf -> None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_metrics_json(path: str | Path, scores: Mapping, class_names: Sequence[str] | None = None, **extra) -> Path:
    """Write the scores as JSON: every field of ``scores`` plus ``per_class`` keyed by class name
    (``iou``, ``pa``, ``gt_pixels``, ``pred_pixels``) and the ``extra`` keywords. NaN -> null."""
    names = _names(scores, class_names)
    doc = dict(scores)
    doc["class_names"] = names
    doc["per_class"] = {
        n: {"iou": iou, "pa": pa, "gt_pixels": g, "pred_pixels": p}
        for n, iou, pa, g, p in zip(
            names, scores["iou"], scores["class_pa"], scores["gt_pixels"], scores["pred_pixels"]
        )
    }
    doc.update(extra)
    write_json_atomic(path, _jsonable(doc))
    return Path(path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: str | Path) -> Path:
    plt = _pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def plot_confusion_matrix(path: str | Path, cm, class_names: Sequence[str], normalize: str | None = "true") -> Path:
    """Confusion-matrix PNG with the value in every cell.

    Args:
        normalize: ``"true"`` divides each row by its truth pixels (the diagonal is the
            per-class PA), ``"pred"`` each column, ``"all"`` by the total, None shows counts.
            Rows/columns without pixels show ``-``.
    """
    cm = np.asarray(cm, dtype=np.float64)
    names = [display_name(n) for n in class_names]
    if cm.shape != (len(names), len(names)):
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(names)} class names")
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            shown = cm / cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            shown = cm / cm.sum(axis=0, keepdims=True)
        elif normalize == "all":
            shown = cm / cm.sum()
        elif normalize is None:
            shown = cm
        else:
            raise ValueError(f"normalize must be 'true', 'pred', 'all' or None, got {normalize!r}")
    plt = _pyplot()
    k = len(names)
    side = max(4.0, 0.7 * k + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(np.nan_to_num(shown, nan=0.0), cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    finite = shown[np.isfinite(shown)]
    top = finite.max() if finite.size else 1.0
    for i in range(k):
        for j in range(k):
            v = shown[i, j]
            text = "-" if not np.isfinite(v) else (f"{v:.2f}" if normalize else f"{int(v)}")
            dark = np.isfinite(v) and v > 0.5 * (1.0 if normalize else top)
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    label = {"true": "row-normalised (recall)", "pred": "column-normalised (precision)", "all": "fraction of pixels"}
    ax.set_title(f"Confusion matrix, {label.get(normalize, 'pixel counts')}")
    return _save_figure(fig, path)


def read_history_csv(history_csv: str | Path) -> dict[str, np.ndarray]:
    """Numeric columns of a Keras ``CSVLogger`` file (non-numeric columns dropped; blanks -> NaN)."""
    history_csv = Path(history_csv)
    if not history_csv.is_file():
        raise XraySegError("training history not found", path=history_csv, fix="point at the run's history.csv")
    with history_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns: dict[str, np.ndarray] = {}
    for key in rows[0].keys() if rows else []:
        values = []
        for row in rows:
            cell = (row.get(key) or "").strip()
            try:
                values.append(float(cell) if cell else math.nan)
            except ValueError:
                break
        else:
            columns[key] = np.asarray(values, dtype=np.float64)
    if not [k for k in columns if k != "epoch"]:
        raise XraySegError(
            "training history has no numeric columns", path=history_csv, fix="train for at least one epoch first"
        )
    return columns


_LR_KEYS = ("lr", "learning_rate")
_SUMMARY_METRICS = {"val_miou": "val mIoU", "val_mpa": "val mPA", "val_pa": "val PA", "miou": "train mIoU"}


def _is_throughput(key: str) -> bool:
    return key == "epoch_seconds" or key.endswith("_per_sec")


def _curve_label(key: str) -> str:
    """``val_miou`` -> ``val mIoU``, ``val_iou_gun`` -> ``IoU Gun``, ``loss`` -> ``train loss``."""
    if key in _SUMMARY_METRICS:
        return _SUMMARY_METRICS[key]
    if key.startswith("val_iou_"):
        return f"IoU {display_name(key[len('val_iou_') :])}"
    if "loss" in key and not key.startswith("val_"):
        return f"train {key.replace('_', ' ')}"
    return key.replace("_", " ")


def _training_panels(columns: Mapping[str, np.ndarray]) -> dict[str, list[str]]:
    """Column names per panel: loss, metrics (val mIoU first, then the other summary
    metrics, then per-class IoU), learning rate and throughput (images/s only)."""
    lr = [k for k in columns if k in _LR_KEYS]
    loss = [k for k in columns if "loss" in k and k not in lr]
    per_class = [k for k in columns if k.startswith("val_iou_")]
    summary = sorted((k for k in columns if k in _SUMMARY_METRICS), key=list(_SUMMARY_METRICS).index)
    other = [k for k in columns if k not in {*lr, *loss, *per_class, *summary} and not _is_throughput(k)]
    throughput = [k for k in columns if k.endswith("_per_sec")]
    return {"loss": loss, "metrics": summary + other + per_class, "learning rate": lr, "throughput": throughput}


def _plot_joined(ax, x, y, label: str, **style) -> None:
    """Plot the finite points of ``y`` joined by one line across NaN gaps (validation runs
    every few epochs; NaN in between); a column without finite values is skipped."""
    keep = np.isfinite(y)
    if keep.any():
        ax.plot(x[keep], y[keep], label=label, **style)


def _draw_curves(ax, x, columns, keys, title: str, ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    many = len(x) >= 30
    for key in keys:
        if key == "val_miou":
            style = {"color": "black", "linewidth": 2.2, "marker": "o", "markersize": 5, "zorder": 3}
        elif key in _SUMMARY_METRICS:
            style = {"linestyle": "--", "linewidth": 1.2, "marker": "s", "markersize": 3}
        else:
            style = {"linewidth": 1.2, "marker": None if many and title != "metrics" else "o", "markersize": 3}
        _plot_joined(ax, x, columns[key], _curve_label(key), **style)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_xlim(float(x.min()) - 0.5, float(x.max()) + 0.5)  # every panel spans all epochs
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def training_curves_figure(history_csv: str | Path):
    """The matplotlib figure of :func:`plot_training_curves` (axes titled ``loss``,
    ``metrics``, ``learning rate``, ``throughput``; the panels without columns left out)."""
    columns = read_history_csv(history_csv)
    epochs = columns.pop("epoch", None)
    n = len(next(iter(columns.values())))
    if epochs is None:
        x = np.arange(1, n + 1, dtype=np.float64)
    else:  # epochs count from 1 (from 0 in histories written before issue 29)
        x = epochs + 1 if epochs.size and epochs[0] == 0 else epochs
    panels = _training_panels(columns)
    big = [t for t in ("loss", "metrics") if panels[t]]
    small = [t for t in ("learning rate", "throughput") if panels[t]]
    plt = _pyplot()
    fig = plt.figure(figsize=(13.0, 6.5 if small else 4.5), layout="constrained")
    grid = fig.add_gridspec(2 if small else 1, 2, height_ratios=[3, 1] if small else [1])
    labels = {"loss": "loss", "metrics": "IoU / accuracy (0..1)", "learning rate": "lr", "throughput": "images/s"}
    for row, titles in enumerate([big, small] if small else [big]):
        for col, title in enumerate(titles):
            span = slice(None) if len(titles) == 1 else col
            ax = fig.add_subplot(grid[row, span])
            _draw_curves(ax, x, columns, panels[title], title, labels[title])
            if title == "metrics":
                ax.set_ylim(-0.02, 1.02)
                ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
            elif title == "learning rate":
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            elif ax.lines:
                ax.legend(fontsize=8)
    history_csv = Path(history_csv)
    fig.suptitle(f"training curves: {history_csv.parent.name}/{history_csv.name}")
    return fig


def plot_training_curves(path: str | Path, history_csv: str | Path) -> Path:
    """Training curves PNG from the trainer's ``history.csv`` (a Keras ``CSVLogger`` file).

    Two large panels: the losses (train, and val where logged), and the metrics: val mIoU
    (bold), the other summary metrics (dashed) and the per-class IoU (``val_iou_<name>``).
    Validation runs every ``val_every`` epochs, with NaN in between, so each curve joins
    its finite points across the gaps. Two small panels below: the learning rate and the
    training throughput (images/s; ``epoch_seconds`` is not drawn).
    """
    return _save_figure(training_curves_figure(history_csv), path)
