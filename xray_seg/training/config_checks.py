"""Training settings checked in one place, before any work: :func:`validate_train_config`
(every invalid setting in one ConfigError), :func:`resume_changes` (what a ``--resume``
would change) and :func:`cpu_speed_warnings` (settings measured to slow a CPU down)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import h5py

from xray_seg.core.config import config_to_dict
from xray_seg.core.errors import ConfigError
from xray_seg.core.fileio import open_regular
from xray_seg.core.pixel_limit import max_pixels
from xray_seg.training.losses import LOSSES

MAX_WEIGHTS_BYTES = 1 << 20  # a class-weights file is a few hundred bytes


def _positive_int(value, key: str, problems: list[str], minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(f"{key}={value!r} must be an integer >= {minimum}")


def _number(value, key: str, problems: list[str], *, low=None, high=None, low_open=False, high_open=False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{key}={value!r} must be a finite number")
        return
    if low is not None and (value <= low if low_open else value < low):
        problems.append(f"{key}={value!r} must be {'>' if low_open else '>='} {low}")
    if high is not None and (value >= high if high_open else value > high):
        problems.append(f"{key}={value!r} must be {'<' if high_open else '<='} {high}")


def _size(value, key: str, problems: list[str], *, allow_empty: bool = False) -> None:
    if allow_empty and value in ((), [], None):
        return
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        problems.append(
            f"{key}={value!r} must be a size [height, width] (or one number for a square) of positive integers"
        )


def check_class_weights_file(path) -> None:
    """One ConfigError naming ``path`` unless it holds class weights as ``xray-seg data-stats
    --weights-out`` writes them: a list in label order, ``{"class_weights": [...]}`` /
    ``{"weights": [...]}``, or a mapping from class name to weight; each weight a finite number >= 0.
    Whether there is one weight per class is checked when the class names are read."""
    fix = "re-run `xray-seg data-stats --weights-out FILE`, or set loss.class_weights=auto"
    file = Path(str(path))
    if not file.is_file():
        raise ConfigError("class-weights file not found", path=file, fix=fix)
    try:
        with open_regular(file, "class-weights file") as f:
            raw = f.read(MAX_WEIGHTS_BYTES + 1)
        if len(raw) > MAX_WEIGHTS_BYTES:
            raise ValueError(f"over {MAX_WEIGHTS_BYTES} bytes")
        data = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot read class weights ({exc})", path=file, fix=fix) from None
    if isinstance(data, dict):
        data = data.get("class_weights", data.get("weights", data))
    values = list(data.values()) if isinstance(data, dict) else data
    if not isinstance(values, list) or not values:
        raise ConfigError(
            f"class weights must be a list or a mapping of numbers, got {str(data)[:60]}", path=file, fix=fix
        )
    bad = [w for w in values if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0]
    if bad:
        raise ConfigError(f"class weights must be finite numbers >= 0, got {str(bad[:3])[:60]}", path=file, fix=fix)


def _fine_tuning_settings(cfg, problems: list[str]) -> None:
    """``freeze``, ``freeze_epochs``, ``early_stop_patience`` and ``model.backbone_weights``."""
    if cfg.freeze not in ("", "backbone"):
        problems.append(f"freeze={cfg.freeze!r} must be backbone or empty")
    _positive_int(cfg.freeze_epochs, "freeze_epochs", problems, minimum=0)
    _positive_int(cfg.early_stop_patience, "early_stop_patience", problems, minimum=0)
    if cfg.freeze and cfg.freeze_epochs == 0:
        problems.append(f"freeze={cfg.freeze} needs freeze_epochs >= 1 (the epochs it stays frozen)")
    if not cfg.freeze and isinstance(cfg.freeze_epochs, int) and cfg.freeze_epochs > 0:
        problems.append(f"freeze_epochs={cfg.freeze_epochs} without freeze: set freeze=backbone too")
    weights = cfg.model.backbone_weights
    if weights and not Path(str(weights)).is_file():
        problems.append(f"model.backbone_weights={str(weights)!r} is not a file (weights are never downloaded)")
    elif weights and not h5py.is_hdf5(str(weights)):
        problems.append(f"model.backbone_weights={str(weights)!r} is not an HDF5 weights file (.h5 / .weights.h5)")


def validate_train_config(cfg) -> None:
    """Raise one ConfigError listing every invalid training setting (before any work)."""
    problems: list[str] = []
    _positive_int(cfg.epochs, "epochs", problems)
    _positive_int(cfg.steps_per_epoch, "steps_per_epoch", problems, minimum=0)
    _positive_int(cfg.val_every, "val_every", problems)
    _positive_int(cfg.num_val_images, "num_val_images", problems, minimum=0)
    _positive_int(cfg.data.batch_size, "data.batch_size", problems)
    _size(cfg.data.image_size, "data.image_size", problems)
    _size(cfg.data.crop_size, "data.crop_size", problems, allow_empty=True)
    if not problems and cfg.data.crop_size and any(c > s for c, s in zip(cfg.data.crop_size, cfg.data.image_size)):
        problems.append(
            f"data.crop_size={list(cfg.data.crop_size)} is larger than data.image_size={list(cfg.data.image_size)}"
        )
    if not problems and cfg.data.image_size[0] * cfg.data.image_size[1] > max_pixels():
        h, w = cfg.data.image_size
        problems.append(f"data.image_size={h}x{w} is over the pixel limit of {max_pixels() / 1e6:.1f} M pixels")
    _number(cfg.model.width, "model.width", problems, low=0, low_open=True)
    _number(cfg.optim.lr, "optim.lr", problems, low=0)  # 0 freezes the weights (a dry run); negative ascends the loss
    _number(cfg.optim.momentum, "optim.momentum", problems, low=0, high=1, high_open=True)
    _number(cfg.optim.weight_decay, "optim.weight_decay", problems, low=0)
    _number(cfg.optim.power, "optim.power", problems, low=0)
    _number(cfg.optim.warmup_epochs, "optim.warmup_epochs", problems, low=0)
    _number(cfg.optim.clipnorm, "optim.clipnorm", problems, low=0)
    _positive_int(cfg.optim.reference_batch, "optim.reference_batch", problems, minimum=0)
    if cfg.optim.optimizer not in ("adam", "adamw", "sgd"):
        problems.append(f"optim.optimizer={cfg.optim.optimizer!r} must be adam, adamw or sgd")
    if cfg.optim.schedule not in ("constant", "poly"):
        problems.append(f"optim.schedule={cfg.optim.schedule!r} must be constant or poly")
    terms = [part.strip() for part in str(cfg.loss.type).split("+")]
    if not terms or any(term not in LOSSES for term in terms):
        problems.append(f"loss.type={cfg.loss.type!r} must be one of {', '.join(LOSSES)} or a sum such as ce+dice")
    _number(cfg.loss.ohem_thresh, "loss.ohem_thresh", problems, low=0, high=1, low_open=True)
    _positive_int(cfg.loss.ohem_min_kept, "loss.ohem_min_kept", problems, minimum=0)
    _number(cfg.loss.aux_weight, "loss.aux_weight", problems, low=0)
    if cfg.loss.class_weights not in ("", "auto"):
        check_class_weights_file(cfg.loss.class_weights)
    _fine_tuning_settings(cfg, problems)
    if problems:
        raise ConfigError(
            "invalid setting(s): " + "; ".join(problems),
            fix="correct them in the preset or the --set/flag values",
        )


def _flatten(mapping: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name not in ("model.options", "optim.lr_multipliers"):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def resume_changes(saved, requested) -> list[str]:
    """Settings of ``requested`` that differ from the ``saved`` run config (``epochs`` may only grow).

    Paths (``data.voc_dir``) are compared resolved. Each entry reads ``key: saved -> requested``.
    """
    before, after = _flatten(config_to_dict(saved)), _flatten(config_to_dict(requested))
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if key == "data.voc_dir" and old and new and os.path.realpath(str(old)) == os.path.realpath(str(new)):
            continue
        if key == "epochs" and isinstance(old, int) and isinstance(new, int) and new >= old:
            continue
        if old != new:
            changes.append(f"{key}: {old!r} -> {new!r}")
    return changes


def cpu_speed_warnings(cfg, cpu: dict) -> list[str]:
    """One line per setting that was measured to make CPU training slower, for a run with no GPU.

    ``cpu`` is :func:`xray_seg.evaluation.timing.cpu_description`. Measured in one run on an AMD
    EPYC with AVX-512 and AVX512-BF16 (no AMX), CWF-DeepLabv3+ at width 0.25, 256 px, batch 8:
    ``jit_compile`` took 15.4 s a step against 0.92 s (17x slower) and ``mixed_bfloat16`` 1.7x
    longer. On a Xeon with AMX, bfloat16 was about 5 % faster (docs/benchmarks.md), so the
    bfloat16 line is given only where ``amx_tile`` is missing. Each line says how to measure.
    """
    measure = "measure it here first: `xray-seg bench --suite train-step`"
    warnings = []
    if cfg.jit_compile:
        warnings.append(
            f"warning: jit_compile=true made a CPU training step 17x slower on an AVX-512 EPYC; {measure}, "
            "or drop --jit-compile"
        )
    if cfg.mixed_precision == "mixed_bfloat16" and "amx_tile" not in cpu.get("vector", []):
        warnings.append(
            f"warning: mixed_bfloat16 made a training step 1.7x slower on a CPU without AMX, as this one is; {measure}"
        )
    return warnings
