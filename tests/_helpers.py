"""Helpers shared by test files (importable as ``_helpers``: pytest puts ``tests/`` on ``sys.path``
for ``tests/conftest.py``). Fixtures live in the conftest files; plain functions and tables here."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

TESTS = Path(__file__).resolve().parent
BACKEND_WORKER = TESTS / "backends" / "backend_worker.py"

# Every registered model, small but complete (each block type built at least once), and the
# auxiliary heads it returns with ``aux=True``: () = accepted, logits alone; None = refused.
TINY_MODELS = {
    "cwf_deeplabv3plus": ({"width": 0.125}, ()),
    "deeplabv3plus": ({"width": 0.125, "middle_blocks": 2}, ()),
    "mobilenetv2_deeplabv3plus": ({"width": 0.25}, ()),
    "unet": ({"width": 0.0625}, None),
    "bisenetv2": ({"width": 0.125}, ("aux", "aux2", "aux3", "aux4")),
    "cyclenet": ({"width": 0.125, "backbone_blocks": (1, 1, 1, 1)}, ("aux",)),
    "ifbfnet": ({"width": 0.125, "backbone_blocks": (1, 1, 1, 1)}, ("aux",)),
}


def run_backend_worker(backend: str, task: str, folder: Path) -> dict:
    """Run ``backend_worker.py TASK FOLDER`` under Keras backend ``backend``; its last stdout line (JSON)."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, str(BACKEND_WORKER), task, str(folder)], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- models


def save_one_layer_model(folder: Path, class_names, input_shape=(None, None, 3), *, names_file: bool = True) -> Path:
    """``folder/model.keras``: a one-layer Keras model (a 1x1 convolution named ``head``, any input
    size unless ``input_shape`` fixes one) standing in for a trained one, with ``class_names.txt``
    beside it unless ``names_file`` is False."""
    import keras

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, keras.layers.Conv2D(len(class_names), 1, name="head")(inputs))
    path = folder / "model.keras"
    model.save(path)
    if names_file:
        (folder / "class_names.txt").write_text("\n".join(class_names) + "\n")
    return path


# ----------------------------------------------------------------------------- Labelme and images


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    """``arr`` encoded as PNG (``mode`` as PIL's ``Image.fromarray``)."""
    buf = io.BytesIO()
    (Image.fromarray(arr) if mode is None else Image.fromarray(arr, mode=mode)).save(buf, format="PNG")
    return buf.getvalue()


def rect(label: str = "knife", box=((2, 3), (12, 10))) -> dict:
    """A Labelme rectangle shape."""
    return {"label": label, "points": [list(p) for p in box], "shape_type": "rectangle", "group_id": None, "flags": {}}


def write_labels(folder: Path, *classes: str) -> Path:
    """``folder/labels.txt``: ``__ignore__``, ``_background_``, then ``classes``."""
    path = Path(folder) / "labels.txt"
    path.write_text("".join(f"{name}\n" for name in ("__ignore__", "_background_", *classes)))
    return path


# ----------------------------------------------------------------------------- Markdown

_FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(markdown: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, inside = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            inside = not inside
        elif not inside:
            lines.append(line)
    return lines
