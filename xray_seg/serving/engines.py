"""Station engines: one exported model, any runtime, the one geometry rule on the host.

docs/station.md ("Engines") and docs/architecture.md ("Geometry: how a scan reaches the
network") describe what a station runs. Every engine is a :class:`TileEngine`: a loaded
model that maps **tiles** of the export's fixed tile size ``(h0, w0)`` to softmax
probabilities. :func:`scan_probabilities` brings a scan of any size to it by the one
geometry rule, through the same numpy code that ``predict`` and ``evaluate`` use
(:func:`xray_seg.inference.tta.predict_probabilities`), so the tiling is written once.

===========================  =================================================================
engine                       what it loads (``OUT`` is an ``xray-seg export`` folder)
===========================  =================================================================
``keras``                    a run folder or ``.keras`` file (or the ``source`` an export names)
``savedmodel``               ``OUT/savedmodel``: ``serve_tiles`` fed exact tiles (an older export
                             without it: ``serving_default``)
``savedmodel_optimized``     ``OUT/savedmodel_optimized`` (same signatures, optimised graph)
``tflite``                   ``OUT/model_<variant>.tflite`` (default ``float32``): uint8 tile
                             -> probabilities (quantised in/out tensors are (de)quantised)
``onnx``                     ``OUT/model[_<variant>].onnx``: float32 pixels -> logits, run by
                             ONNX Runtime (all graph optimisations, one thread per core)
``openvino``                 ``OUT/openvino/model[_<variant>].xml`` if exported, else the ONNX
                             file read by OpenVINO; compiled for the CPU
===========================  =================================================================

The ``onnx`` and ``openvino`` engines import neither TensorFlow nor Keras: a station with
only ONNX Runtime or OpenVINO (plus numpy) runs them. The export's metadata (class names,
geometry, alarm rule) is read from ``OUT/savedmodel/export.json`` or, for an export without
a SavedModel, from ``OUT/manifest.json`` (``"export"``).
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xray_seg.core.errors import ModelError, XraySegError
from xray_seg.core.viz import voc_palette
from xray_seg.inference.engine_files import (
    check_digest,
    check_engine_shapes,
    check_savedmodel_folder,
    check_tflite_file,
    load_savedmodel,
    probe_tflite_in_child,
    runtime_load_error,
)
from xray_seg.inference.export_file import REEXPORT, export_source_file, read_export_json, validate_export_metadata
from xray_seg.inference.geometry import ScanGeometry, geometry_for
from xray_seg.inference.loader import TILES_SIGNATURE, LoadedModel, load_for_inference, tile_signature
from xray_seg.inference.tta import predict_probabilities, softmax

ENGINES = ("keras", "savedmodel", "savedmodel_optimized", "tflite", "onnx", "openvino")

#: The Python package each engine needs (import name, pip name).
ENGINE_PACKAGES = {
    "keras": ("keras", "keras (and tensorflow)"),
    "savedmodel": ("tensorflow", "tensorflow"),
    "savedmodel_optimized": ("tensorflow", "tensorflow"),
    "tflite": ("tensorflow", "tensorflow (or ai-edge-litert)"),
    "onnx": ("onnxruntime", "onnxruntime"),
    "openvino": ("openvino", "openvino"),
}

#: The ``xray-seg export --format`` that writes each engine's file.
ENGINE_FORMATS = {
    "savedmodel": "savedmodel",
    "savedmodel_optimized": "savedmodel_optimized",
    "tflite": "tflite",
    "onnx": "onnx",
    "openvino": "openvino",
}

SAVEDMODEL_DIR = "savedmodel"
OPTIMIZED_DIR = "savedmodel_optimized"
OPENVINO_DIR = "openvino"


class EngineError(XraySegError):
    """An engine that cannot run here: its file is missing from the export or its package is not installed."""


def cpu_threads() -> int:
    """Threads for an engine's intra-op pool: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def as_uint8(tiles: np.ndarray) -> np.ndarray:
    """Pixels 0..255 (any dtype) as uint8, rounded and clipped."""
    tiles = np.asarray(tiles)
    if tiles.dtype == np.uint8:
        return tiles
    return np.clip(np.rint(tiles), 0, 255).astype(np.uint8)


