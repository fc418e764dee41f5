"""The main job on the embedded synthetic dataset: ``xray-seg demo`` / ``./scripts/demo.sh``.

Steps, each timed and printed:

1. synthesise a Labelme dataset of dual-energy X-ray bags (:mod:`xray_seg.synthesis.scene`);
2. convert it to VOC (:mod:`xray_seg.conversion.convert`) and draw a few converted samples;
3. train CWF-DeepLabv3+ with the ``demo_cpu`` preset (:mod:`xray_seg.training.trainer`);
4. calibrate the alarm thresholds on val for PFA 5 % when val has threat-free bags
   (:mod:`xray_seg.evaluation.calibration`);
5. evaluate on val with paper 1's metrics and the screening figures, PD at PFA 5 %
   (:mod:`xray_seg.evaluation.evaluator`), the bags at the calibrated rule, so ``report.html``
   shows the thresholds the export carries; then export the SavedModel for stations
   (:mod:`xray_seg.serving.exporter`);
6. predict a few val images from the exported SavedModel (:mod:`xray_seg.inference.prediction_files`).

Everything goes under one folder (default ``runs/demo``), which the demo owns and
replaces on every run. Every option is checked before the disk is touched. The folder is
replaced only if the demo made it (its ``.xray-seg-output`` marker names the demo) or
``force`` is given for another xray-seg output; a folder of the user's own files is never
deleted (docs/architecture.md, "Data safety").
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

NO_CLEAN_VAL = (
    "val has no threat-free bags (give --clean-val-bags N or --threat-prob below 1), so PFA cannot be estimated"
)


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    num_images: int = 600
    image_size: int = 256
    seed: int = 0
    # The demo's bags are PIDray's "easy" end: every bag holds a threat, light clutter, no
    # threat hidden under a laptop or clothes, no small threats. `xray-seg synth` defaults
    # are harder (15 % empty bags, medium clutter, a third hidden, one in eight small).
    threat_prob: float = 1.0
    # Threat-free bags added to val only (images num_images.. of the same seed), so val
    # measures the false-alarm rate and the demo calibrates the alarm for PFA 5 %. They are
    # never trained on, and the num_images threat bags keep the split they had without
    # them (convert's val_stems). Why not train on clean bags instead (--threat-prob 0.85):
    # docs/screening.md, "The demo with clean bags, measured".
    clean_val_bags: int = 100
    clutter: str = "low"
    hide_prob: float = 0.0
    small_threat_prob: float = 0.0
    preset: str = "demo_cpu"
    overrides: list = field(default_factory=list)  # extra --set items for training
    predict_images: int = 4
    force: bool = False  # replace an xray-seg output folder that another command made


def demo_synth_config(cfg: DemoConfig):
    """The synthetic data the demo makes: its size, count, seed and bag difficulty."""
    from xray_seg.synthesis.scene import SynthConfig

    return SynthConfig(
        size=cfg.image_size,
        num=cfg.num_images,
        seed=cfg.seed,
        threat_prob=cfg.threat_prob,
        clutter=cfg.clutter,
        hide_prob=cfg.hide_prob,
        small_threat_prob=cfg.small_threat_prob,
    )


def demo_training_config(cfg: DemoConfig, voc_dir):
    """The training config of the demo (preset, seed, overrides), validated."""
    from xray_seg.core.config import load_config
    from xray_seg.training.config import TrainConfig
    from xray_seg.training.config_checks import validate_train_config

    train_cfg = load_config(TrainConfig, cfg.preset, [f"data.voc_dir={voc_dir}", f"seed={cfg.seed}", *cfg.overrides])
    validate_train_config(train_cfg)
    return train_cfg


def check_demo_config(cfg: DemoConfig) -> None:
    """ConfigError for any bad option, before anything is written or deleted."""
    from xray_seg.conversion.splits import split_stems
    from xray_seg.core.errors import ConfigError

    demo_synth_config(cfg).validate()
    if not isinstance(cfg.clean_val_bags, int) or cfg.clean_val_bags < 0:
        raise ConfigError(
            f"--clean-val-bags {cfg.clean_val_bags} must be a whole number >= 0", fix="e.g. 100, or 0 for none"
        )
    if cfg.num_images < 2:
        raise ConfigError(f"--num-images {cfg.num_images} leaves no train/val split", fix="use e.g. --num-images 600")
    train_cfg = demo_training_config(cfg, Path(cfg.out) / "voc")
    n_train = len(split_stems([str(i) for i in range(cfg.num_images)], 0.3, cfg.seed)[0])
    if n_train < train_cfg.data.batch_size:
        raise ConfigError(
            f"--num-images {cfg.num_images} gives {n_train} training images, fewer than one batch ({train_cfg.data.batch_size})",
            fix="raise --num-images or lower the batch size with --set data.batch_size=N",
        )


def _replace_demo_folder(out: Path, force: bool) -> None:
    """Delete ``out`` if the demo made it (or ``force`` and xray-seg made it); refuse a foreign one."""
    from xray_seg.core.errors import OutputExistsError
    from xray_seg.core.fileio import OUTPUT_MARKER, has_marker, marker_owner

    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if out.is_dir() and has_marker(out) and (marker_owner(out) == "demo" or force):
        shutil.rmtree(out)
        return
    if out.is_dir() and has_marker(out):
        raise OutputExistsError(
            f"the folder is an output of `xray-seg {marker_owner(out)}`, not of the demo",
            path=out,
            fix="choose another --out, or pass --force to replace it",
        )
    raise OutputExistsError(
        f"the folder exists and the demo did not make it (no {OUTPUT_MARKER} marker); it is never deleted",
        path=out,
        fix="choose another --out, or move or delete the folder yourself",
    )


def _step(title: str):
    print(f"\n=== {title} ===", flush=True)
    return time.perf_counter()


def preview_converted(voc_dir: Path, path: Path, count: int = 6) -> Path:
    """A grid of converted images beside their class maps and outlined overlays, to check the
    conversion by eye; the legend lists the classes drawn."""
    from xray_seg.conversion.voc import load_label_png, read_class_names, read_split
    from xray_seg.core.images import read_image_rgb
    from xray_seg.core.layouts import VocLayout
    from xray_seg.core.viz import colorize, overlay, present_classes, save_grid

    layout = VocLayout(voc_dir)
    rows, masks, stems = [], [], read_split(voc_dir, "train")[:count]
    for stem in stems:
        image = read_image_rgb(layout.image_path(stem))
        mask = load_label_png(layout.mask_path(stem))
        rows.append([image, colorize(mask), overlay(image, mask)])
        masks.append(mask)
    return save_grid(
        path,
        rows,
        col_titles=["image", "SegmentationClass (class map)", "overlay"],
        row_titles=stems,
        class_names=read_class_names(voc_dir),
        legend=present_classes(*masks),
        title="converted VOC samples",
    )


def _pd_at_pfa5(evaluation) -> tuple[float | None, str | None]:
    """PD at PFA 5 % of an evaluation (overall ROC), or None and why it cannot be estimated."""
    screening = evaluation.extra["screening"]
    if not screening["at_thresholds"]["clean_bags"]:
        return None, NO_CLEAN_VAL
    return screening["pd_at_pfa"]["overall"]["0.05"], None


def synthesize_demo_bags(cfg: DemoConfig, labelme_dir: Path) -> list[str]:
    """The demo's Labelme folder: ``num_images`` bags of ``cfg``'s difficulty, then the
    ``clean_val_bags`` threat-free ones (images ``num_images``.. of the same seed, their
    settings in ``synth_config_clean_val.yaml``); returns the stems of the threat-free ones."""
    from dataclasses import replace

    from xray_seg.core.config import save_config
    from xray_seg.synthesis.scene import sample_stem, synthesize, write_samples

    synth_cfg = demo_synth_config(cfg)
    synthesize(labelme_dir, synth_cfg)
    if not cfg.clean_val_bags:
        return []
    indices = range(cfg.num_images, cfg.num_images + cfg.clean_val_bags)
    clean_cfg = replace(synth_cfg, threat_prob=0.0, num=cfg.clean_val_bags)
    save_config(clean_cfg, labelme_dir / "synth_config_clean_val.yaml")
    write_samples(labelme_dir, clean_cfg, indices)
    return [sample_stem(i, clean_cfg.style) for i in indices]


def _synthesise_and_convert(cfg: DemoConfig, out: Path, times: dict) -> Path:
    """Steps 1-2: synthesise the Labelme bags, convert them to VOC; returns the preview PNG."""
    from xray_seg.conversion.convert import ConvertConfig, convert

    labelme_dir, voc_dir = out / "labelme", out / "voc"
    clean = f" + {cfg.clean_val_bags} threat-free bags for val" if cfg.clean_val_bags else ""
    t = _step(f"1/6 synthesise {cfg.num_images} X-ray bags{clean} ({cfg.image_size}x{cfg.image_size})")
    clean_stems = synthesize_demo_bags(cfg, labelme_dir)
    times["synth"] = time.perf_counter() - t

    t = _step("2/6 convert Labelme -> VOC" + (" (the threat-free bags to val only)" if clean_stems else ""))
    report = convert(
        labelme_dir,
        voc_dir,
        ConvertConfig(labels=str(labelme_dir / "labels.txt"), seed=cfg.seed, val_stems=clean_stems or None),
    )
    print(report.summary())
    preview = preview_converted(voc_dir, out / "converted_samples.png")
    times["convert"] = time.perf_counter() - t
    return preview


def _train_and_time_pipeline(cfg: DemoConfig, voc_dir: Path, run_dir: Path, times: dict):
    """Step 3: train with the preset, then time the input pipeline alone; returns (result, images/s)."""
    from xray_seg.training.trainer import pipeline_images_per_sec, train

    t = _step(f"3/6 train CWF-DeepLabv3+ (preset {cfg.preset})")
    train_cfg = demo_training_config(cfg, voc_dir)
    result = train(train_cfg, run_dir)
    times["train"] = time.perf_counter() - t
    t = time.perf_counter()
    pipeline_rate = pipeline_images_per_sec(train_cfg)
    times["pipeline"] = time.perf_counter() - t
    print(
        f"input pipeline alone: {pipeline_rate:.0f} images/s, {pipeline_rate / result.train_images_per_sec:.1f}x "
        f"the {result.train_images_per_sec:.1f} images/s training consumed"
    )
    return result, pipeline_rate


def _calibrate(voc_dir: Path, run_dir: Path) -> dict | None:
    """Step 4: thresholds for PFA 5 % on val into ``RUN/alarm_thresholds.json``, which the
    evaluation (step 5) and the export then use; None (defaults kept) when val has no clean bag."""
    from xray_seg.evaluation.calibration import summary_lines, threat_free_bags
    from xray_seg.serving.recalibrate import calibrate_model

    if not threat_free_bags(voc_dir, "val"):
        print(f"not calibrated: {NO_CLEAN_VAL}; the export keeps the default thresholds")
        return None
    calibrated = calibrate_model(run_dir, voc_dir, split="val", target_pfa=0.05)
    print("\n".join(summary_lines(calibrated)))
    return calibrated.rule.calibration


def _calibrate_evaluate_export_predict(cfg: DemoConfig, out: Path, times: dict):
    """Steps 4-6: calibrate on val, evaluate on val at that rule (so the report shows the
    thresholds the export carries), export, predict; returns (evaluation, calibration or None)."""
    from xray_seg.conversion.voc import read_split
    from xray_seg.core.layouts import ExportLayout, RunLayout, VocLayout
    from xray_seg.evaluation.evaluator import evaluate
    from xray_seg.inference.prediction_files import predict_images
    from xray_seg.serving.exporter import export_model

    voc_dir, run_dir = out / "voc", out / "run"
    t = _step("4/6 calibrate the alarm thresholds on val for PFA 5%")
    calibration = _calibrate(voc_dir, run_dir)
    times["calibrate"] = time.perf_counter() - t

    t = _step("5/6 evaluate on val (paper 1 metrics, bags at the calibrated rule), export SavedModel for stations")
    evaluation = evaluate(run_dir, voc_dir, split="val", out_dir=RunLayout(run_dir).eval_dir("val"))
    times["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    export_dir = out / "export"
    export_model(run_dir, export_dir, formats=("savedmodel",))
    times["export"] = time.perf_counter() - t

    t = _step("6/6 predict val images with the exported SavedModel")
    layout = VocLayout(voc_dir)
    images = [str(layout.image_path(s)) for s in read_split(voc_dir, "val")[: cfg.predict_images]]
    predict_images(ExportLayout(export_dir).savedmodel_dir, images, out / "predictions")
    times["predict"] = time.perf_counter() - t
    return evaluation, calibration


def _print_summary(out: Path, evaluation, cal, result, pipeline_rate: float, times: dict, preview: Path) -> None:
    pd5, clean_note = _pd_at_pfa5(evaluation)
    print("\n=== demo finished ===")
    print(
        f"val mIoU {evaluation.scores['miou']:.4f}  mPA {evaluation.scores['mpa']:.4f}  PA {evaluation.scores['pa']:.4f}  "
        + (f"PD at PFA 5% {pd5:.4f}" if pd5 is not None else f"PD at PFA 5%: n/a ({clean_note})")
    )
    if cal:
        print(
            f"  (PD at PFA 5% sweeps one threshold for all classes; the per-class thresholds calibrated for PFA 5% "
            f"give PD {cal['pd']:.4f} at PFA {cal['pfa']:.4f} on the {cal['bags']} val bags they were chosen on)"
        )
    print(
        f"training throughput {result.train_images_per_sec:.1f} images/s, input pipeline {pipeline_rate:.0f} images/s; "
        f"best epoch {result.best_epoch}"
    )
    print("times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    run_dir = out / "run"
    for what, where in [
        ("synthetic Labelme data + contact sheet", out / "labelme"),
        ("VOC dataset", out / "voc"),
        ("converted samples", preview),
        ("run folder (checkpoints, history.csv, training_curves.png, logs/)", run_dir),
        ("evaluation report (tables, confusion matrix, ROC, worst cases)", run_dir / "eval-val" / "report.html"),
        ("exported SavedModel", out / "export" / "savedmodel"),
        ("predictions (masks, overlays, item lists)", out / "predictions"),
    ]:
        print(f"  {what}: {where}")


def run_demo(cfg: DemoConfig) -> dict:
    """Run the six steps of the module docstring under ``cfg.out``; returns mIoU, times, throughputs."""
    from xray_seg.core.fileio import prepare_output_dir

    check_demo_config(cfg)  # every option, before anything on disk is touched
    out = Path(cfg.out)
    _replace_demo_folder(out, cfg.force)
    prepare_output_dir(out, owner="demo")
    times = {}
    start_all = time.perf_counter()
    preview = _synthesise_and_convert(cfg, out, times)
    result, pipeline_rate = _train_and_time_pipeline(cfg, out / "voc", out / "run", times)
    evaluation, calibration = _calibrate_evaluate_export_predict(cfg, out, times)
    times["total"] = time.perf_counter() - start_all
    _print_summary(out, evaluation, calibration, result, pipeline_rate, times, preview)
    return {
        "miou": evaluation.scores["miou"],
        "pd_at_pfa5": _pd_at_pfa5(evaluation)[0],
        "times": times,
        "train_images_per_sec": result.train_images_per_sec,
        "pipeline_images_per_sec": pipeline_rate,
    }
