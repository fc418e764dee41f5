"""Pretrained presets: a model file and its manifest, in the keras-hub sense of config plus weights.

A preset ``NAME`` is a folder ``NAME/`` holding ``manifest.json`` and the model file it names
(``model.keras``, a full Keras model with its class names in the ``xray_seg.json`` entry).
The manifest (docs/training.md, "Start from a model")::

    {"name", "description", "model", "width", "image_size", "class_names",
     "file": "model.keras", "sha256", "bytes", "command", "data_recipe", "val": {"miou", ...},
     "trained": {"cpu", "minutes", "date"}, "held_out_looks": [...]}

Where presets are found, first match of a name wins:

1. every folder of the environment variable :data:`PRESETS_PATH_ENV` (``XRAY_SEG_PRESETS_PATH``,
   folders separated by ``os.pathsep``), e.g. a site's own presets, or a test's;
2. the presets shipped inside the package, :data:`BUNDLED_DIR` (``xray_seg/presets/pretrained/``).

The command line spells a preset ``preset:NAME`` (``xray-seg train VOC --init preset:NAME``);
:func:`verified_model_file` checks the model file's size and SHA-256 against the manifest
before anything loads it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from xray_seg.core.errors import ModelError
from xray_seg.core.fileio import file_sha256

PRESETS_PATH_ENV = "XRAY_SEG_PRESETS_PATH"
BUNDLED_DIR = Path(__file__).parents[1] / "presets" / "pretrained"
PREFIX = "preset:"
MANIFEST = "manifest.json"
_REQUIRED = {"name": str, "model": str, "width": (int, float), "class_names": list, "file": str, "sha256": str}


@dataclass(frozen=True)
class PretrainedPreset:
    """One preset: its folder and its checked manifest."""

    name: str
    folder: Path
    manifest: dict

    @property
    def model_file(self) -> Path:
        return self.folder / self.manifest["file"]

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def width(self) -> float:
        return float(self.manifest["width"])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def val_miou(self) -> float | None:
        value = (self.manifest.get("val") or {}).get("miou")
        return float(value) if isinstance(value, (int, float)) else None


def preset_folders() -> list[Path]:
    """The folders searched for presets, in order (module docstring)."""
    extra = [Path(p) for p in os.environ.get(PRESETS_PATH_ENV, "").split(os.pathsep) if p]
    return [*extra, BUNDLED_DIR]


def list_presets() -> list[PretrainedPreset]:
    """Every preset found, by name (a name in an earlier folder hides a later one)."""
    found: dict[str, PretrainedPreset] = {}
    for root in preset_folders():
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.name not in found and (folder / MANIFEST).is_file():
                found[folder.name] = PretrainedPreset(folder.name, folder, read_manifest(folder / MANIFEST))
    return [found[name] for name in sorted(found)]


def find_preset(name: str) -> PretrainedPreset:
    """The preset ``name`` (``preset:`` prefix allowed); unknown names are refused with the list."""
    name = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    presets = {p.name: p for p in list_presets()}
    if name not in presets and not presets:
        raise ModelError(
            f"unknown preset {name!r}: no preset is installed (searched {_searched()})",
            fix=f"put preset folders in a folder named by {PRESETS_PATH_ENV}, or start from a run or a .keras file",
        )
    if name not in presets:
        raise ModelError(
            f"unknown preset {name!r}",
            fix=f"use one of: {', '.join(presets)} (`xray-seg models --presets` lists them)",
        )
    return presets[name]


def verified_model_file(preset: PretrainedPreset) -> Path:
    """The preset's model file, after checking its size and SHA-256 against the manifest."""
    path = preset.model_file
    fix = f"reinstall xray-seg, or rebuild the preset with: {preset.manifest.get('command') or 'its command'}"
    if not path.is_file():
        raise ModelError(f"preset {preset.name!r}: its model file is missing", path=path, fix=fix)
    size = preset.manifest.get("bytes")
    if isinstance(size, int) and path.stat().st_size != size:
        raise ModelError(
            f"preset {preset.name!r}: {path.stat().st_size} bytes, its manifest says {size}", path=path, fix=fix
        )
    digest = file_sha256(path)
    if digest != preset.manifest["sha256"]:
        raise ModelError(
            f"preset {preset.name!r}: SHA-256 {digest[:16]}... does not match its manifest's "
            f"{preset.manifest['sha256'][:16]}...",
            path=path,
            fix=fix,
        )
    return path


def read_manifest(path: Path) -> dict:
    """A preset's ``manifest.json``, checked: the required keys and types, unique class names,
    a plain file name inside the folder, a hex SHA-256."""
    fix = "rebuild the preset (its manifest gives the command), or remove the folder"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable preset manifest ({exc})", path=path, fix=fix) from None
    if not isinstance(data, dict):
        raise ModelError("a preset manifest must be a JSON object", path=path, fix=fix)
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise ModelError(f"preset manifest: {key!r} is missing or not a {_kind_name(kind)}", path=path, fix=fix)
    names = data["class_names"]
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ModelError("preset manifest: class_names must be unique non-empty strings", path=path, fix=fix)
    if Path(data["file"]).name != data["file"] or data["file"] in ("", ".", ".."):
        raise ModelError(f"preset manifest: file {data['file']!r} must be a name in its folder", path=path, fix=fix)
    if not re.fullmatch(r"[0-9a-f]{64}", data["sha256"]):
        raise ModelError("preset manifest: sha256 must be 64 lowercase hex digits", path=path, fix=fix)
    return data


def _kind_name(kind) -> str:
    return "number" if isinstance(kind, tuple) else {str: "string", list: "list"}[kind]


def _searched() -> str:
    return ", ".join(str(p) for p in preset_folders())
