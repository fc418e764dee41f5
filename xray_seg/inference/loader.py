"""Load any trained model for inference: a run folder, a ``.keras`` file or an exported SavedModel.

Evaluation, prediction and benchmarking all go through :class:`LoadedModel`, whose
``logits_fn`` maps float32 pixels ``[B, H, W, 3]`` (0..255) to logits ``[B, H, W, K]``.
For an exported SavedModel, whose signature returns probabilities, the "logits" are
``log(p)``; softmax of them gives back ``p``, so test-time augmentation that averages
probabilities treats every source alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from xray_seg.core.errors import ModelError


@dataclass
class LoadedModel:
    name: str
    class_names: list[str]
    input_size: tuple[int, int] | None  # the fixed (H, W) the model was built for, if any
    logits_fn: Callable[[np.ndarray], np.ndarray]
    source: Path
    keras_model: object = None  # the Keras model, when there is one
    network_size: tuple[int, int] | None = None  # the size the network runs at (a SavedModel resizes to it)


def _read_names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _from_keras(model_file: Path, class_names: list[str], name: str) -> LoadedModel:
    import keras

    from xray_seg.models.registry import import_custom_objects

    import_custom_objects()

    try:
        model = keras.models.load_model(model_file, compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise ModelError(f"cannot load the model ({exc})", path=model_file, fix="give a .keras file written by xray-seg") from None
    shape = model.input_shape
    size = (shape[1], shape[2]) if shape[1] and shape[2] else None
    predict = model.predict_on_batch

    def logits_fn(batch):
        out = predict(np.asarray(batch, dtype=np.float32))
        return np.asarray(out["logits"] if isinstance(out, dict) else out, dtype=np.float32)

    return LoadedModel(name or model.name, class_names, size, logits_fn, model_file, model)


def _from_savedmodel(path: Path) -> LoadedModel:
    import tensorflow as tf

    meta_file = path / "export.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    names = meta.get("class_names")
    if not names:
        info = loaded.signatures["model_info"]()
        names = [n.decode() for n in info["class_names"].numpy()]
    size = tuple(meta["input_size"]) if meta.get("input_size") else None

    def logits_fn(batch):
        images = tf.convert_to_tensor(np.clip(np.asarray(batch) + 0.5, 0, 255).astype(np.uint8))
        probs = serve(images=images)["probabilities"].numpy()
        return np.log(np.maximum(probs, 1e-12)).astype(np.float32)

    return LoadedModel(meta.get("model_name", path.name), list(names), None, logits_fn, path, network_size=size)
    # input_size None: the serving graph already adapts any image size itself.


def load_for_inference(path: str | Path, class_names: list[str] | None = None) -> LoadedModel:
    """Load a run folder (its best model), a ``.keras`` file or a SavedModel folder."""
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _from_savedmodel(path)
    if path.is_dir() and (path / "savedmodel" / "saved_model.pb").is_file():
        return _from_savedmodel(path / "savedmodel")
    if path.is_dir() and (path / "best_model.keras").is_file():
        names = class_names or _read_names(path / "class_names.txt")
        name = ""
        if (path / "config.yaml").is_file():
            import yaml

            name = (yaml.safe_load((path / "config.yaml").read_text()) or {}).get("model", {}).get("name", "")
        return _from_keras(path / "best_model.keras", names, name)
    if path.is_file() and path.suffix == ".keras":
        names_file = path.parent / "class_names.txt"
        if class_names is None and not names_file.is_file():
            raise ModelError(
                "no class names for this model", path=path, fix="put class_names.txt beside it or pass the VOC folder's"
            )
        return _from_keras(path, class_names or _read_names(names_file), "")
    raise ModelError(
        "not a model", path=path, fix="give a run folder (with best_model.keras), a .keras file or an exported SavedModel folder"
    )