class TileEngine:
    """One loaded model that maps tiles to probabilities (module docstring).

    Attributes:
        name: what is loaded, e.g. ``"onnx"`` or ``"tflite:model_int8_dynamic.tflite"``.
        tile: the fixed tile ``(h, w)`` it takes, from the export's geometry.
        path: the file or folder it was loaded from.
    """

    name: str
    tile: tuple[int, int]
    path: Path

    def __init__(self, name: str, tile, path):
        self.name = name
        self.tile = (int(tile[0]), int(tile[1]))
        self.path = Path(path)

    def probabilities(self, tiles: np.ndarray) -> np.ndarray:
        """uint8 or float32 ``[B, h, w, 3]`` pixels 0..255 -> float32 softmax ``[B, h, w, K]``."""
        tiles = np.asarray(tiles)
        if tiles.ndim != 4 or tuple(tiles.shape[1:3]) != self.tile or tiles.shape[-1] != 3:
            raise ModelError(
                f"the {self.name} engine takes tiles [B, {self.tile[0]}, {self.tile[1]}, 3], got {tiles.shape}",
                path=self.path,
                fix="tile the scan with scan_probabilities (the export's geometry rule)",
            )
        if len(tiles) == 0:
            raise ModelError(f"the {self.name} engine got an empty batch of tiles", path=self.path)
        return np.ascontiguousarray(self._probabilities(tiles), dtype=np.float32)

    def _probabilities(self, tiles: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """Log-probabilities ``[B, h, w, K]``: a logits function for code that takes the softmax itself."""
        return np.log(np.maximum(self.probabilities(tiles), 1e-12))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, tile={self.tile}, path={str(self.path)!r})"


# ----------------------------------------------------------------------------- the export folder


@dataclass
class ExportInfo:
    """An export folder and what its metadata says (``export.json``)."""

    root: Path
    metadata: dict

    @property
    def tile(self) -> tuple[int, int]:
        geometry = self.metadata.get("geometry") or {}
        size = geometry.get("tile") or self.metadata.get("input_size")
        if not size:
            raise ModelError(
                "the export's metadata names no tile size",
                path=self.root,
                fix="give a folder written by `xray-seg export`",
            )
        return int(size[0]), int(size[1])

    @property
    def geometry(self):
        """The export's :class:`~xray_seg.inference.geometry.ScanGeometry`."""
        data = self.metadata.get("geometry")
        return ScanGeometry.from_dict(data) if data else ScanGeometry(tile=self.tile)

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.get("class_names") or [])


def read_export(path) -> ExportInfo:
    """The export folder ``path`` names (``OUT``, ``OUT/savedmodel`` or a file in ``OUT``) and its metadata."""
    path = Path(path)
    root = path.parent if path.is_file() else path
    if (root / "saved_model.pb").is_file() and root.name in (SAVEDMODEL_DIR, OPTIMIZED_DIR):
        root = root.parent
    if root.name == OPENVINO_DIR and not (root / "manifest.json").is_file():
        root = root.parent
    candidates = [root / SAVEDMODEL_DIR / "export.json", root / OPTIMIZED_DIR / "export.json", root / "export.json"]
    for file in candidates:
        if file.is_file():
            return ExportInfo(root, read_export_json(file))
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelError("manifest.json is not valid JSON", path=manifest, fix=REEXPORT) from None
        if isinstance(data, dict) and isinstance(data.get("export"), dict):
            return ExportInfo(root, validate_export_metadata(data["export"], manifest))
    if not path.exists():
        raise ModelError("not found", path=path, fix="give the folder written by `xray-seg export --out OUT`")
    raise ModelError(
        "not an export folder (no savedmodel/export.json and no manifest.json)",
        path=root,
        fix="give the folder written by `xray-seg export --out OUT`",
    )


