"""Safe file output: atomic writes and refusal to overwrite.

Every output of xray-seg is written to a temporary file in the destination folder
and then renamed into place (``os.replace`` is atomic on POSIX), so an interrupted
run never leaves a partial file behind. Inputs are never opened for writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from xray_seg.core.errors import OutputExistsError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file keeps the suffixes of ``path`` so that writers that infer the
    format from the extension (Pillow, OpenCV, numpy, Keras) behave as for ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep every suffix (".weights.h5", ".png"): some writers check the full ending.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{''.join(path.suffixes)}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """The non-blank lines of a text file, stripped (class names, split lists, labels files)."""
    return [line.strip() for line in Path(path).read_text(encoding=encoding).splitlines() if line.strip()]


def prepare_output_dir(path: str | Path, *, force: bool = False, resume: bool = False) -> Path:
    """Create ``path`` for a new output, refusing to clobber an existing one.

    An existing non-empty folder is an error unless ``resume`` (keep it and add
    to it) or ``force`` (delete it and start again) is given.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if resume:
            return path
        if not force:
            raise OutputExistsError(
                "output already exists",
                path=path,
                fix="choose another output, or pass --force to replace it (or --resume to add to it)",
            )
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path
