"""xray-seg: semantic segmentation of prohibited items in X-ray security images.

Implements CWF-DeepLabv3+ (CSP-Xception + DWFF-ASPP), with CycleNet and IFBFNet
as alternatives, and the tooling around them: synthetic dual-energy X-ray data,
a Labelme-to-VOC converter, a tf.data pipeline, training, evaluation and export.

The public Python API (``docs/python_api.md``), one name per stage of the data path
(``docs/architecture.md``)::

    import xray_seg

    xray_seg.synthesize("data/labelme", num=24, size=128, seed=0)
    xray_seg.convert("data/labelme", "data/voc", labels="data/labelme/labels.txt")
    cfg = xray_seg.TrainConfig.from_preset("demo_cpu", epochs=2, model={"width": 0.125})
    xray_seg.train(cfg, "data/voc", "runs/tiny")
    seg = xray_seg.Segmenter.load("runs/tiny")
    pred = seg.predict("scan.png", tta="flip")       # .class_map, .probabilities, .items
    seg.evaluate("data/voc", split="val")
    seg.export("runs/tiny-export", formats="savedmodel")

Importing ``xray_seg`` does not import TensorFlow: every name is resolved on first use
(module ``__getattr__``), and TensorFlow is imported only by the calls that need it.
"""

from __future__ import annotations

import dataclasses as _dataclasses
from pathlib import Path as _Path

from xray_seg.core.version import __version__
from xray_seg.keras_objects import install_keras_hook as _install_keras_hook

# keras.saving.load_model finds xray-seg's layers after `import xray_seg` (keras_objects.py);
# neither Keras nor TensorFlow is imported here.
_install_keras_hook()

# name -> (module, attribute): classes resolved lazily by __getattr__.
_LAZY = {
    "Segmenter": ("xray_seg.segmenter", "Segmenter"),
    "Prediction": ("xray_seg.segmenter", "Prediction"),
    "TrainConfig": ("xray_seg.training.config", "TrainConfig"),
    "TTAOptions": ("xray_seg.inference.tta_options", "TTAOptions"),
    "SynthConfig": ("xray_seg.synthesis.scene", "SynthConfig"),
    "ConvertConfig": ("xray_seg.conversion.convert", "ConvertConfig"),
    "custom_objects": ("xray_seg.keras_objects", "custom_objects"),
}

__all__ = [
    "__version__",
    "synthesize",
    "convert",
    "TrainConfig",
    "train",
    "build_model",
    "list_models",
    "Segmenter",
    "Prediction",
    "TTAOptions",
    "SynthConfig",
    "ConvertConfig",
    "custom_objects",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xray_seg' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


def _config(cls, options: dict, what: str):
    """``cls(**options)``, with unknown keys as a one-line :class:`ConfigError`."""
    from xray_seg.core.errors import ConfigError

    names = [f.name for f in _dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigError(f"unknown {what} option(s) {', '.join(unknown)}", fix=f"use some of: {', '.join(names)}")
    return cls(**options)


def synthesize(out, *, force: bool = False, progress: bool = True, **options) -> _Path:
    """Write a synthetic Labelme dataset (PNG + JSON + ``labels.txt``) to ``out``; return ``out``.

    ``options`` are :class:`~xray_seg.synthesis.scene.SynthConfig` fields (``num``, ``size``,
    ``seed``, ``clutter``, ``workers``, ...), as ``xray-seg synth`` flags are. An existing
    non-empty ``out`` is refused unless ``force``.
    """
    from xray_seg.synthesis.scene import SynthConfig
    from xray_seg.synthesis.scene import synthesize as _synthesize

    _synthesize(out, _config(SynthConfig, options, "synthesize"), force=force, progress=progress)
    return _Path(out)


def convert(labelme_dir, voc_dir, labels=None, *, progress: bool | None = None, **options):
    """Convert a Labelme folder to a VOC folder; return the ``ConvertReport`` (``.summary()``).

    ``labels`` is the labels file (default: ``labelme_dir/labels.txt``); ``options`` are
    :class:`~xray_seg.conversion.convert.ConvertConfig` fields (``val_ratio``, ``seed``,
    ``workers``, ``force``, ``resume``, ``unknown``, ...), as ``xray-seg convert`` flags are.
    """
    from xray_seg.conversion.convert import ConvertConfig
    from xray_seg.conversion.convert import convert as _convert

    labels = _Path(labelme_dir) / "labels.txt" if labels is None else labels
    config = _config(ConvertConfig, {**options, "labels": str(labels)}, "convert")
    return _convert(labelme_dir, voc_dir, config, progress=progress)


def train(config, voc_dir, run_dir, *, init=None, init_classes=None, **kw):
    """Train ``config`` (a ``TrainConfig`` or a preset name) on ``voc_dir``; write ``run_dir``.

    ``voc_dir=None`` keeps ``config.data.voc_dir``. ``init`` starts from a model (a run folder,
    ``RUN:last``, a ``.keras`` or ``.weights.h5`` file, or ``"preset:NAME"``; ``init_classes``:
    the class names file of a source that names none), as ``train --init`` does; the config's
    model and width must be the source's. Keywords go to
    :func:`xray_seg.training.trainer.train`: ``resume``, ``force``, ``devices``,
    ``cpu_replicas``, ``verbose``, ``stop_after_epochs``. Returns its ``TrainResult``.
    It behaves as ``xray-seg train``: the same errors, and a run folder it created is
    removed again when training fails before an epoch finished.
    """
    from xray_seg.core.config import override_config
    from xray_seg.core.errors import ConfigError
    from xray_seg.training.config import TrainConfig
    from xray_seg.training.trainer import train as _train

    cfg = TrainConfig.from_preset(config) if isinstance(config, (str, _Path)) else config
    if voc_dir is not None:
        cfg = override_config(cfg, {"data": {"voc_dir": str(voc_dir)}})
    if init is not None or init_classes is not None:
        if kw.get("resume"):
            raise ConfigError(
                "init starts a new run from a model, resume continues a run from its own checkpoint",
                path=run_dir,
                fix="give one of them",
            )
        cfg = _dataclasses.replace(cfg, init=str(init or ""), init_classes=str(init_classes or ""), init_sha256="")
    return _train(cfg, run_dir, **kw)


def build_model(name: str, num_classes: int, input_shape=(512, 512, 3), **kw):
    """Build the registered model ``name`` (see :func:`list_models`); ``kw`` e.g. ``width=0.25``."""
    from xray_seg.models.registry import build_model as _build_model

    return _build_model(name, num_classes, input_shape, **kw)


def list_models() -> list[str]:
    """Names of the registered models (``xray-seg models`` describes them)."""
    from xray_seg.models.registry import available_models

    return [spec.name for spec in available_models()]
