"""Self-describing ``.keras`` files: an ``xray_seg.json`` entry inside the Keras zip.

A ``.keras`` file is a zip archive (``metadata.json``, ``config.json``,
``model.weights.h5``). xray-seg adds one more entry, ``xray_seg.json``, that says
what the model's outputs mean (mmsegmentation checkpoints carry their classes and
palette in the same way)::

    {"format_version": 1, "class_names": ["_background_", "gun", ...],
     "palette": [[0, 0, 0], [128, 0, 0], ...], "input_size": [512, 512],
     "model_name": "cwf_deeplabv3plus", "xray_seg_version": "0.1.0"}

``keras.saving.load_model`` ignores entries it does not know, so the file still loads
with plain Keras. :func:`xray_seg.inference.loader.resolve_source` reads the entry,
which makes ``class_names.txt`` beside the file optional; when both are present and
disagree, the entry inside the file wins (the names a model was saved with cannot be
separated from it). The layout of the run folder is in ``docs/architecture.md``.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import zipfile
from pathlib import Path

import yaml

from xray_seg.core.errors import ModelError
from xray_seg.core.version import __version__
from xray_seg.core.viz import voc_palette

METADATA_ENTRY = "xray_seg.json"
FORMAT_VERSION = 1
MAX_METADATA_BYTES = 1 << 20
"""Largest ``xray_seg.json`` entry read (its declared and its inflated size); real ones are a few KB."""


def model_metadata(class_names, input_size, model_name: str) -> dict:
    """The ``xray_seg.json`` dictionary for a model with these classes (VOC palette)."""
    names = [str(n) for n in class_names]
    return {
        "format_version": FORMAT_VERSION,
        "class_names": names,
        "palette": voc_palette(len(names)).tolist(),
        "input_size": [int(v) for v in input_size] if input_size else None,
        "model_name": str(model_name),
        "xray_seg_version": __version__,
    }


def run_model_metadata(run_dir: str | Path, model) -> dict:
    """Metadata of a model trained in ``run_dir``: ``class_names.txt`` and ``config.yaml`` there.

    The input size is the model's fixed input size, else the training ``data.image_size``.
    """
    run_dir = Path(run_dir)
    names = [ln.strip() for ln in (run_dir / "class_names.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
    config = {}
    if (run_dir / "config.yaml").is_file():
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    shape = tuple(model.input_shape)
    size = (shape[1], shape[2]) if shape[1] and shape[2] else (config.get("data") or {}).get("image_size")
    name = (config.get("model") or {}).get("name") or model.name
    return model_metadata(names, size, name)


def write_model_metadata(path: str | Path, meta: dict) -> None:
    """Add (or replace) the ``xray_seg.json`` entry of the ``.keras`` file ``path``, atomically.

    The archive is rewritten to a temporary file beside ``path`` and renamed onto it; the
    file keeps its permission bits (which honour the umask it was created under).
    """
    path = Path(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.keras", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                if info.filename != METADATA_ENTRY:
                    dst.writestr(info, src.read(info.filename))
            dst.writestr(METADATA_ENTRY, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_model_metadata(path: str | Path) -> dict | None:
    """The ``xray_seg.json`` entry of a ``.keras`` file, or None (no entry, not a zip, bad JSON).

    The entry is read only when its declared size is at most :data:`MAX_METADATA_BYTES`, and
    never more than that (a lying header or a deflate bomb is cut off); an oversized entry or
    non-string names are refused with one ModelError.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(METADATA_ENTRY)
            except KeyError:
                return None
            if info.file_size > MAX_METADATA_BYTES:
                raise _metadata_error(path, f"declares {info.file_size} bytes")
            with archive.open(info) as entry:
                raw = entry.read(MAX_METADATA_BYTES + 1)
            if len(raw) > MAX_METADATA_BYTES:
                raise _metadata_error(path, "inflates past its declared size")
            data = json.loads(raw.decode("utf-8"))
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    names = data.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) and n for n in names)):
        raise ModelError(
            f"{METADATA_ENTRY}: class_names must be a list of non-empty strings, got {str(names)[:80]}",
            path=path,
            fix="re-save the model with xray-seg, or give a .keras file written by xray-seg",
        )
    if data.get("model_name") is not None and not isinstance(data["model_name"], str):
        raise ModelError(
            f"{METADATA_ENTRY}: model_name must be a string, got {str(data['model_name'])[:80]}",
            path=path,
            fix="re-save the model with xray-seg, or give a .keras file written by xray-seg",
        )
    return data


def _metadata_error(path, what: str) -> ModelError:
    return ModelError(
        f"its {METADATA_ENTRY} entry {what}, over the bound of {MAX_METADATA_BYTES} bytes",
        path=path,
        fix="give a .keras file written by xray-seg (its metadata is a few KB)",
    )
