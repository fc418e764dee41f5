"""Tables and figures of a model comparison (paper 1, Tables 2-3 and Fig. 7).

Each value is the mean +- standard deviation over seeds of the per-run figures in
``compare_result.json`` (:mod:`xray_seg.training.compare`). The standard deviation is the
sample one (``ddof=1``); with one seed it is undefined and printed as the mean alone.
A per-class value that is undefined in a run (the class absent from truth and
prediction, see :mod:`xray_seg.evaluation.metrics`) is left out of that class's mean, and ``n``
says how many seeds it rests on.

Outputs: ``compare.json`` and ``compare.md`` (Table 3: mIoU, mPA, PA, FPS, parameters,
GFLOPs; Table 2: per-class IoU and PA; mIoU per seed and, when both ran, CWF-DeepLabv3+
minus DeepLabv3+ seed by seed against each model's spread between seeds: paper 1's claim),
``compare_bars.png`` and ``compare_predictions.png``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from xray_seg.conversion.voc import load_label_png, read_class_names, read_split
from xray_seg.core.fileio import write_json_atomic, write_text_atomic
from xray_seg.core.images import read_image_rgb
from xray_seg.core.layouts import VocLayout
from xray_seg.core.viz import colorize, present_classes, save_grid
from xray_seg.evaluation.report import _jsonable, _md_table, _pyplot, _save_figure, _text_table, display_name
from xray_seg.inference.loader import load_for_inference
from xray_seg.inference.tta import predict_class_map

TABLE3_COLUMNS = (  # (key in a run record, header, scale for display, decimals)
    ("miou", "mIoU (%)", 100.0, 2),
    ("mpa", "mPA (%)", 100.0, 2),
    ("pa", "PA (%)", 100.0, 2),
    ("fps", "FPS", 1.0, 2),
    ("params_m", "Params (M)", 1.0, 3),
    ("gflops", "GFLOPs", 1.0, 3),
    ("pd_at_pfa5", "PD@PFA 5% (%)", 100.0, 2),  # screening columns beside Table 3 (evaluation/alarms.py)
    ("map50", "mask AP50 (%)", 100.0, 2),  # evaluation/objects.py
)

MODEL_TITLES = {
    "cwf_deeplabv3plus": "CWF-DeepLabv3+",
    "deeplabv3plus": "DeepLabv3+",
    "mobilenetv2_deeplabv3plus": "MobileNetV2-DeepLabv3+",
    "unet": "UNet",
    "bisenetv2": "BiSeNetV2",
    "cyclenet": "CycleNet",
    "ifbfnet": "IFBFNet",
}


def model_title(name: str) -> str:
    """Paper 1's spelling of a registry name (Table 3), else the name itself."""
    return MODEL_TITLES.get(name, name)


def grid_title(name: str) -> str:
    """:func:`model_title` broken before "DeepLab" so that it fits above a grid column."""
    return model_title(name).replace("-DeepLab", "-\nDeepLab")


def mean_std(values: Sequence[float | None]) -> dict:
    """``{"mean", "std", "n", "values"}`` over the defined (finite) values.

    ``std`` is the sample standard deviation (ddof=1), None below two values; ``mean``
    is None when no value is defined.
    """
    values = [float(v) if v is not None and math.isfinite(float(v)) else None for v in values]
    defined = [v for v in values if v is not None]
    mean = float(np.mean(defined)) if defined else None
    std = float(np.std(defined, ddof=1)) if len(defined) > 1 else None
    return {"mean": mean, "std": std, "n": len(defined), "values": values}


