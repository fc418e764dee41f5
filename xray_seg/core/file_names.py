"""Input file names that cannot become output names: stems a VOC dataset cannot list, and
inputs that would write the same output names (docs/data_safety.md)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from xray_seg.core.errors import DatasetError


def bad_stem_reason(stem: str) -> str | None:
    """Why a file stem cannot be a VOC stem (one line per ``ImageSets`` entry), or None."""
    try:
        stem.encode("utf-8")
    except UnicodeEncodeError:
        return f"file name {stem.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8, so it cannot be listed in the split files"
    if stem != stem.strip():
        return f"file name {stem!r} starts or ends with spaces, which the split files cannot keep"
    if any(unicodedata.category(ch) == "Cc" for ch in stem):
        return f"file name {stem!r} holds a control character (newline, tab...), which the split files cannot keep"
    return None


def output_name_collisions(paths, key=lambda p: Path(p).stem) -> dict[str, list[Path]]:
    """Groups of distinct inputs that would write the same output names (compared ignoring case)."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(key(path).casefold(), []).append(Path(path))
    return {name: group for name, group in groups.items() if len(group) > 1}


def collision_error(collisions: dict[str, list[Path]], fix: str) -> DatasetError:
    shown = "; ".join(", ".join(str(p) for p in group) for group in list(collisions.values())[:10])
    more = f" and {len(collisions) - 10} more group(s)" if len(collisions) > 10 else ""
    return DatasetError(
        f"{sum(len(g) for g in collisions.values())} inputs would write the same output names "
        f"(stems compared ignoring case): {shown}{more}; nothing was written",
        fix=fix,
    )