def missing_file_error(engine: str, file: Path, root: Path, detail: str = "") -> EngineError:
    """The one-line error for an engine whose file the export ``root`` lacks: the file and the export that writes it."""
    fmt = ENGINE_FORMATS.get(engine, engine)
    return EngineError(
        f"the {engine} engine needs {file.relative_to(root) if file.is_relative_to(root) else file.name}, "
        f"which this export does not have{detail}",
        path=file,
        fix=f"export the run again with `xray-seg export RUN --out {root} --format savedmodel,{fmt} --force` "
        f"(or into a new --out folder)",
    )


def require_package(engine: str):
    """Import the package ``engine`` needs, or raise one clear :class:`EngineError`."""
    module, pip_name = ENGINE_PACKAGES[engine]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EngineError(
            f"the {engine} engine needs the Python package {pip_name}, which is not installed here ({exc})",
            fix=f"pip install {pip_name.split()[0]}, or choose another --engine ({', '.join(ENGINES)})",
        ) from None


# ----------------------------------------------------------------------------- the engines


class KerasEngine(TileEngine):
    """The Keras model itself (a run folder or ``.keras`` file), tiles in float32."""

    def __init__(self, path):
        require_package("keras")

        self.loaded = load_for_inference(path)
        geometry = geometry_for(self.loaded)
        if geometry is None:
            raise ModelError(
                "the model takes any size and no training size is known, so it has no tile",
                path=self.loaded.source,
                fix="give a run folder (its config.yaml names the training size)",
            )
        super().__init__("keras", geometry.tile, self.loaded.source)

    def _probabilities(self, tiles):
        return softmax(self.loaded.logits_fn(np.asarray(tiles, dtype=np.float32)))


class SavedModelEngine(TileEngine):
    """A SavedModel fed exact uint8 tiles: its ``serve_tiles`` signature (probabilities only), or
    for an export written before it, ``serving_default``'s one-forward-pass path (the same
    probabilities, plus a class map and an alarm that are thrown away). ``signature`` names the one used."""

    def __init__(self, folder: Path, tile, name: str, *, classes: int | None = None):
        require_package(name)
        import tensorflow as tf  # lazy: the onnx and openvino engines run without TensorFlow

        self._tf = tf
        self._loaded = load_savedmodel(folder)
        if "serving_default" not in self._loaded.signatures:
            raise ModelError("the SavedModel has no serving_default signature", path=folder, fix=REEXPORT)
        tiles = tile_signature(self._loaded)
        self.signature = "serving_default" if tiles is None else TILES_SIGNATURE
        self._serve = self._loaded.signatures[self.signature]
        images = self._serve.structured_input_signature[1]["images"]
        probs = self._serve.structured_outputs.get("probabilities")
        check_engine_shapes(folder, images.shape, None if probs is None else probs.shape, tile=tile, classes=classes)
        super().__init__(name, tile, folder)

    def _probabilities(self, tiles):
        out = self._serve(images=self._tf.constant(as_uint8(tiles)))
        return out["probabilities"].numpy()


