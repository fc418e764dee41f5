"""The one model loader: a run folder, a ``.keras`` file or an exported SavedModel.

Two steps, shared by inference (:class:`xray_seg.segmenter.Segmenter`,
evaluate, predict, bench) and export (:func:`xray_seg.serving.export_source.load_source`):

1. :func:`resolve_source` finds the model file and reads what describes it, each file
   once: ``config.yaml`` beside a ``.keras`` file (one YAML read), the ``xray_seg.json``
   entry inside it (:mod:`xray_seg.core.model_metadata`), or ``export.json`` beside a
   SavedModel's ``saved_model.pb``.
2. :func:`load_for_inference` loads it as a :class:`LoadedModel`, whose ``logits_fn``
   maps float32 pixels ``[B, H, W, 3]`` (0..255) to logits ``[B, H, W, K]``. For an
   exported SavedModel, whose signatures return probabilities (``serve_tiles`` for a batch
   of exact tiles, ``serving_default`` for anything else), the "logits" are ``log(p)``; softmax of them gives back ``p``, so test-time augmentation that averages
   probabilities treats every source alike.

Class names of a ``.keras`` model, first found wins: its ``xray_seg.json`` entry, the
names the caller passes, ``class_names.txt`` beside the file. A SavedModel's come from
``export.json``, else from its ``model_info`` signature (which also gives the input size
and model name). The run-folder layout is in ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.conversion.voc import read_class_names
from xray_seg.core.errors import ModelError
from xray_seg.core.model_metadata import read_model_metadata
from xray_seg.core.viz import voc_palette
from xray_seg.inference.engine_files import load_savedmodel
from xray_seg.inference.export_file import read_export_json
from xray_seg.inference.geometry import ScanGeometry
from xray_seg.models.outputs import logits_of
from xray_seg.models.registry import import_custom_objects

BEST_MODEL = "best_model.keras"
CLASS_NAMES_FILE = "class_names.txt"
CONFIG_FILE = "config.yaml"
INFERENCE_NAMES_FIX = "put class_names.txt beside it or pass the VOC folder's"
TILES_SIGNATURE = "serve_tiles"  # exact tiles -> probabilities (xray_seg.serving.signatures)


@dataclass
class ModelSource:
    """Where a model is, and what its files say about it, before the model itself is loaded."""

    path: Path  # as given
    kind: str  # "run", "keras" or "savedmodel"
    model_path: Path  # the .keras file or the SavedModel folder
    run_dir: Path | None = None
    config_file: Path | None = None  # config.yaml beside the .keras file, if present
    config: dict | None = None  # its parsed mapping; None when absent or not a YAML mapping
    metadata: dict = field(default_factory=dict)  # xray_seg.json (.keras) or export.json (SavedModel)

    @property
    def names_file(self) -> Path | None:
        beside = self.model_path.parent / CLASS_NAMES_FILE
        return beside if self.kind != "savedmodel" and beside.is_file() else None

    def config_section(self, name: str) -> dict:
        return (self.config or {}).get(name) or {}

    def trained_size(self) -> tuple[int, int] | None:
        """The training image size: the model's metadata, else ``config.yaml`` ``data.image_size``."""
        size = self.metadata.get("input_size") or self.config_section("data").get("image_size")
        return (int(size[0]), int(size[1])) if size else None


@dataclass
class LoadedModel:
    name: str
    class_names: list[str]
    input_size: tuple[int, int] | None  # the fixed (H, W) the model must be fed, if any
    logits_fn: Callable[[np.ndarray], np.ndarray]
    source: Path
    keras_model: object = None  # the Keras model, when there is one
    palette: list | None = None  # [K, 3] VOC colours of the classes
    trained_size: tuple[int, int] | None = None  # the (H, W) it was trained at, when known
    origin: ModelSource | None = None
    geometry: object = None  # a ScanGeometry read from an export (station engines), else None
    alarm: dict | None = None  # the export's alarm rule (station engines), else None


def read_names_file(path: str | Path) -> list[str]:
    """Class names from a ``class_names.txt`` (one a line, background first) or a VOC folder."""
    path = Path(path)
    if path.is_dir():
        return read_class_names(path)
    if not path.is_file():
        raise ModelError(
            "class names file not found", path=path, fix="give a class_names.txt (one class per line, background first)"
        )
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise ModelError("the class names file is empty", path=path, fix="one class per line, background first")
    return names


def _read_config(path: Path) -> dict | None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else ({} if data is None else None)


def _keras_source(path: Path, kind: str, model_file: Path, run_dir: Path | None) -> ModelSource:

    config_file = model_file.parent / CONFIG_FILE
    config_file = config_file if config_file.is_file() else None
    config = _read_config(config_file) if config_file else None
    return ModelSource(path, kind, model_file, run_dir, config_file, config, read_model_metadata(model_file) or {})


