"""Safe file output: atomic writes and refusal to overwrite.

Every output of xray-seg is written to a temporary file in the destination folder
and then renamed into place (``os.replace`` is atomic on POSIX), so an interrupted
run never leaves a partial file behind. Inputs are never opened for writing.

Data safety (docs/architecture.md, "Data safety"):

- Written files honour the umask (``0o666 & ~umask``, e.g. 0644 under umask 022), as
  Keras, TensorFlow and labelme2voc write them; ``mkstemp`` alone would leave 0600.
- Every output folder this tool creates holds a marker file, :data:`OUTPUT_MARKER`.
  ``--force`` replaces only a folder with that marker; a non-empty folder without it
  (the user's own files) is never deleted, whatever ``--force`` says.
- :func:`refuse_overlap` refuses an output folder that is, contains or lies inside an
  input, before anything is written or deleted.
- :func:`read_regular_file`: inputs are read only from regular files; a FIFO, a device
  (``/dev/zero``) or a symlink to one is refused instead of hanging or reading without
  bound. Symlinks to regular files are followed, also when they leave the input tree
  (the user put them there); ``imagePath`` values that leave it lexically are refused
  by the Labelme reader.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from xray_seg.core.errors import ConfigError, DatasetError, OutputExistsError, XraySegError

OUTPUT_MARKER = ".xray-seg-output"
"""Name of the marker file written into every output folder xray-seg creates."""

# ``atomic_path`` names its temporaries ".<name>.<random>.tmp<suffixes>" (mkstemp's random
# part is 8 characters of [a-z0-9_]); the sweeps remove only names of exactly this form.
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp(\.[A-Za-z0-9]+)*$")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permission bits for a new file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def is_temp_name(name: str) -> bool:
    """True for a temporary file name made by :func:`atomic_path` (and only such names)."""
    return bool(_TEMP_RE.match(name))


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
    os.chmod(tmp_path, file_mode())  # mkstemp makes 0600; honour the umask instead
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
    """Write ``text`` (UTF-8) to ``path`` atomically.

    File names that are not valid UTF-8 (decoded by Python with ``surrogateescape``) are
    written back as their original bytes instead of failing the write.
    """
    write_bytes_atomic(path, text.encode("utf-8", "surrogateescape"))


def write_json_atomic(path: str | Path, obj, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """The non-blank lines of a text file, stripped (class names, split lists, labels files)."""
    return [line.strip() for line in Path(path).read_text(encoding=encoding).splitlines() if line.strip()]


def _resolved(path: str | Path) -> Path:
    try:
        return Path(os.path.realpath(os.fspath(path)))
    except ValueError:  # an embedded NUL byte
        raise ConfigError(
            "the path contains a NUL byte", path=repr(str(path)), fix="remove the NUL from the path"
        ) from None


def refuse_overlap(out_dir: str | Path, inputs, what: str = "output folder", *, may_lie_inside=()) -> None:
    """Refuse an output folder that is, contains or lies inside any of ``inputs``.

    Checked on resolved paths (symlinks followed) before anything is written or deleted,
    whatever ``--force`` says, so that replacing the output can never delete an input.
    ``may_lie_inside`` are inputs the output may sit inside (a run folder holding its
    ``eval-val/``): the output still may not be or contain them.
    """
    out = _resolved(out_dir)
    nested_ok = {_resolved(p) for p in may_lie_inside if p is not None}
    for item in [*inputs, *may_lie_inside]:
        if item is None or str(item) == "":
            continue
        src = _resolved(item)
        if out == src:
            problem = f"the {what} is the input {item}"
        elif src.is_relative_to(out):
            problem = f"the {what} contains the input {item}"
        elif out.is_relative_to(src) and src not in nested_ok:
            problem = f"the {what} lies inside the input {item}"
        else:
            continue
        raise ConfigError(
            f"{problem}; replacing or filling it would destroy or mix with the input",
            path=out_dir,
            fix=f"choose a {what} outside every input",
        )


def has_marker(path: str | Path) -> bool:
    """True if ``path`` is a folder that xray-seg created (it holds :data:`OUTPUT_MARKER`)."""
    return (Path(path) / OUTPUT_MARKER).is_file()


def marker_owner(path: str | Path) -> str | None:
    """The command named in a folder's marker (``"demo"``, ``"train"``...), else None."""
    try:
        text = (Path(path) / OUTPUT_MARKER).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    first = text.split("\n", 1)[0].strip()
    return first.removeprefix("xray-seg ").split(" ", 1)[0] or None