class TFLiteEngine(TileEngine):
    """A ``.tflite`` file: one tile per invoke; quantised input/output tensors are (de)quantised."""

    def __init__(self, file: Path, *, tile=None, classes: int | None = None):
        try:
            self.interpreter = make_tflite_interpreter(file)
        except (ValueError, RuntimeError, UnicodeDecodeError) as exc:
            raise runtime_load_error("TFLite", file, exc) from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        shape = self._input["shape"]
        if tile is not None:
            check_engine_shapes(file, list(shape), list(self._output["shape"]), tile=tile, classes=classes)
        super().__init__(f"tflite:{file.name}", (int(shape[1]), int(shape[2])), file)

    def _feed(self, tile: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        scale, zero = self._input.get("quantization", (0.0, 0))
        if np.issubdtype(dtype, np.integer) and scale:  # a quantised input tensor
            info = np.iinfo(dtype)
            return np.clip(np.rint(tile / scale + zero), info.min, info.max).astype(dtype)[None]
        if dtype == np.uint8:
            return as_uint8(tile)[None]
        return np.asarray(tile, dtype=dtype)[None]

    def _read(self) -> np.ndarray:
        out = np.array(self.interpreter.get_tensor(self._output["index"]))
        scale, zero = self._output.get("quantization", (0.0, 0))
        if np.issubdtype(out.dtype, np.integer) and scale:
            out = (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)

    def _probabilities(self, tiles):
        outs = []
        for tile in np.asarray(tiles):
            self.interpreter.set_tensor(self._input["index"], self._feed(tile))
            self.interpreter.invoke()
            outs.append(self._read()[0])
        return np.stack(outs)


def make_tflite_interpreter(file: Path, num_threads: int | None = None):
    """``ai_edge_litert``'s Interpreter where installed, else ``tf.lite.Interpreter``; tensors allocated."""
    threads = num_threads or cpu_threads()
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        tf = require_package("tflite")
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated"
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_path=str(file), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


class OnnxEngine(TileEngine):
    """An ONNX file (float32 pixels -> logits) in ONNX Runtime: ``ORT_ENABLE_ALL``, one thread per core."""

    def __init__(self, file: Path, tile, *, threads: int | None = None, classes: int | None = None):
        ort = require_package("onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(file), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's InvalidProtobuf, Fail, InvalidGraph... share no base
            raise runtime_load_error("ONNX Runtime", file, exc) from None
        first = self.session.get_inputs()[0]
        check_engine_shapes(file, first.shape, self.session.get_outputs()[0].shape, tile=tile, classes=classes)
        self._input_name = first.name
        self._input_dtype = np.uint8 if "uint8" in first.type else np.float32
        super().__init__("onnx" if file.name == "model.onnx" else f"onnx:{file.name}", tile, file)

    def _probabilities(self, tiles):
        feed = as_uint8(tiles) if self._input_dtype == np.uint8 else np.asarray(tiles, dtype=np.float32)
        logits = self.session.run(None, {self._input_name: feed})[0]
        return softmax(logits)


class OpenVINOEngine(TileEngine):
    """An OpenVINO IR (``.xml``) or the ONNX file, read by OpenVINO and compiled for the CPU
    with a static ``[1, h0, w0, 3]`` input, the latency hint and f32 precision
    (``precision="bf16"`` lets AMX/AVX512-BF16 CPUs run bf16); logits -> softmax."""

    def __init__(
        self, file: Path, tile, *, threads: int | None = None, precision: str = "f32", classes: int | None = None
    ):
        ov = require_package("openvino")
        core = ov.Core()
        weights = file.with_suffix(".bin") if file.suffix == ".xml" else None
        try:
            model = core.read_model(str(file))
        except Exception as exc:  # OpenVINO raises RuntimeError (XML parser, "Incorrect weights in bin file")
            raise runtime_load_error("OpenVINO", file, exc, weights) from None
        shapes = [
            [d.get_length() if d.is_static else None for d in port.partial_shape]
            for port in (model.inputs[0], model.outputs[0])
        ]
        check_engine_shapes(file, *shapes, tile=tile, classes=classes)
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(threads or cpu_threads()),
            # f32, not the CPU plugin's default bf16 on AVX512-BF16/AMX machines (argmax parity).
            "INFERENCE_PRECISION_HINT": precision,
        }
        try:
            model.reshape({model.inputs[0].get_any_name(): [1, int(tile[0]), int(tile[1]), 3]})
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise runtime_load_error("OpenVINO", file, exc, weights) from None
        self.request = self.compiled.create_infer_request()
        self._output = self.compiled.outputs[0]
        name = "openvino" if file.stem == "model" else f"openvino:{file.name}"
        super().__init__(name, tile, file)

    def _probabilities(self, tiles):
        outs = []
        for tile in np.asarray(tiles, dtype=np.float32):
            result = self.request.infer({0: np.ascontiguousarray(tile[None])})
            outs.append(np.asarray(result[self._output])[0])
        return softmax(np.stack(outs))


# ----------------------------------------------------------------------------- loading


def _variant_file(root: Path, stem: str, suffix: str, variant: str | None) -> Path:
    """``root/<stem><suffix>`` for no variant; ``root/<stem>_<variant><suffix>``, or a file name as given."""
    if variant is None:
        return root / f"{stem}{suffix}"
    if variant.endswith(suffix):
        return root / variant
    return root / f"{stem}_{variant}{suffix}"


def _engine_file(info: ExportInfo, given: Path, engine: str, variant: str | None) -> Path:
    """The file or folder in the export that ``engine`` (and ``variant``) loads."""
    if given.is_file() or (engine.startswith("savedmodel") and (given / "saved_model.pb").is_file()):
        return given  # the file or SavedModel folder itself
    root = info.root
    if engine == "savedmodel":
        return root / SAVEDMODEL_DIR
    if engine == "savedmodel_optimized":
        return root / OPTIMIZED_DIR
    if engine == "tflite":
        return _variant_file(root, "model", ".tflite", variant or "float32")
    if engine == "onnx":
        return _variant_file(root, "model", ".onnx", variant)
    ir = _variant_file(root / OPENVINO_DIR, "model", ".xml", variant)
    return ir if ir.is_file() else _variant_file(root, "model", ".onnx", variant)


def _check_present(engine: str, file: Path, root: Path, variant: str | None) -> None:
    if engine.startswith("savedmodel"):
        if not (file / "saved_model.pb").is_file():
            raise missing_file_error(engine, file / "saved_model.pb", root)
    elif not file.is_file():
        if engine == "openvino":
            ir = _variant_file(root / OPENVINO_DIR, "model", ".xml", variant)
            raise missing_file_error(engine, file, root, f" (nor {OPENVINO_DIR}/{ir.name})")
        raise missing_file_error(engine, file, root)


def load_engine(export_dir_or_file, engine: str, *, variant: str | None = None, probe: bool = True) -> TileEngine:
    """Load ``engine`` from an export folder (or one of its files; a run folder or ``.keras`` for ``keras``).

    ``variant`` picks a file: for ``tflite`` ``float32`` (default), ``float16``,
    ``int8_dynamic`` or any ``model_<variant>.tflite`` / file name in the export; for
    ``onnx``/``openvino`` ``model_<variant>.onnx`` (default ``model.onnx``).

    The engine's file is checked before its runtime reads it (:func:`check_engine_file`);
    ``probe=False`` skips the child-process trial of a ``.tflite`` that ``export.json`` does not
    list (for the int8 gate of an export, which has just written the file).

    Raises:
        EngineError: an unknown engine, its file missing from the export (naming the file and
            the ``xray-seg export --format`` that writes it) or its package not installed.
        ModelError: an engine file that is corrupt, truncated or another model's.
    """
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}", fix=f"use one of {', '.join(ENGINES)}")
    given = Path(export_dir_or_file)
    if engine == "keras":
        return KerasEngine(_keras_path(given))
    info = read_export(given)
    file = _engine_file(info, given, engine, variant)
    _check_present(engine, file, info.root, variant)
    check_engine_file(engine, file, info, probe=probe)
    classes = len(info.class_names) or None
    if engine in ("savedmodel", "savedmodel_optimized"):
        return SavedModelEngine(file, info.tile, engine, classes=classes)
    if engine == "tflite":
        return TFLiteEngine(file, tile=info.tile, classes=classes)
    if engine == "onnx":
        return OnnxEngine(file, info.tile, classes=classes)
    return OpenVINOEngine(file, info.tile, classes=classes)