def aggregate(results: Mapping[str, Sequence[Mapping]]) -> dict:
    """Table 3 and Table 2 statistics from per-seed run records, per model.

    Returns ``{"table3": {model: {metric: mean_std}}, "table2": {model: {class: {"iou":
    mean_std, "pa": mean_std}}}, "class_names": [...]}``.
    """
    table3, table2, class_names = {}, {}, None
    for model, runs in results.items():
        if not runs:
            continue
        class_names = class_names or list(runs[0]["class_names"])
        table3[model] = {key: mean_std([r.get(key) for r in runs]) for key, *_ in TABLE3_COLUMNS}
        table2[model] = {
            name: {"iou": mean_std([r["iou"][i] for r in runs]), "pa": mean_std([r["class_pa"][i] for r in runs])}
            for i, name in enumerate(class_names)
        }
    return {"table3": table3, "table2": table2, "class_names": class_names or []}


def format_mean_std(stat: Mapping, scale: float = 100.0, decimals: int = 2) -> str:
    """``"81.64 ± 0.52"``; the mean alone for one seed; ``n/a`` when undefined."""
    if stat["mean"] is None:
        return "n/a"
    text = f"{scale * stat['mean']:.{decimals}f}"
    return text if stat["std"] is None else f"{text} ± {scale * stat['std']:.{decimals}f}"


def table3_rows(table3: Mapping) -> list[list[str]]:
    return [
        [model_title(model)] + [format_mean_std(stats[key], scale, dec) for key, _, scale, dec in TABLE3_COLUMNS]
        for model, stats in table3.items()
    ]


def table2_rows(table2: Mapping, class_names: Sequence[str], which: str) -> list[list[str]]:
    """Rows: classes; columns: models; ``which`` is ``"iou"`` or ``"pa"``."""
    return [[display_name(name)] + [format_mean_std(table2[m][name][which]) for m in table2] for name in class_names]


def markdown_report(protocol: Mapping, stats: Mapping) -> str:
    """``compare.md``: protocol summary, Table 3, Table 2 (IoU and PA), figures."""
    seeds = protocol["seeds"]
    cfg = protocol["train_config"]
    data = protocol["dataset"]
    models = list(stats["table3"])
    overrides = "".join(f", `{o}`" for o in protocol["overrides"])
    lines = [
        "# Model comparison (paper 1 protocol, sec. 4.3)",
        "",
        f"Dataset `{data['voc_dir']}`: {data['train_images']} train / {data['val_images']} val images, "
        f"{len(data['class_names'])} classes. Every model trained from scratch with the same config "
        f"(preset `{protocol['preset']}`{overrides}): "
        f"{cfg['epochs']} epochs, {cfg['data']['image_size'][0]}x{cfg['data']['image_size'][1]} input, "
        f"batch {cfg['data']['batch_size']} per replica, {cfg['optim']['optimizer']} lr {cfg['optim']['lr']} "
        f"({cfg['optim']['schedule']}), width {cfg['model']['width']}, augmentation "
        f"{'on' if cfg['data']['augment']['enabled'] else 'off'}; seeds {', '.join(map(str, seeds))}.",
        "",
        f"Values are mean ± sample std over {len(seeds)} seed(s) (one seed: the value alone). "
        f"Model selection: {protocol['model_selection']}. FPS: {protocol['fps']}.",
        "",
        "## Table 3: overall metrics on val",
        "",
    ]
    lines += _md_table(["Network"] + [header for _, header, *_ in TABLE3_COLUMNS], table3_rows(stats["table3"]))
    for which, title in (("iou", "IoU (%)"), ("pa", "PA (%)")):
        lines += ["", f"## Table 2: per-class {title} on val", ""]
        lines += _md_table(
            ["Category"] + [model_title(m) for m in models], table2_rows(stats["table2"], stats["class_names"], which)
        )
    lines += [
        "",
        "n/a: undefined in every seed (IoU: the class is absent from truth and prediction; PA: absent from the "
        "truth); undefined values are left out of the means. GFLOPs = 2 x multiply-accumulates of one "
        "forward pass at the protocol's input size (xray_seg.evaluation.flops); Params in millions. "
        "PD@PFA 5%: bags detected at a threshold letting at most 5 % of threat-free val bags alarm (n/a without "
        "threat-free bags); mask AP50: COCO-style object AP at IoU 0.5 (evaluate's screening.json).",
        "",
        "![mIoU and mPA per model](compare_bars.png)",
        "",
        "![predictions on val images (paper 1 Fig. 7)](compare_predictions.png)",
    ]
    return "\n".join(lines) + "\n"