def _savedmodel_source(path: Path, folder: Path) -> ModelSource:
    meta_file = folder / "export.json"
    meta = read_export_json(meta_file) if meta_file.is_file() else {}
    return ModelSource(path, "savedmodel", folder, metadata=meta)


def resolve_source(path: str | Path, *, exportable: bool = False) -> ModelSource:
    """Find the model that ``path`` names; ``exportable`` admits only a run folder or ``.keras`` file."""
    path = Path(path)
    if exportable:
        if path.is_dir():
            if not (path / BEST_MODEL).is_file():
                raise ModelError(
                    "no best_model.keras in this folder",
                    path=path,
                    fix="give a run folder written by `xray-seg train` (or the .keras file itself)",
                )
            return _keras_source(path, "run", path / BEST_MODEL, path)
        if path.is_file() and path.suffix == ".keras":
            return _keras_source(path, "keras", path, None)
        raise ModelError(
            "not a run folder or .keras file", path=path, fix="give RUN_DIR (with best_model.keras) or a .keras file"
        )
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _savedmodel_source(path, path)
    if path.is_dir() and (path / "savedmodel" / "saved_model.pb").is_file():
        return _savedmodel_source(path, path / "savedmodel")
    if path.is_dir() and (path / BEST_MODEL).is_file():
        return _keras_source(path, "run", path / BEST_MODEL, path)
    if path.is_file() and path.suffix == ".keras":
        return _keras_source(path, "keras", path, None)
    _refuse_interrupted(path)
    raise ModelError(
        "not a model",
        path=path,
        fix="give a run folder (with best_model.keras), a .keras file or an exported SavedModel folder",
    )


def _refuse_interrupted(path: Path) -> None:
    """An export whose SavedModel was left aside by an interrupted ``calibrate`` (before issue 28,
    ``.savedmodel.before-calibration``; since, the old copy inside ``.savedmodel.old.*.tmp/``): say
    where it is and the one command that puts it back."""
    root = path.parent if path.name == "savedmodel" else path
    aside = [root / ".savedmodel.before-calibration", *sorted(root.glob(".savedmodel.old.*.tmp/old"))]
    for folder in aside:
        if (folder / "saved_model.pb").is_file() and not (root / "savedmodel").exists():
            raise ModelError(
                f"an interrupted calibrate left this export's SavedModel at {folder}",
                path=root,
                fix=f"put it back with `mv '{folder}' '{root / 'savedmodel'}'`, then run calibrate again",
            )