def check_engine_file(engine: str, file: Path, info: ExportInfo, *, probe: bool = True) -> None:
    """The checks made before a runtime reads an engine file (:mod:`xray_seg.inference.engine_files`):
    its digest in ``export.json``, then its structure; a ``.tflite`` that ``export.json`` does not
    vouch for is also tried in a child process (``probe``), as its interpreter may crash on it."""
    if engine.startswith("savedmodel"):
        check_savedmodel_folder(file)
        return
    files = [file, file.with_suffix(".bin")] if file.suffix == ".xml" else [file]
    if not files[-1].is_file():
        raise missing_file_error(engine, files[-1], info.root, f" (the weights of {file.name})")
    vouched = all([check_digest(f, info.root, info.metadata) for f in files])
    if engine == "tflite":
        shapes = check_tflite_file(file)
        if shapes is not None:
            check_engine_shapes(file, *shapes, tile=info.tile, classes=len(info.class_names) or None)
        if probe and not vouched:
            probe_tflite_in_child(file)


def _keras_path(given: Path) -> Path:
    """A run folder or ``.keras`` file as given, or the ``source`` an export folder names."""
    if given.suffix == ".keras" or (given / "best_model.keras").is_file():
        return given
    info = read_export(given)
    files = [info.root / SAVEDMODEL_DIR / "export.json", info.root / OPTIMIZED_DIR / "export.json"]
    return export_source_file(info.metadata, next((f for f in files if f.is_file()), info.root / "manifest.json"))


