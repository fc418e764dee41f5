"""What ``xray-seg convert --resume`` keeps and what it redoes (docs/architecture.md, "Data safety").

- **Changed inputs are reconverted.** Each converted stem's inputs (the JSON file and the
  image it refers to) are recorded by size and modification time in
  ``convert_inputs.json``; on ``--resume`` a stem whose inputs differ from the record (or
  that has no record, e.g. after ``kill -9`` or from an older version) is converted again,
  so an edited annotation never keeps its stale mask.
- **The split is kept.** Every stem already listed in ``train.txt`` or ``val.txt`` keeps
  its assignment; only stems new to the dataset are split (with the same ``val_ratio``
  and ``seed``), so a model is never evaluated on images it was trained on. Changing
  ``val_ratio`` or ``seed`` on ``--resume`` is an error unless ``--resplit`` redoes the
  whole split (:mod:`xray_seg.conversion.splits`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from xray_seg.conversion.settings import CONFIG_FILE, ConvertConfig
from xray_seg.core.constants import VOC_IMAGE_SUFFIXES
from xray_seg.core.errors import ConfigError, OutputExistsError
from xray_seg.core.fileio import write_json_atomic
from xray_seg.core.layouts import VocLayout

INPUTS_FILE = "convert_inputs.json"
# Settings that change what the outputs contain: a resumed run must use the same ones.
RESUME_KEYS = ("image_format", "unknown", "class_names", "source", "others", "objects")
# What an earlier run that predates a key used (so resuming it compares equal).
RESUME_DEFAULTS = {"source": "labelme", "others": "background", "objects": False}


def _stat(path: str | Path | None):
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def fingerprint(json_path: str | Path, image: str | Path | None) -> dict:
    """Size and mtime of a stem's inputs (JSON and referenced image)."""
    return {"json": _stat(json_path), "image": _stat(image)}


def read_fingerprints(voc_dir: str | Path) -> dict:
    """The recorded fingerprints per stem (empty if none were recorded)."""
    try:
        data = json.loads((Path(voc_dir) / INPUTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_fingerprints(voc_dir: str | Path, prints: dict) -> None:
    write_json_atomic(Path(voc_dir) / INPUTS_FILE, dict(sorted(prints.items())))


def check_resume(voc_dir: Path, settings: dict) -> None:
    """Refuse ``--resume`` of a folder not written by convert, or with other settings or another split."""
    path = voc_dir / CONFIG_FILE
    if not path.is_file():
        raise OutputExistsError(
            f"--resume needs a folder written by `xray-seg convert` ({CONFIG_FILE} is missing)",
            path=voc_dir,
            fix="choose another output, or pass --force to replace it",
        )
    try:
        before = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        before = {}
    changed = [k for k in RESUME_KEYS if before.get(k, RESUME_DEFAULTS.get(k)) != settings.get(k)]
    split_changed = [k for k in ("val_ratio", "seed") if k in before and before.get(k) != settings.get(k)]
    if split_changed and not settings.get("resplit"):
        raise ConfigError(
            f"--resume with a different split ({', '.join(f'{k} {before[k]} -> {settings[k]}' for k in split_changed)}); "
            "the earlier train/val assignment is kept on --resume",
            path=path,
            fix="resume with the same --val-ratio and --seed, or pass --resplit to redo the whole split",
        )
    if changed:
        raise ConfigError(
            f"--resume with different settings ({', '.join(changed)}) than the earlier run",
            path=path,
            fix="resume with the same settings, or pass --force to start again",
        )


def outputs_complete(layout: VocLayout, stem: str, config: ConvertConfig) -> bool:
    """Whether every output ``config`` asks for exists for ``stem`` (the class PNG, written last, first)."""
    if not layout.mask_path(stem).is_file():
        return False
    if not any((layout.images_dir / f"{stem}{s}").is_file() for s in VOC_IMAGE_SUFFIXES):
        return False
    if config.npy and not (layout.npy_dir / f"{stem}.npy").is_file():
        return False
    if config.vis and not (layout.vis_dir / f"{stem}.jpg").is_file():
        return False
    if config.objects and not layout.object_path(stem).is_file():
        return False
    return True


__all__ = ["INPUTS_FILE", "check_resume", "fingerprint", "outputs_complete", "read_fingerprints", "write_fingerprints"]