def write_marker(path: str | Path, owner: str = "output") -> None:
    """Mark ``path`` as a folder xray-seg created, so that ``--force`` may replace it later."""
    write_text_atomic(
        Path(path) / OUTPUT_MARKER,
        f"xray-seg {owner}\nThis folder was written by xray-seg; `--force` may delete and rewrite it.\n",
    )


def prepare_output_dir(
    path: str | Path,
    *,
    force: bool = False,
    resume: bool = False,
    inputs=(),
    owner: str = "output",
    may_lie_inside=(),
    dry_run: bool = False,
    resume_flag: str | None = None,
) -> Path:
    """Create ``path`` for a new output, refusing to clobber an existing one.

    An existing non-empty folder is an error unless ``resume`` (keep it and add
    to it) or ``force`` (delete it and start again). ``force`` deletes only a folder
    that xray-seg made (it holds :data:`OUTPUT_MARKER`); a foreign folder or a file is
    refused. ``inputs`` (and ``may_lie_inside``) are checked with :func:`refuse_overlap`
    first. The new folder gets the marker, naming ``owner``. ``dry_run`` only checks
    (to refuse before slow work), touching nothing. ``resume_flag`` names the command's
    resume option for the message (commands without one are not told to use it).
    """
    path = Path(path)
    refuse_overlap(path, inputs, may_lie_inside=may_lie_inside)
    resume_hint = f" (or {resume_flag} to add to it)" if resume_flag else ""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if resume:
            return path
        if not force:
            raise OutputExistsError(
                "output already exists",
                path=path,
                fix=f"choose another output, or pass --force to replace it{resume_hint}",
            )
        if not path.is_dir() or not has_marker(path):
            kind = "folder" if path.is_dir() else "file, not a folder"
            raise OutputExistsError(
                f"output is an existing {kind} that xray-seg did not create (no {OUTPUT_MARKER} marker), "
                "so --force will not delete it",
                path=path,
                fix="choose another output, or move or delete it yourself if it holds nothing you need",
            )
        if dry_run:
            return path
        shutil.rmtree(path)
    if dry_run:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
        write_marker(path, owner)
    except OSError as exc:
        raise XraySegError(
            f"cannot write to the output folder ({exc.strerror or exc})",
            path=path,
            fix="choose a folder you can write to, or fix its permissions",
        ) from None
    return path


def swap_into_place(staging: str | Path, path: str | Path) -> None:
    """Put the complete folder ``staging`` at ``path`` (beside it), replacing an existing ``path``.

    The caller has checked that ``path`` may be replaced (:func:`prepare_output_dir` with
    ``dry_run``). The old folder is renamed aside first and deleted only after the new one
    is in place, so ``path`` always holds a whole output, never a half-deleted one.
    """
    staging, path = Path(staging), Path(path)
    if path.is_dir() and not path.is_symlink() and any(path.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=".tmp", dir=path.parent))
        os.replace(path, old / "old")
        os.replace(staging, path)
        shutil.rmtree(old)
        return
    os.replace(staging, path)