CLAIM_PAIR = ("cwf_deeplabv3plus", "deeplabv3plus")  # paper 1's claim: CWF-DeepLabv3+ beats DeepLabv3+


def per_seed_miou(results: Mapping[str, Sequence[Mapping]]) -> dict:
    """``{model: {seed: mIoU}}`` from the run records (seed as recorded, not list position)."""
    return {model: {int(r["seed"]): r["miou"] for r in runs if "seed" in r} for model, runs in results.items()}


def paired_difference(results: Mapping[str, Sequence[Mapping]], pair: Sequence[str] = CLAIM_PAIR) -> dict | None:
    """mIoU of ``pair[0]`` minus ``pair[1]`` seed by seed (same seed: same initialisation seed and
    data stream), its mean and sample std, and each model's own seed-to-seed std; None unless
    both models ran a common seed."""
    first, second = pair
    by_seed = per_seed_miou(results)
    if first not in by_seed or second not in by_seed:
        return None
    seeds = sorted(set(by_seed[first]) & set(by_seed[second]))
    diffs = [by_seed[first][s] - by_seed[second][s] for s in seeds]
    if not diffs or any(d is None or not math.isfinite(d) for d in diffs):
        return None
    stat = mean_std(diffs)
    spread = {m: mean_std([by_seed[m][s] for s in seeds])["std"] for m in pair}
    sign = (
        "ahead in every seed"
        if all(d > 0 for d in diffs)
        else "behind in every seed"
        if all(d < 0 for d in diffs)
        else "ahead in some seeds and behind in others"
    )
    return {
        "models": list(pair),
        "seeds": seeds,
        "per_seed": diffs,
        "mean": stat["mean"],
        "std": stat["std"],
        "seed_std": spread,
        "sign": sign,
    }


def seed_section(results: Mapping[str, Sequence[Mapping]]) -> str:
    """``compare.md``'s per-seed mIoU table and, with both models of paper 1's claim, their
    seed-by-seed difference against each model's spread between seeds."""
    by_seed = per_seed_miou(results)
    seeds = sorted({s for runs in by_seed.values() for s in runs})
    header = ["Network"] + [f"seed {s}" for s in seeds] + ["mean", "std"]
    rows = []
    for model, values in by_seed.items():
        stat = mean_std([values.get(s) for s in seeds])
        cells = [f"{100 * values[s]:.2f}" if values.get(s) is not None else "-" for s in seeds]
        std = "-" if stat["std"] is None else f"{100 * stat['std']:.2f}"
        mean = "n/a" if stat["mean"] is None else f"{100 * stat['mean']:.2f}"
        rows.append([model_title(model), *cells, mean, std])
    lines = ["", "## mIoU (%) per seed on val", ""] + _md_table(header, rows)
    diff = paired_difference(results)
    if diff is not None:
        first, second = (model_title(m) for m in diff["models"])
        per = ", ".join(f"{100 * d:+.2f}" for d in diff["per_seed"])
        spread = ", ".join(
            f"{model_title(m)} {'n/a' if v is None else f'{100 * v:.2f}'}" for m, v in diff["seed_std"].items()
        )
        lines += [
            "",
            f"{first} minus {second}: {100 * diff['mean']:+.2f} pp mIoU on average over seeds "
            f"{', '.join(map(str, diff['seeds']))} (per seed {per}); {first} is {diff['sign']}. "
            f"Seed-to-seed std of mIoU: {spread} pp. With this few seeds, a difference smaller than that "
            "spread is not evidence either way.",
        ]
    return "\n".join(lines) + "\n"