# ----------------------------------------------------------------------------- a scan of any size


def scan_probabilities(engine: TileEngine, image: np.ndarray, geometry=None, *, tta=None, batch_size: int = 4):
    """Softmax probabilities ``[H, W, K]`` of one scan ``[H, W, 3]`` of any size through ``engine``.

    The one geometry rule (scale, pad, tiles, blend: docs/architecture.md) by
    :func:`xray_seg.inference.tta.predict_probabilities`; ``geometry`` defaults to tiles of
    the engine's size at native resolution (pass the export's, :attr:`ExportInfo.geometry`).
    ``tta``: a :class:`~xray_seg.inference.tta_options.TTAOptions` (None: none).
    """
    geometry = geometry or ScanGeometry(tile=engine.tile)
    kwargs = tta.as_kwargs() if tta is not None else {}
    kwargs.setdefault("batch_size", batch_size)
    return predict_probabilities(engine, image, geometry=geometry, input_size=engine.tile, **kwargs)


def scan_class_map(engine: TileEngine, image: np.ndarray, geometry=None, **kwargs) -> np.ndarray:
    """uint8 class map ``[H, W]``: the argmax of :func:`scan_probabilities` (same arguments)."""
    return scan_probabilities(engine, image, geometry, **kwargs).argmax(axis=-1).astype(np.uint8)


def load_engine_model(export_dir_or_file, engine: str, *, variant: str | None = None):
    """``engine`` as a :class:`~xray_seg.inference.loader.LoadedModel` that ``predict``, ``bench`` and
    :class:`~xray_seg.segmenter.Segmenter` use like any other: class names, palette,
    geometry and alarm rule from the export's metadata, the engine as its ``logits_fn``.

    ``keras`` loads the run folder or ``.keras`` file as the default loader does.
    """
    if engine == "keras":
        return load_for_inference(_keras_path(Path(export_dir_or_file)))
    tile_engine = load_engine(export_dir_or_file, engine, variant=variant)
    info = read_export(export_dir_or_file)
    names = info.class_names
    if not names:
        raise ModelError("the export's metadata names no classes", path=info.root, fix="export the run again")

    palette = info.metadata.get("palette") or voc_palette(len(names)).tolist()
    return LoadedModel(
        info.metadata.get("model_name") or tile_engine.name,
        list(names),
        tile_engine.tile,
        tile_engine,
        tile_engine.path,
        None,
        palette,
        tile_engine.tile,
        None,
        info.geometry,
        info.metadata.get("alarm"),
    )
