"""Model registry: every model is built by name through :func:`build_model`.

Builders are named by ``"module:function"`` strings and imported when first built, so
listing the models (``xray-seg models --names-only``, ``xray_seg.list_models()``) imports
neither Keras nor TensorFlow, and building one does not import the others. A builder has the signature::

    builder(num_classes: int, input_shape=(512, 512, 3), *, width=1.0, aux=False, **options) -> keras.Model

Conventions every builder follows (docs/architecture.md):

- the model takes raw 0..255 pixels (normalisation inside the model);
- it returns logits ``[B, H, W, num_classes]`` at input resolution, no softmax;
- ``width`` multiplies channel counts (1.0 = the paper); tests use tiny widths;
- with ``aux=True`` and where the model has auxiliary heads, it returns a dict
  ``{"logits": main, "aux": ..., "aux2": ...}`` (auxiliary logits also at input
  resolution); otherwise it returns the logits tensor alone.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

import xray_seg.layers
import xray_seg.models
from xray_seg.core.errors import ModelError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    target: str  # "package.module:function"
    description: str
    paper: str


_MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, target: str, description: str, paper: str = "") -> None:
    """Register (or replace) a model builder under ``name``."""
    _MODELS[name] = ModelSpec(name, target, description, paper)


def available_models() -> list[ModelSpec]:
    return [_MODELS[k] for k in sorted(_MODELS)]


def get_builder(name: str):
    spec = _MODELS.get(name)
    if spec is None:
        raise ModelError(
            f"unknown model {name!r}",
            fix=f"use one of: {', '.join(sorted(_MODELS))} (see `xray-seg models`)",
        )
    module_name, _, func_name = spec.target.partition(":")
    return getattr(importlib.import_module(module_name), func_name)


def import_custom_objects() -> None:
    """Import every module under ``xray_seg.layers`` and ``xray_seg.models`` so that their
    Keras-serialisable classes are registered before ``keras.models.load_model(...,
    compile=False)`` reads a ``.keras`` file (the losses and optimiser are not needed then)."""
    for package in (xray_seg.layers, xray_seg.models):
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            importlib.import_module(info.name)


def build_model(name: str, num_classes: int, input_shape=(512, 512, 3), **options):
    """Build the registered model ``name`` (see the module docstring for the contract).

    Example:
        >>> from xray_seg.models.registry import build_model
        >>> model = build_model("cwf_deeplabv3plus", num_classes=6, input_shape=(64, 64, 3), width=0.25)
        >>> tuple(model.input.shape), tuple(model.output.shape)
        ((None, 64, 64, 3), (None, 64, 64, 6))
    """
    builder = get_builder(name)
    try:
        return builder(num_classes, tuple(input_shape), **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise ModelError(
                f"bad option for model {name!r}: {exc}", fix="check `xray-seg models` for its options"
            ) from None
        raise


# --- the models ------------------------------------------------------------------------
# One line per model. Keep the paper reference short.
register_model(
    "unet",
    "xray_seg.models.unet:build_unet",
    "U-Net: 4 down/4 up, 64->1024 channels, BN, 'same' padding, 2x2 up-conv",
    paper="Ronneberger et al. 2015",
)
register_model(
    "bisenetv2",
    "xray_seg.models.bisenetv2:build_bisenetv2",
    "BiSeNet V2: detail + semantic branches, BGA, 4 booster heads (aux)",
    paper="Yu et al. 2021 (IJCV)",
)
register_model(
    "cwf_deeplabv3plus",
    "xray_seg.models.cwf_deeplab:build_cwf_deeplabv3plus",
    "CSP-Xception + DWFF-ASPP DeepLabv3+ (default)",
    "paper 1, sec. 3",
)
register_model(
    "deeplabv3plus",
    "xray_seg.models.deeplab_baselines:build_deeplabv3plus",
    "DeepLabv3+ with aligned Xception-65",
    "paper 1, Table 3; Chen et al. 2018",
)
register_model(
    "mobilenetv2_deeplabv3plus",
    "xray_seg.models.deeplab_baselines:build_mobilenetv2_deeplabv3plus",
    "DeepLabv3+ with MobileNetV2",
    "paper 1, Table 3, ref. [16]",
)
register_model(
    "cyclenet",
    "xray_seg.models.cyclenet:build_cyclenet",
    "CycleNet: dilated ResNet-101 (OS8) + CycleASPP (feedback) + ADC (DCNv2) decoder, aux head",
    paper="CycleNet (Qu et al.)",
)
register_model(
    "ifbfnet",
    "xray_seg.models.ifbfnet:build_ifbfnet",
    "IFBFNet: dilated ResNet-101 (OS16) + ASPP, decoder with 2 feature balanced fusion modules + spatial stream, aux head",
    paper="IFBFNet (Inter-level Feature Balanced Fusion Network), sec. 3",
)
