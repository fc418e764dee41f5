"""The classes of a conversion: the labels file, ``--classes``, and what becomes of a label
neither lists (``--unknown``, ``--others``; :mod:`xray_seg.conversion.convert`, step 1)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from xray_seg.conversion.labelme import BACKGROUND_NAME, IGNORE_NAME
from xray_seg.conversion.readers import Scan
from xray_seg.core.errors import ConfigError, DatasetError
from xray_seg.core.fileio import read_lines


def read_labels(path: str | Path) -> tuple[list[str], dict[str, int]]:
    """Read a labels file; return ``(class_names, label_to_index)``.

    ``class_names`` starts with ``_background_`` (index 0); ``label_to_index`` also maps
    ``__ignore__`` to -1.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "labels file not found", path=path, fix="pass --labels with __ignore__, _background_ and one class a line"
        )
    names = read_lines(path, encoding="utf-8-sig")
    if names and names[0] == IGNORE_NAME:
        names = names[1:]
    if not names or names[0] != BACKGROUND_NAME:
        raise ConfigError(
            f"the first class must be {BACKGROUND_NAME} (after an optional {IGNORE_NAME} line)",
            path=path,
            fix=f"start the file with {IGNORE_NAME} and {BACKGROUND_NAME}, as labelme2voc expects",
        )
    seen = set()
    for name in names:
        if name == IGNORE_NAME:
            raise ConfigError(
                f"{IGNORE_NAME} may only be the first line (it is not a class)",
                path=path,
                fix=f"move {IGNORE_NAME} to line 1, before {BACKGROUND_NAME}",
            )
        if name in seen:
            raise ConfigError(f"label {name!r} appears twice", path=path, fix="list every class once")
        seen.add(name)
    if len(names) > 255:
        raise ConfigError(
            f"{len(names)} classes; a VOC PNG holds at most 255 (0..254)", path=path, fix="use fewer classes"
        )
    label_to_index = {IGNORE_NAME: -1, **{name: i for i, name in enumerate(names)}}
    return names, label_to_index


def class_subset(classes: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    """``(class_names, label_to_index)`` for ``--classes`` (no labels file)."""
    names = [BACKGROUND_NAME]
    for raw in classes:
        name = raw.strip()
        if not name or name in (IGNORE_NAME, BACKGROUND_NAME) or name.casefold() in {n.casefold() for n in names}:
            raise ConfigError(
                f"--classes: {raw!r} is empty, reserved or given twice",
                fix="list each class once, e.g. --classes gun,knife",
            )
        names.append(name)
    if len(names) < 2 or len(names) > 255:
        raise ConfigError(f"--classes gives {len(names) - 1} classes; between 1 and 254 are possible")
    return names, {IGNORE_NAME: -1, **{name: i for i, name in enumerate(names)}}


def resolve_labels(
    shapes, label_to_index: Mapping[str, int], *, others, unknown_mode: str, key: str, warnings: list[str]
):
    """``(shapes, label -> index)`` after ``--classes``/``--others`` or ``--unknown`` dealt with
    labels the labels file does not list (warnings appended); DatasetError naming ``key`` for ``error``."""
    unknown = sorted({s.label for s in shapes} - set(label_to_index))
    mapping = label_to_index
    if unknown and others is not None:  # --classes: matched ignoring case, the rest are "others"
        folded = {name.casefold(): i for name, i in label_to_index.items() if i > 0}
        other = 0 if others == "background" else -1
        mapping = {**mapping, **{u: folded.get(u.strip().casefold(), other) for u in unknown}}
    elif unknown:
        listed = ", ".join(repr(u) for u in unknown)
        if unknown_mode == "skip":
            shapes = [s for s in shapes if s.label in mapping]
            warnings.append(f"skipped the shapes with unknown label(s) {listed}")
        elif unknown_mode == "background":
            mapping = {**mapping, **{u: 0 for u in unknown}}
            warnings.append(f"drew the shapes with unknown label(s) {listed} as background")
        else:
            raise DatasetError(f"unknown label(s) {listed}", path=key, fix="add them to the labels file")
    return shapes, mapping


def unknown_label_error(scans: list[Scan], known: set[str], labels_file: Path) -> DatasetError | None:
    """The error listing every label of ``scans`` missing from ``known`` and its files (None if none)."""
    users: dict[str, list[str]] = defaultdict(list)
    for scan in scans:
        for label in sorted(set(scan.labels) - known):
            users[label].append(scan.key)
    if not users:
        return None
    parts = []
    for label in sorted(users):
        files = users[label]
        shown = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
        parts.append(f"{label!r} in {shown}")
    return DatasetError(
        f"{len(users)} unknown label(s), nothing converted: " + "; ".join(parts),
        path=labels_file,
        fix="add them to the labels file, or pass --unknown skip (drop those shapes) or --unknown background",
    )


__all__ = ["class_subset", "read_labels", "resolve_labels", "unknown_label_error"]