def load_keras_model(model_file: Path):
    """``keras.models.load_model`` with xray-seg's layers registered; one clear error for a bad file."""
    import keras

    import_custom_objects()
    try:
        return keras.models.load_model(model_file, compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise ModelError(
            f"cannot load the model ({exc})", path=model_file, fix="give a .keras file written by xray-seg"
        ) from None


def _keras_class_names(source: ModelSource, given: list[str] | None, fix: str) -> tuple[list[str], str]:
    """The names and where they came from (for messages); metadata > given > class_names.txt."""
    if source.metadata.get("class_names"):
        return list(source.metadata["class_names"]), f"{source.model_path.name}'s xray_seg.json"
    if given is not None:
        return list(given), "the class names given"
    if source.names_file is not None:
        return read_names_file(source.names_file), str(source.names_file)
    raise ModelError("no class names for this model", path=source.model_path, fix=fix)


def _from_keras(source: ModelSource, given: list[str] | None, names_fix: str, names_where: str | None) -> LoadedModel:

    class_names, where = _keras_class_names(source, given, names_fix)
    if given is not None and names_where and where == "the class names given":
        where = names_where
    model = load_keras_model(source.model_path)
    k = logits_of(model.output).shape[-1]
    if k != len(class_names):
        raise ModelError(
            f"the model has {k} output classes but {where} lists {len(class_names)}",
            path=source.model_path,
            fix="pass the class_names.txt the model was trained with",
        )
    if len(class_names) > 255:
        raise ModelError(f"{len(class_names)} classes do not fit a uint8 class map (max 255)", path=source.model_path)
    shape = model.input_shape
    size = (int(shape[1]), int(shape[2])) if shape[1] and shape[2] else None
    name = source.metadata.get("model_name") or source.config_section("model").get("name") or model.name
    palette = source.metadata.get("palette") or voc_palette(len(class_names)).tolist()
    predict = model.predict_on_batch

    def logits_fn(batch):
        out = predict(np.asarray(batch, dtype=np.float32))
        return np.asarray(logits_of(out), dtype=np.float32)

    return LoadedModel(
        name, class_names, size, logits_fn, source.model_path, model, palette, size or source.trained_size(), source
    )


def tile_signature(loaded):
    """``(serve_tiles, (th, tw))`` of a loaded SavedModel: the signature that maps exact tiles to
    probabilities without ``serving_default``'s class map and alarm
    (:func:`xray_seg.serving.signatures.tile_probabilities`), and the tile its input spec names.
    None for an export written before ``serve_tiles`` existed: its ``serving_default`` takes the
    tiles instead (its one-forward-pass path: the same probabilities, plus the alarm's work)."""
    if TILES_SIGNATURE not in loaded.signatures:
        return None
    fn = loaded.signatures[TILES_SIGNATURE]
    shape = fn.structured_input_signature[1]["images"].shape
    return fn, (int(shape[1]), int(shape[2]))


def _from_savedmodel(source: ModelSource) -> LoadedModel:
    import tensorflow as tf

    meta = source.metadata
    loaded = load_savedmodel(source.model_path)
    if "serving_default" not in loaded.signatures:
        raise ModelError(
            "the SavedModel has no serving_default signature",
            path=source.model_path,
            fix="give a SavedModel written by `xray-seg export`",
        )
    serve = loaded.signatures["serving_default"]
    tiles, tile = tile_signature(loaded) or (None, None)
    names, size, name = meta.get("class_names"), meta.get("input_size"), meta.get("model_name")
    if not (names and size and name) and "model_info" in loaded.signatures:
        info = loaded.signatures["model_info"]()
        names = names or [n.decode() for n in info["class_names"].numpy()]
        size = size or [int(v) for v in info["input_size"].numpy()]
        name = name or info["model_name"].numpy().decode()
    if not names:
        raise ModelError(
            "the SavedModel names no classes",
            path=source.model_path,
            fix="give a SavedModel written by `xray-seg export`",
        )
    palette = meta.get("palette") or voc_palette(len(names)).tolist()

    def logits_fn(batch):
        images = tf.convert_to_tensor(np.clip(np.asarray(batch) + 0.5, 0, 255).astype(np.uint8))
        exact = tiles is not None and tuple(images.shape[1:3]) == tile  # else the graph tiles the batch
        probs = (tiles if exact else serve)(images=images)["probabilities"].numpy()
        return np.log(np.maximum(probs, 1e-12)).astype(np.float32)

    # input_size None: the serving graph already adapts any image size itself.
    return LoadedModel(
        name or source.model_path.name,
        list(names),
        None,
        logits_fn,
        source.model_path,
        None,
        palette,
        tuple(int(v) for v in size) if size else None,
        source,
        _host_geometry(meta),
    )


def _host_geometry(meta: dict):
    """The export's geometry rule at native resolution, run on the host: ``serve_tiles`` (else, in an
    older export, ``serving_default``'s one-forward-pass path) is then fed batches of exact tiles
    and the scan is blended in strips (:mod:`xray_seg.inference.strips`), so memory follows the
    tile and the uint8 scan rather than the whole-scan graph (docs/station.md, "Memory"). None (the scan goes to the graph whole) for an
    export without ``geometry`` or with ``scale != 1``, whose graph rescales every input it is fed."""
    recorded = meta.get("geometry")
    if not isinstance(recorded, dict) or "tile" not in recorded:
        return None
    geometry = ScanGeometry.from_dict(recorded)
    return geometry if geometry.scale == 1.0 else None


def load_for_inference(
    path, class_names: list[str] | None = None, *, names_fix: str = INFERENCE_NAMES_FIX, names_where: str | None = None
) -> LoadedModel:
    """Load a run folder (its best model), a ``.keras`` file or a SavedModel folder.

    ``path`` may also be a :class:`ModelSource` (from :func:`resolve_source`) or an already
    loaded :class:`LoadedModel`, which is returned as is. ``class_names`` are used when the
    ``.keras`` file carries none of its own (module docstring); ``names_fix`` is the fix
    offered when no names are found, ``names_where`` the file named when their count is wrong.
    """
    if isinstance(path, LoadedModel):
        return path
    source = path if isinstance(path, ModelSource) else resolve_source(path)
    if source.kind == "savedmodel":
        return _from_savedmodel(source)
    return _from_keras(source, class_names, names_fix, names_where)


def model_folder(model) -> Path:
    """What a model is on disk, for the overlap checks of the outputs written beside it: a
    path as given, or an already loaded model's run folder (else its ``.keras`` file or
    SavedModel folder)."""
    origin = getattr(model, "origin", None)
    if origin is not None and origin.run_dir is not None and origin.kind == "run":
        return Path(origin.run_dir)
    source = getattr(model, "source", None)
    return Path(model) if source is None else Path(source)
