"""Model comparison under one protocol: ``xray-seg compare`` (paper 1, sec. 4.3, Tables 2-3, Fig. 7).

Paper 1 compares CWF-DeepLabv3+ with DeepLabv3+, MobileNetV2-DeepLabv3+, UNet and
BiSeNetV2 "based on the same benchmark and setting" with no pretrained weights
(sec. 4.3). Here every model is trained from one resolved :class:`TrainConfig` (same
splits, epochs, input size, augmentation, optimiser) that differs only in
``model.name`` and ``seed``; seed ``k`` is the same for every model. Each run is then
evaluated on the val split (paper 1 eqs. 4-7), timed (model-only FPS at batch 1, as
Table 3) and measured (parameters, GFLOPs at the protocol's input size).

Output folder::

    OUT/protocol.yaml                 the shared training config, models, seeds, dataset digest
    OUT/runs/<model>/seed<k>/         a trainer run folder (see :mod:`xray_seg.training.trainer`)
    OUT/runs/<model>/seed<k>/eval-val/   evaluate's metrics.json, report.md, confusion matrix
    OUT/runs/<model>/seed<k>/compare_result.json   written atomically last: the run is finished
    OUT/compare.json, compare.md      Tables 2 and 3, mean +- std over seeds (compare_report)
    OUT/compare_bars.png              mIoU and mPA per model with std error bars
    OUT/compare_predictions.png       Fig. 7-style grid: input, ground truth, each model

Resuming (``resume=True``): a run with ``compare_result.json`` is not touched; a run
whose checkpoint shows fewer epochs than the protocol continues with the trainer's
exact resume; a trained but unevaluated run is only evaluated. The protocol must equal
the saved one (models and seeds may be added).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from xray_seg.conversion.voc import read_class_names, read_split
from xray_seg.core.config import config_to_dict, load_config, parse_overrides
from xray_seg.core.errors import ConfigError, DatasetError, ModelError
from xray_seg.core.fileio import prepare_output_dir, write_json_atomic, write_text_atomic
from xray_seg.core.images import read_image_rgb
from xray_seg.core.layouts import RunLayout, VocLayout
from xray_seg.evaluation.bench import predict_resize, time_calls
from xray_seg.evaluation.evaluator import evaluate
from xray_seg.evaluation.flops import count_flops, count_params
from xray_seg.inference.loader import load_for_inference
from xray_seg.models.registry import available_models
from xray_seg.training.compare_report import write_comparison
from xray_seg.training.config import TrainConfig
from xray_seg.training.trainer import resume_config, train

PAPER1_MODELS = ("cwf_deeplabv3plus", "deeplabv3plus", "mobilenetv2_deeplabv3plus", "unet", "bisenetv2")
RESULT_FILE = "compare_result.json"
PROTOCOL_FILE = "protocol.yaml"
RESERVED_SETTINGS = ("model.name", "seed", "data.voc_dir")


@dataclass
class CompareSettings:
    """What ``xray-seg compare`` was asked to do.

    Args:
        voc_dir: VOC folder written by ``xray-seg convert``.
        out_dir: output folder (layout in the module docstring).
        models: registry names, in table order.
        preset: bundled preset name or YAML file shared by every model.
        seeds: number of seeds; run ``k`` of every model uses seed ``k``.
        overrides: ``key=value`` settings applied on top of the preset.
        fps_runs: timed forward passes per run for the FPS column (after 3 warm-ups).
        grid_images: val images in the prediction grid (paper 1 Fig. 7 shows five).
        devices: GPU indices for the trainer's MirroredStrategy (None: every visible GPU).
    """

    voc_dir: str
    out_dir: str
    models: tuple = PAPER1_MODELS
    preset: str = "compare_cpu"
    seeds: int = 1
    overrides: tuple = ()
    fps_runs: int = 20
    grid_images: int = 4
    devices: str | None = None


def parse_model_list(text: str | None) -> list[str]:
    """``"unet,bisenetv2"`` -> checked registry names; empty -> the five paper-1 models."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()] or list(PAPER1_MODELS)
    known = [spec.name for spec in available_models()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ModelError(f"unknown model(s): {', '.join(unknown)}", fix=f"use names from: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--models lists a model twice: {','.join(names)}", fix="name each model once")
    return names


def check_dataset(voc_dir: str | Path) -> dict:
    """Check the VOC folder and return its identity (sizes and a digest of the splits)."""
    voc = Path(voc_dir)
    if not voc.is_dir():
        raise DatasetError(
            "VOC dataset folder not found",
            path=voc,
            fix="give the folder written by `xray-seg convert LABELME_DIR VOC_DIR --labels labels.txt`",
        )
    names = read_class_names(voc)
    splits = {split: read_split(voc, split) for split in ("train", "val")}
    digest = hashlib.sha256(json.dumps(splits, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "voc_dir": str(voc.resolve()),
        "class_names": names,
        "train_images": len(splits["train"]),
        "val_images": len(splits["val"]),
        "splits_sha256": digest,
    }


def base_config(settings: CompareSettings) -> TrainConfig:
    """The one training config every model shares (paper 1 sec. 4.3: same setting, from scratch)."""
    updates = parse_overrides(settings.overrides)
    for key in RESERVED_SETTINGS:
        section, _, leaf = key.rpartition(".")
        node = updates.get(section, {}) if section else updates
        if isinstance(node, dict) and leaf in node:
            raise ConfigError(
                f"--set {key} is decided by compare",
                fix="choose the data with --data, models with --models and seeds with --seeds",
            )
    cfg = load_config(TrainConfig, settings.preset, updates)
    if cfg.model.options.get("weights"):
        raise ConfigError(
            "pretrained weights break the protocol (paper 1 sec. 4.3 trains every model from scratch)",
            fix="remove model.options.weights",
        )
    cfg.data.voc_dir = str(Path(settings.voc_dir).resolve())
    return cfg


def run_config(base: TrainConfig, model: str, seed: int) -> TrainConfig:
    """``base`` with only the model and the seed changed."""
    cfg = copy.deepcopy(base)
    cfg.model.name, cfg.seed = model, seed
    return cfg


def protocol_document(settings: CompareSettings, base: TrainConfig, dataset: dict) -> dict:
    shared = config_to_dict(base)
    shared["model"].pop("name")
    shared.pop("seed")
    return {
        "protocol": "paper 1 sec. 4.3: every model trained with the same config from scratch; "
        "seed k is the same for every model; evaluated on val (eqs. 4-7)",
        "preset": str(settings.preset),
        "overrides": list(settings.overrides),
        "models": list(settings.models),
        "seeds": list(range(settings.seeds)),
        "dataset": dataset,
        "train_config": shared,
        "model_selection": f"the checkpoint with the best val mIoU among validated epochs (val_every={base.val_every}; "
        "the last epoch is always validated)",
        "fps": f"model-only forward pass at batch 1, median of {settings.fps_runs} after 3 warm-up (xray_seg.evaluation.bench)",
    }


def check_protocol_unchanged(saved: dict, current: dict, path: Path) -> None:
    """On resume the shared protocol must be the saved one; models and seeds may grow."""
    for key in ("train_config", "dataset"):
        if saved.get(key) != current.get(key):
            raise ConfigError(
                f"the {key.replace('_', ' ')} differs from the one this comparison started with",
                path=path,
                fix="resume with the same --preset, --set and data, or start a new --out (or --force)",
            )


def run_dir_of(out_dir: Path, model: str, seed: int) -> Path:
    return Path(out_dir) / "runs" / model / f"seed{seed}"


def run_stage(run_dir: Path, epochs: int) -> str:
    """Where a (model, seed) run stands: ``done``, ``evaluate``, ``resume`` or ``train``.

    ``done`` needs the result file (written atomically after evaluation); a checkpoint
    ``state.json`` with all epochs means only evaluation is missing; fewer epochs means
    an interrupted training to continue; anything else starts over.
    """
    if (run_dir / RESULT_FILE).is_file():
        return "done"
    layout = RunLayout(run_dir)
    state = layout.state_file
    if state.is_file() and layout.last_weights.is_file():
        try:
            done = int(json.loads(state.read_text())["epochs_done"])
        except (ValueError, KeyError, json.JSONDecodeError):
            return "train"
        if done >= epochs and layout.best_model.is_file():
            return "evaluate"
        return "resume" if done > 0 else "train"
    return "train"


def measure_run(run_dir: Path, voc_dir: str, image_size, fps_runs: int) -> dict:
    """Evaluate one trained run on val and add FPS, parameters and GFLOPs (paper 1 Table 3)."""
    import keras
    import numpy as np

    evaluation = evaluate(run_dir, voc_dir, split="val", out_dir=run_dir / "eval-val", force=True, progress=False)
    scores, screening = evaluation.scores, evaluation.extra["screening"]
    loaded = load_for_inference(run_dir)
    trainable, frozen = count_params(loaded.keras_model)
    size = tuple(image_size)
    flops = count_flops(loaded.keras_model, (*size, 3))
    first = read_image_rgb(VocLayout(voc_dir).image_path(read_split(voc_dir, "val")[0]))
    batch = np.asarray(predict_resize(first, size), np.float32)[None]
    timing = time_calls(lambda i: loaded.logits_fn(batch), fps_runs, warmup=3)
    keras.backend.clear_session()
    return {
        "miou": scores["miou"],
        "mpa": scores["mpa"],
        "pa": scores["pa"],
        "iou": scores["iou"],
        "class_pa": scores["class_pa"],
        "class_names": scores["class_names"],
        "fps": timing.fps,
        "params_m": (trainable + frozen) / 1e6,
        "gflops": flops.gflops,
        "pd_at_pfa5": screening["pd_at_pfa"]["overall"]["0.05"],
        "map50": screening["objects"]["map50"],
    }


def _train_or_resume(stage: str, cfg: TrainConfig, run_dir: Path, devices: str | None, verbose: int) -> None:

    if stage == "resume":
        train(resume_config(run_dir), run_dir, resume=True, devices=devices, verbose=verbose)
    else:  # a run folder without progress starts over
        train(cfg, run_dir, force=True, devices=devices, verbose=verbose)


def compare(settings: CompareSettings, *, resume: bool = False, force: bool = False, verbose: int = 1) -> dict:
    """Train, evaluate and tabulate every (model, seed); return the ``compare.json`` document."""
    models = parse_model_list(",".join(settings.models))
    if settings.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {settings.seeds}", fix="pass e.g. --seeds 3")
    dataset = check_dataset(settings.voc_dir)
    base = base_config(settings)
    protocol = protocol_document(settings, base, dataset)
    out = Path(settings.out_dir)
    protocol_path = out / PROTOCOL_FILE
    if resume and protocol_path.is_file():
        check_protocol_unchanged(
            yaml.safe_load(protocol_path.read_text(encoding="utf-8")) or {}, protocol, protocol_path
        )
    elif resume and out.is_dir() and any(out.iterdir()):
        raise ConfigError(
            "not a comparison folder (no protocol.yaml)",
            path=out,
            fix="give the --out of an earlier `xray-seg compare`, or a new folder",
        )
    prepare_output_dir(
        out, force=force, resume=resume, inputs=[settings.voc_dir], owner="compare", resume_flag="--resume"
    )
    write_text_atomic(protocol_path, yaml.safe_dump(protocol, sort_keys=False))

    jobs = [(model, seed) for seed in range(settings.seeds) for model in models]
    results: dict[str, list[dict]] = {m: [] for m in models}
    start = time.perf_counter()
    for index, (model, seed) in enumerate(jobs, 1):
        print(f"[{index}/{len(jobs)}] {model} seed {seed}: ", end="")
        results[model].append(_run_one(out, base, settings, model, seed, verbose))
    print(
        f"all {len(jobs)} runs finished ({time.perf_counter() - start:.0f} s this session); writing tables and figures"
    )
    grid_runs = {m: run_dir_of(out, m, 0) for m in models}
    return write_comparison(out, protocol, results, grid_runs, grid_images=settings.grid_images)


_STAGE_NOTES = {
    "done": "finished earlier, skipped",
    "evaluate": "trained earlier, evaluating",
    "resume": "resuming the interrupted training",
    "train": "training",
}


def _run_one(out: Path, base, settings: CompareSettings, model: str, seed: int, verbose: int) -> dict:
    """Train (or resume) and measure one (model, seed) unless an earlier session finished it;
    returns its ``result.json`` record."""
    run_dir = run_dir_of(out, model, seed)
    stage = run_stage(run_dir, base.epochs)
    print(_STAGE_NOTES[stage], flush=True)
    try:
        if stage in ("train", "resume"):
            _train_or_resume(stage, run_config(base, model, seed), run_dir, settings.devices, verbose)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted during {model} seed {seed}: run the same command with --resume to continue "
            "(finished runs are kept; this one continues from its last epoch)",
            flush=True,
        )
        raise
    if stage != "done":
        record = {
            "model": model,
            "seed": seed,
            **measure_run(run_dir, base.data.voc_dir, base.data.image_size, settings.fps_runs),
        }
        write_json_atomic(run_dir / RESULT_FILE, record)
    return json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
