"""Engine files checked before a runtime reads them: one :class:`~xray_seg.core.errors.ModelError`
naming the file and the fix, never a runtime's traceback or a crash.

Three checks, cheapest first (docs/station.md, "Engines"):

1. **Digest.** ``xray-seg export`` records each engine file it wrote (``model*.tflite``,
   ``model*.onnx``, ``openvino/model*.{xml,bin}``) in ``export.json`` ``"engine_files"``:
   ``{path relative to the export folder: {"sha256", "bytes"}}``. A listed file whose size or
   SHA-256 differs (truncated, corrupted, or a ``model.onnx`` from another model copied in) is
   refused before any runtime opens it. A file the export did not list (an export from before
   the digests, a variant added by hand) is not refused for that; the next checks still hold.
2. **Structure.** A ``.tflite`` is walked as a flatbuffer in Python (:func:`check_tflite_file`)
   because the TFLite interpreter builds its model without the flatbuffer verifier: a truncated
   file crashed the process (SIGSEGV). A SavedModel folder needs a non-empty ``saved_model.pb``
   and ``variables/variables.index``.
3. **Shapes.** Once loaded, the engine's tile and class count are compared with
   ``export.json`` (:func:`check_engine_shapes`), so a file from another model that slipped
   past 1 (no digest) is refused by name instead of tiling scans wrongly.

Exceptions a runtime still raises while loading (ONNX Runtime's ``INVALID_PROTOBUF``,
OpenVINO's XML parser, TensorFlow's ``Wire format was corrupt``) are turned into the same one
line by :func:`runtime_load_error`.
"""

from __future__ import annotations

import struct
from pathlib import Path

from xray_seg.core.errors import ModelError
from xray_seg.inference.export_file import REEXPORT, file_sha256

ENGINE_FILE_PATTERNS = ("model*.tflite", "model*.onnx", "openvino/model*.xml", "openvino/model*.bin")
TFLITE_IDENTIFIER = b"TFL3"
REPLACE_FIX = f"copy the export folder again from where it was made, or {REEXPORT}"


def engine_file_digests(root: str | Path) -> dict:
    """``{relative path: {"sha256", "bytes"}}`` of every engine file in the export ``root`` (sorted)."""
    root = Path(root)
    files = sorted({p for pattern in ENGINE_FILE_PATTERNS for p in root.glob(pattern) if p.is_file()})
    return {p.relative_to(root).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size} for p in files}


def check_digest(file: str | Path, root: str | Path, metadata: dict) -> bool:
    """Refuse ``file`` if ``export.json`` lists it (module docstring, 1) with another size or
    SHA-256; True if it is listed and matches (the file export wrote), False if not listed."""
    file, root = Path(file), Path(root)
    try:
        rel = file.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return False
    entry = (metadata.get("engine_files") or {}).get(rel)
    if entry is None:
        return False
    size = file.stat().st_size
    if size != entry["bytes"]:
        problem = f"holds {size} bytes but export wrote {entry['bytes']} (truncated, corrupted or replaced)"
    elif file_sha256(file) != entry["sha256"]:
        problem = "is not the file export wrote: its SHA-256 differs from export.json's (corrupted, or another model's)"
    else:
        return True
    raise ModelError(problem, path=file, fix=REPLACE_FIX)


def _not_tflite(file: Path, why: str) -> ModelError:
    return ModelError(f"is not a valid TFLite model ({why})", path=file, fix=REPLACE_FIX)


def check_tflite_file(file: str | Path) -> tuple[list[int], list[int]] | None:
    """Walk ``file`` as a TFLite flatbuffer (module docstring, 2): the ``TFL3`` identifier at
    bytes 4..8, then every subgraph, tensor, operator and buffer in bounds, its indices valid.

    Returns the shapes of the first input and output tensor (for :func:`check_engine_shapes`
    before any interpreter reads the file). Uses the schema TensorFlow ships
    (``tensorflow.lite.python.schema_py_generated``); without it (a TensorFlow-free station)
    only the identifier is checked and None returned.
    """
    file = Path(file)
    data = file.read_bytes()
    if len(data) < 16 or data[4:8] != TFLITE_IDENTIFIER:
        raise _not_tflite(file, "no TFL3 identifier at bytes 4..8; a TFLite file starts with one")
    try:
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError:
        return None
    try:
        model = schema.Model.GetRootAs(data, 0)
        problem = _tflite_problem(model, len(data))
        if problem is None:
            graph = model.Subgraphs(0)
            tensors = [graph.Tensors(ends(0)) for ends in (graph.Inputs, graph.Outputs)]
            return [[int(t.Shape(i)) for i in range(t.ShapeLength())] for t in tensors]
    except (struct.error, IndexError, ValueError, TypeError, OverflowError, AttributeError):
        problem = "a table or vector lies outside the file"
    raise _not_tflite(file, problem)


def _vector_fits(table, field: int, elem_size: int, size: int) -> bool:
    """Whether the vector at vtable ``field`` of a flatbuffer table lies inside ``size`` bytes."""
    tab = table._tab
    offset = tab.Offset(field)
    if not offset:
        return True
    return tab.Vector(offset) + tab.VectorLen(offset) * elem_size <= size