def plot_bars(path: str | Path, table3: Mapping) -> Path:
    """Grouped bars of mIoU and mPA (%) per model with std error bars."""
    plt = _pyplot()
    models = list(table3)
    x = np.arange(len(models))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.5 * len(models) + 1.5), 4.0))
    for offset, key, label in ((-0.2, "miou", "mIoU"), (0.2, "mpa", "mPA")):
        means = [100 * (table3[m][key]["mean"] or 0.0) for m in models]
        errors = [100 * (table3[m][key]["std"] or 0.0) for m in models]
        bars = ax.bar(x + offset, means, width=0.4, yerr=errors, capsize=4, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    n = max(s["miou"]["n"] for s in table3.values())
    ax.set_xticks(x, [model_title(m) for m in models], rotation=20, ha="right")
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.set_title(f"val mIoU and mPA (mean ± std over {n} seed(s))")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _save_figure(fig, path)


def choose_grid_stems(voc_dir: str | Path, count: int) -> list[str]:
    """Val images with the most distinct object classes first (paper 1 picks multi-object,
    hard cases for Fig. 7); ties keep the split order."""
    layout = VocLayout(voc_dir)
    stems = read_split(voc_dir, "val")

    def classes_in(stem):
        labels = np.unique(load_label_png(layout.mask_path(stem)))
        return int(np.sum((labels > 0) & (labels < 255)))

    return sorted(stems, key=lambda s: -classes_in(s))[:count]


def plot_prediction_grid(path: str | Path, voc_dir: str | Path, run_dirs: Mapping[str, Path], count: int) -> Path:
    """Paper 1 Fig. 7: rows are val images; columns the input, the ground truth and each
    model's prediction (its seed-0 run), in the display colours with a legend of the classes drawn."""
    import keras

    layout = VocLayout(voc_dir)
    stems = choose_grid_stems(voc_dir, count)
    images = [read_image_rgb(layout.image_path(s)) for s in stems]
    maps = [load_label_png(layout.mask_path(s)) for s in stems]
    rows = [[image, colorize(truth)] for image, truth in zip(images, maps)]
    for run_dir in run_dirs.values():
        loaded = load_for_inference(run_dir)
        for row, image in zip(rows, images):
            maps.append(predict_class_map(loaded.logits_fn, image, input_size=loaded.input_size))
            row.append(colorize(maps[-1]))
        del loaded
        keras.backend.clear_session()

    return save_grid(
        path,
        rows,
        col_titles=["input", "ground truth"] + [grid_title(m) for m in run_dirs],
        row_titles=stems,
        class_names=read_class_names(voc_dir),
        legend=present_classes(*maps),
        title="val predictions (seed 0)",
        cell_inches=2.0,
    )


def write_comparison(
    out_dir: str | Path,
    protocol: Mapping,
    results: Mapping[str, Sequence[Mapping]],
    grid_runs: Mapping[str, Path],
    *,
    grid_images: int = 4,
) -> dict:
    """Write compare.json, compare.md, compare_bars.png and compare_predictions.png; print Table 3."""
    out = Path(out_dir)
    stats = aggregate(results)
    document = {**stats, "protocol": dict(protocol), "runs": [r for runs in results.values() for r in runs]}
    document["per_seed_miou"] = per_seed_miou(results)
    document["claim_difference"] = paired_difference(results)
    write_json_atomic(out / "compare.json", _jsonable(document))
    write_text_atomic(out / "compare.md", markdown_report(protocol, stats) + seed_section(results))
    plot_bars(out / "compare_bars.png", stats["table3"])
    if grid_images > 0:
        plot_prediction_grid(out / "compare_predictions.png", protocol["dataset"]["voc_dir"], grid_runs, grid_images)

    print("\n".join(_text_table(["Network"] + [h for _, h, *_ in TABLE3_COLUMNS], table3_rows(stats["table3"]))))
    print(
        f"wrote {out}/compare.md, compare.json, compare_bars.png"
        + (", compare_predictions.png" if grid_images > 0 else "")
    )
    return document
