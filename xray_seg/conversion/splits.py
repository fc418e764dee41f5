"""The train/val split of a conversion, kept on ``--resume``, and the subsets of image flags.

Split
    The stems of all complete outputs are sorted and shuffled with ``numpy``'s
    ``default_rng(seed)``; the first ``round(n * val_ratio)`` go to val (at least one
    each to train and val when there are two or more stems and ``0 < val_ratio < 1``).
    Paper 1 splits 7:3, hence ``val_ratio=0.3``. Stems of ``--val-list`` always go to val;
    the others are split exactly as without them.

Resume
    Every stem already listed in ``train.txt`` or ``val.txt`` keeps its assignment; only
    stems new to the dataset are split (with the same ``val_ratio`` and ``seed``), so a
    model is never evaluated on images it was trained on. ``--resplit`` redoes the whole split.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from xray_seg.conversion.report import ConvertReport
from xray_seg.conversion.settings import ConvertConfig
from xray_seg.conversion.voc import write_split, write_subsets
from xray_seg.core.errors import ConfigError
from xray_seg.core.layouts import VocLayout


def split_stems(stems: Iterable[str], val_ratio: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded train/val split of ``stems`` (module docstring, "Split"); both sorted."""
    stems = sorted(stems)
    n = len(stems)
    n_val = int(round(n * val_ratio))
    if n >= 2 and 0 < val_ratio < 1:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val = sorted(stems[i] for i in order[:n_val])
    val_set = set(val)
    return [s for s in stems if s not in val_set], val


def previous_split(voc_dir: str | Path) -> dict[str, str]:
    """``{stem: "train" | "val"}`` from the split files already in ``voc_dir``."""
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
    """Train and val stems of ``done``: earlier assignments kept, new stems split (module docstring, "Resume")."""
    before = previous_split(voc_dir)
    kept_train = [s for s in done if before.get(s) == "train"]
    kept_val = [s for s in done if before.get(s) == "val"]
    new = [s for s in done if s not in before]
    new_train, new_val = split_stems(new, val_ratio, seed) if new else ([], [])
    return sorted(kept_train + new_train), sorted(kept_val + new_val)


def refuse_val_stems_in_train(voc_dir: Path, fixed_val: set[str]) -> None:
    """ConfigError if ``--val-list`` names a stem that an earlier run of ``voc_dir`` trained on."""
    trained = sorted(stem for stem, split in previous_split(voc_dir).items() if split == "train" and stem in fixed_val)
    if trained:
        raise ConfigError(
            f"--val-list names {len(trained)} stem(s) already in train ({', '.join(trained[:3])}"
            f"{', ...' if len(trained) > 3 else ''}); moving them to val would evaluate on training images",
            path=VocLayout(voc_dir).split_file("train"),
            fix="drop them from the list, or pass --resplit to redo the whole split",
        )


def write_splits(voc_dir: Path, done: list[str], config: ConvertConfig, report: ConvertReport) -> None:
    """The train/val/trainval lists of every converted stem; ``--resume``
    keeps the earlier assignment and splits only new stems unless ``--resplit``."""
    fixed_val = set(config.val_stems or ())
    free = [stem for stem in done if stem not in fixed_val]
    if config.resume and not config.resplit:
        refuse_val_stems_in_train(voc_dir, fixed_val)
        train, val = resumed_split(voc_dir, free, config.val_ratio, config.seed)
    else:
        train, val = split_stems(free, config.val_ratio, config.seed)
    val = sorted(val + [stem for stem in done if stem in fixed_val])
    write_split(voc_dir, "train", train)
    write_split(voc_dir, "val", val)
    write_split(voc_dir, "trainval", sorted(done))
    report.train, report.val = len(train), len(val)


def write_subsets_of(voc_dir: Path, done: list[str], flags: dict, report: ConvertReport) -> None:
    """``subsets.json`` from the converted stems' image flags (:mod:`xray_seg.conversion.convert`, "Subsets");
    nothing when no stem has a flag and no earlier run wrote the file."""
    names = sorted({name for stem in done for name in flags.get(stem, {})})
    if not names and not VocLayout(voc_dir).subsets_file.exists():
        return
    subsets = {name: [stem for stem in done if flags.get(stem, {}).get(name) is True] for name in names}
    write_subsets(voc_dir, subsets)
    report.subsets = {name: len(stems) for name, stems in subsets.items()}


__all__ = ["previous_split", "resumed_split", "split_stems", "write_splits", "write_subsets_of"]