def sweep_temp_files(folder: str | Path) -> int:
    """Delete this tool's orphaned temporary files (:func:`is_temp_name`) under ``folder``.

    A kill during an atomic write (e.g. of ``checkpoints/last.weights.h5``) leaves its
    temporary behind; only names of exactly that form are removed. Returns the count.
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    count = 0
    for path in root.rglob(".*"):
        if is_temp_name(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            count += 1
    return count


# Folders and files of a VOC dataset (conversion/voc.py, conversion/convert.py, conversion/resume.py).
_VOC_FOLDERS = {
    "JPEGImages",
    "SegmentationClass",
    "SegmentationObject",
    "SegmentationClassNpy",
    "SegmentationClassVisualization",
    "ImageSets",
}
_VOC_FILES = {"class_names.txt", "convert_config.yaml", "convert_report.txt", "convert_inputs.json", OUTPUT_MARKER}


def prepare_output_file(
    path: str | Path, *, force: bool = False, inputs=(), dataset=None, what: str = "--out file"
) -> Path:
    """Check an output *file* before any work (the file counterpart of :func:`prepare_output_dir`).

    Refused, whatever ``--force`` says: a folder (one line: name a file instead), something
    that is not a regular file (a FIFO, a device), a path that is, contains or lies inside
    any of ``inputs``, and one of the files or folders of the VOC folder ``dataset``
    (:func:`refuse_dataset_file`; a file of one's own beside them is allowed). An existing
    file is refused unless ``force``. The file is then written with the atomic writers here.
    """
    path = Path(path)
    if dataset is not None:
        refuse_dataset_file(path, dataset, what)
    out = _resolved(path)
    for item in inputs:
        if item is None or str(item) == "":
            continue
        src = _resolved(item)
        if out == src or out.is_relative_to(src) or src.is_relative_to(out):
            raise ConfigError(
                f"the {what} is, contains or lies inside the input {item}; writing it would overwrite an input",
                path=path,
                fix=f"choose a {what} outside every input",
            )
    if path.is_dir():
        raise OutputExistsError(
            f"the {what} is an existing folder", path=path, fix=f"name a file, e.g. {path / ('out' + path.suffix)}"
        )
    if path.exists() and not path.is_file():
        raise OutputExistsError(f"the {what} exists and is not a regular file", path=path, fix=f"choose another {what}")
    if path.exists() and not force:
        raise OutputExistsError("output already exists", path=path, fix=f"choose another {what} or pass --force")
    return path


def refuse_dataset_file(out_file: str | Path, voc_dir: str | Path, what: str = "output file") -> None:
    """Refuse an output file that is the dataset folder or one of its own files or folders.

    A file of one's own (``class_weights.json``, ``batch.png``) may sit in the VOC folder;
    the images, masks, split lists and ``class_names.txt`` may never be overwritten.
    """
    out, root = _resolved(out_file), _resolved(voc_dir)
    if out == root or root.is_relative_to(out):
        raise ConfigError(
            f"the {what} is or contains the dataset {voc_dir}", path=out_file, fix=f"choose another {what}"
        )
    if out.is_relative_to(root):
        parts = out.relative_to(root).parts
        if parts[0] in _VOC_FOLDERS or (len(parts) == 1 and parts[0] in _VOC_FILES):
            raise ConfigError(
                f"the {what} would overwrite a file of the dataset {voc_dir}",
                path=out_file,
                fix=f"choose a {what} outside the dataset's own folders and files",
            )


def open_regular(path: str | Path, what: str = "image") -> BinaryIO:
    """``path`` opened for reading if it is a regular file (symlinks followed), else DatasetError.

    Opened with ``O_NONBLOCK``, so a FIFO cannot hang the call; ``fstat`` on the open file
    refuses FIFOs, devices (``/dev/zero``) and folders, with no race between check and read.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DatasetError(f"{what} not found", path=path, fix="check the path") from None
    except ValueError:
        raise DatasetError(
            f"the {what} path contains a NUL byte", path=repr(str(path)), fix="rename the file"
        ) from None
    except OSError as exc:
        raise DatasetError(
            f"cannot open the {what} ({exc.strerror or exc})", path=path, fix="check its permissions"
        ) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a folder"
            if stat.S_ISDIR(mode)
            else "not a regular file"
        )
        raise DatasetError(
            f"{what} is {kind}; only regular files are read", path=path, fix=f"point at a regular {what} file"
        )
    return os.fdopen(fd, "rb")


def read_regular_file(path: str | Path, what: str = "file") -> bytes:
    """The bytes of ``path`` if it is a regular file (symlinks followed), else DatasetError
    (:func:`open_regular`: a FIFO cannot hang the call, devices and folders are refused)."""
    with open_regular(path, what) as f:
        return f.read()
