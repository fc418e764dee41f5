"""What ``xray-seg convert`` checks before writing anything: the output against the inputs,
``--classes`` against the declared categories or the labels found, and stems or images that would collide
(:mod:`xray_seg.conversion.convert`, "How a run goes", steps 1 and 4)."""

from __future__ import annotations

import difflib
from collections import defaultdict
from pathlib import Path

from xray_seg.conversion.readers import Item, Reader, Scan
from xray_seg.conversion.settings import ConvertConfig
from xray_seg.core.errors import ConfigError
from xray_seg.core.file_names import bad_stem_reason
from xray_seg.core.fileio import refuse_overlap


def overlap_rule(inputs: list[Path], labels: Path | None, config: ConvertConfig) -> dict:
    """The inputs the output may not be, contain or lie inside, whatever ``--force`` says
    (:func:`xray_seg.core.fileio.refuse_overlap`). A COCO images folder is read only by the
    file names in the JSON, so the output may sit inside it (it may still not contain it)."""
    nested_ok = [p for p in inputs if p.is_dir()] if config.source == "coco" else []
    return {"inputs": [*inputs, *([labels] if labels is not None else [])], "may_lie_inside": nested_ok}


def check_paths(inputs: list[Path], voc_dir: Path, labels: Path | None, config: ConvertConfig) -> None:
    """Refuse an output that overlaps an input (:func:`overlap_rule`) before any work."""
    rule = overlap_rule(inputs, labels, config)
    refuse_overlap(
        voc_dir, [p for p in rule["inputs"] if p not in rule["may_lie_inside"]], may_lie_inside=rule["may_lie_inside"]
    )


def _missing_classes(classes, known, source: str) -> str | None:
    """The problem for ``--classes`` names matching none of ``known`` (ignoring case), with a
    "did you mean" from :mod:`difflib` for each; None when every name matches."""
    by_fold = {k.strip().casefold(): k for k in known}
    missing = [c for c in classes if c.strip().casefold() not in by_fold]
    if not missing:
        return None
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name.strip().casefold(), list(by_fold), n=1, cutoff=0.6)
        if close:
            hints.append(f"{name!r}: did you mean {by_fold[close[0]]!r}?")
    shown = ", ".join(sorted(known)[:30]) + (f" and {len(known) - 30} more" if len(known) > 30 else "")
    return f"--classes {', '.join(missing)} not among the {source} ({shown or 'none'})" + (
        f"; {' '.join(hints)}" if hints else ""
    )


def check_declared_classes(reader: Reader, config: ConvertConfig) -> None:
    """``--classes`` names a source that declares its categories (COCO) must know; catches typos."""
    declared = reader.declared_labels()
    if not config.classes or declared is None:
        return
    problem = _missing_classes(config.classes, declared, "categories of the input")
    if problem:
        raise ConfigError(
            problem,
            path=getattr(reader, "json_path", reader.root),
            fix="spell the classes as the categories are named",
        )


def check_found_classes(reader: Reader, config: ConvertConfig, scans: list[Scan]) -> None:
    """``--classes`` names that no annotation of a source without declared categories (Labelme,
    PIXray) uses are refused: a class listed but absent from every file is a typo far more often
    than not, and it would silently turn every object of the intended class into ``--others``."""
    if not config.classes or reader.declared_labels() is not None:
        return
    found = {label for scan in scans for label in scan.labels}
    problem = _missing_classes(config.classes, found, "labels used in the annotations")
    if problem:
        raise ConfigError(problem, path=reader.root, fix="spell the classes as the annotations name them")


def duplicates(items: list[Item], scans: list[Scan]) -> dict[str, str]:
    """Failure reason per item key for duplicate stems and shared images."""
    reasons: dict[str, str] = {}
    for f in items:
        bad = bad_stem_reason(f.stem)
        if bad:
            reasons[f.key] = f"{bad}. Fix: rename the file (and its image)"
    by_stem: dict[str, list[Item]] = defaultdict(list)
    for f in items:
        by_stem[f.stem.lower()].append(f)
    for group in by_stem.values():
        if len(group) > 1:
            for f in group:
                others = ", ".join(g.key for g in group if g is not f)
                reasons[f.key] = (
                    f"duplicate stem {f.stem!r}: {others} would write the same outputs "
                    "(stems are compared ignoring case). Fix: rename one of them"
                )
    by_image: dict[str, list[str]] = defaultdict(list)
    for scan in scans:
        if scan.image is not None and scan.error is None:
            by_image[scan.image].append(scan.key)
    for image, group in by_image.items():
        if len(group) > 1:
            for f in group:
                others = ", ".join(g for g in group if g != f)
                reasons.setdefault(
                    f,
                    f"annotates the same image {image} as {others}; one picture would count twice "
                    "(and could land in both train and val). Fix: keep one annotation",
                )
    return reasons


__all__ = ["check_declared_classes", "check_found_classes", "check_paths", "duplicates", "overlap_rule"]