def _tflite_problem(model, size: int) -> str | None:
    """What is out of bounds in a TFLite ``Model`` of ``size`` bytes, or None (fields: the TFLite schema)."""
    n_buffers, n_codes = model.BuffersLength(), model.OperatorCodesLength()
    if not model.SubgraphsLength():
        return "no subgraph"
    if not all(_vector_fits(model, field, 4, size) for field in (6, 8, 12)):
        return "a table vector runs past the end of the file"
    for i in range(n_buffers):
        buffer = model.Buffers(i)
        if not _vector_fits(buffer, 4, 1, size):
            return f"buffer {i} runs past the end of the file"
        if buffer.Offset() > 1 and buffer.Offset() + buffer.Size() > size:
            return f"buffer {i} lies past the end of the file"
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        n_tensors = graph.TensorsLength()
        for field in (4, 6, 8, 10):
            if not _vector_fits(graph, field, 4, size):
                return f"subgraph {g} runs past the end of the file"
        for t in range(n_tensors):
            tensor = graph.Tensors(t)
            if not _vector_fits(tensor, 4, 4, size) or not 0 <= tensor.Buffer() < max(n_buffers, 1):
                return f"tensor {t} of subgraph {g} is malformed"
        ends = [graph.Inputs(i) for i in range(graph.InputsLength())]
        ends += [graph.Outputs(i) for i in range(graph.OutputsLength())]
        if not ends or any(not 0 <= t < n_tensors for t in ends):
            return f"subgraph {g} names inputs or outputs it does not have"
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            if not (_vector_fits(op, 6, 4, size) and _vector_fits(op, 8, 4, size)):
                return f"operator {o} of subgraph {g} runs past the end of the file"
            used = [op.Inputs(i) for i in range(op.InputsLength())] + [op.Outputs(i) for i in range(op.OutputsLength())]
            if not 0 <= op.OpcodeIndex() < n_codes or any(not -1 <= t < n_tensors for t in used):
                return f"operator {o} of subgraph {g} names an operator code or tensor that does not exist"
    return None


def check_savedmodel_folder(folder: str | Path) -> None:
    """A SavedModel folder has a non-empty ``saved_model.pb`` and ``variables/variables.index``
    (every SavedModel ``xray-seg export`` writes, the optimised one included, keeps its weights there)."""
    folder = Path(folder)
    pb = folder / "saved_model.pb"
    if not pb.is_file() or pb.stat().st_size == 0:
        raise ModelError("the SavedModel has no saved_model.pb (or an empty one)", path=folder, fix=REPLACE_FIX)
    if not (folder / "variables" / "variables.index").is_file():
        raise ModelError(
            "the SavedModel has no variables/variables.index (its weights are missing)", path=folder, fix=REPLACE_FIX
        )


def load_savedmodel(folder: str | Path):
    """``tf.saved_model.load`` after :func:`check_savedmodel_folder`; a file TensorFlow cannot
    parse (a corrupt ``saved_model.pb`` or variables) is one :class:`ModelError`."""
    import tensorflow as tf

    check_savedmodel_folder(folder)
    try:
        return tf.saved_model.load(str(folder))
    except Exception as exc:  # TensorFlow raises OSError, DecodeError, ValueError, NotFoundError...
        raise runtime_load_error("TensorFlow", folder, exc) from None


def runtime_load_error(runtime: str, path: str | Path, exc: BaseException, weights: Path | None = None) -> ModelError:
    """One line for a runtime that could not load ``path`` (or its ``weights`` file): its message, whitespace folded."""
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    what = f"it or its weights {weights}" if weights is not None else "it"
    return ModelError(f"{runtime} cannot load {what} ({text})", path=path, fix=REPLACE_FIX)


def check_engine_shapes(path: str | Path, in_shape, out_shape, *, tile, classes: int | None) -> None:
    """Refuse an engine file whose input ``[B, h, w, 3]`` is not the export's tile ``(h, w)``
    or whose output ``[B, h, w, K]`` has not ``K = classes`` (``export.json``); a dynamic
    dimension (None, a name, -1) is not compared."""

    def dims(shape) -> list[int | None]:
        return [d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else None for d in list(shape or [])]

    got_in, got_out, fix = dims(in_shape), dims(out_shape), f"give one of the export's own model files, or {REEXPORT}"
    if len(got_in) == 4 and None not in got_in[1:3] and tuple(got_in[1:3]) != tuple(tile):
        raise ModelError(
            f"takes {got_in[1]}x{got_in[2]} tiles but this export's geometry (export.json) tiles scans at "
            f"{tile[0]}x{tile[1]}, so it is another model's file",
            path=path,
            fix=fix,
        )
    if classes and got_out and got_out[-1] is not None and got_out[-1] != classes:
        raise ModelError(
            f"outputs {got_out[-1]} classes but export.json names {classes}, so it is another model's file",
            path=path,
            fix=fix,
        )


_PROBE = """
import sys
import numpy as np
try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:
    import tensorflow as tf
    Interpreter = tf.lite.Interpreter
interpreter = Interpreter(model_path=sys.argv[1], num_threads=1)
interpreter.allocate_tensors()
for detail in interpreter.get_input_details():
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
interpreter.invoke()
"""


def probe_tflite_in_child(file: str | Path, timeout: float = 300.0) -> None:
    """Load ``file`` in a TFLite interpreter in a child process and invoke it once on zeros; a
    crash (the interpreter does not verify its flatbuffer) or an error there is a ModelError here.

    For a ``.tflite`` that ``export.json`` does not vouch for by digest (module docstring):
    the walk of :func:`check_tflite_file` bounds every offset but not every field's meaning.
    """
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(file)], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        raise _not_tflite(Path(file), f"the interpreter did not load it within {timeout:.0f} s") from None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise _not_tflite(Path(file), f"the TFLite interpreter crashed ({name}) reading it")
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()][-1:] or ["no message"]
        raise _not_tflite(Path(file), f"the TFLite interpreter refused it: {last[0][:300]}")
