"""Model files the ``--init`` and preset tests make themselves, tiny and without training
(importable as ``_model_files``, like ``_helpers``): a run folder with every file ``train``
writes about its model, and a pretrained preset folder with its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NAMES = ["_background_", "gun", "knife", "wrench", "pliers", "scissors"]
SIZE = 64


def randomise(model, seed: int) -> None:
    """Every weight of ``model`` drawn at random (batch-norm variances positive), so that a
    copy that misses or misplaces one tensor shows in the logits."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if "seed_generator" in v.path:
            continue
        value = rng.normal(0.0, 0.2, v.shape)
        if "moving_variance" in v.path or "gamma" in v.path:
            value = np.abs(value) + 0.5
        v.assign(value.astype(v.dtype))


def save_run(root, *, model="cwf_deeplabv3plus", width=0.0625, names=NAMES, aux=False, seed=0, options=None) -> Path:
    """A run folder as ``train`` leaves it (config.yaml, class_names.txt, best and last
    checkpoints, best_model.keras with its metadata), holding random weights; the last
    checkpoint differs from the best one."""
    import keras

    from xray_seg.core.config import load_config, save_config
    from xray_seg.core.fileio import write_marker
    from xray_seg.core.model_metadata import model_metadata, write_model_metadata
    from xray_seg.models.outputs import logits_of
    from xray_seg.models.registry import build_model
    from xray_seg.training.config import TrainConfig

    run = Path(root)
    (run / "checkpoints").mkdir(parents=True)
    write_marker(run, "train")
    options = dict(options or {})
    net = build_model(model, len(names), (SIZE, SIZE, 3), width=width, aux=aux, **options)
    cfg = {
        "model": {"name": model, "width": width, "aux": aux, "options": options},
        "data": {"image_size": [SIZE, SIZE]},
    }
    save_config(load_config(TrainConfig, None, cfg), run / "config.yaml")
    (run / "class_names.txt").write_text("\n".join(names) + "\n")
    randomise(net, seed + 1)
    net.save_weights(run / "checkpoints" / "last.weights.h5")
    randomise(net, seed)
    net.save_weights(run / "checkpoints" / "best.weights.h5")
    inference = keras.Model(net.input, logits_of(net.output)) if isinstance(net.output, dict) else net
    inference.save(run / "best_model.keras")
    write_model_metadata(run / "best_model.keras", model_metadata(names, (SIZE, SIZE), model))
    return run


def save_preset(root, name="tiny_synth", *, run=None, width=0.0625, names=NAMES, held_out=()) -> Path:
    """A preset folder ``root/name`` (model.keras + manifest.json) made from ``run``'s
    best_model.keras (a new random run when None); returns ``root``."""
    import shutil

    from xray_seg.core.fileio import file_sha256

    run = run or save_run(Path(root) / f".{name}-run", width=width, names=names)
    folder = Path(root) / name
    folder.mkdir(parents=True)
    shutil.copy(run / "best_model.keras", folder / "model.keras")
    manifest = {
        "name": name,
        "description": "tiny test preset (random weights)",
        "model": "cwf_deeplabv3plus",
        "width": width,
        "image_size": [SIZE, SIZE],
        "class_names": list(names),
        "file": "model.keras",
        "sha256": file_sha256(folder / "model.keras"),
        "bytes": (folder / "model.keras").stat().st_size,
        "command": "tests/_model_files.py save_preset",
        "data_recipe": {},
        "val": {"miou": 0.5, "pd_at_pfa5": 0.5},
        "trained": {"cpu": "none", "minutes": 0, "date": "2026-12-06"},
        "held_out_looks": list(held_out),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return Path(root)
