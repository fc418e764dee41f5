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
  whole split.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from xray_seg.core.fileio import write_json_atomic

INPUTS_FILE = "convert_inputs.json"


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


def previous_split(voc_dir: str | Path) -> dict[str, str]:
    """``{stem: "train" | "val"}`` from the split files already in ``voc_dir``."""
    from xray_seg.conversion.voc import VocLayout

    layout = VocLayout(voc_dir)
    assigned: dict[str, str] = {}
    for split in ("train", "val"):
        path = layout.split_file(split)
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    assigned.setdefault(line, split)
    return assigned


def resumed_split(voc_dir, done: list[str], val_ratio: float, seed: int) -> tuple[list[str], list[str]]:
    """Train and val stems of ``done``: earlier assignments kept, new stems split (module docstring)."""
    from xray_seg.conversion.convert import split_stems

    before = previous_split(voc_dir)
    kept_train = [s for s in done if before.get(s) == "train"]
    kept_val = [s for s in done if before.get(s) == "val"]
    new = [s for s in done if s not in before]
    new_train, new_val = split_stems(new, val_ratio, seed) if new else ([], [])
    return sorted(kept_train + new_train), sorted(kept_val + new_val)
