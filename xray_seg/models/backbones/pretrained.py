"""A model's backbone, and backbone weights from a local file (never downloaded).

**The backbone** of a segmentation model is its one nested ``keras.Model`` layer, the
feature extractor the builder calls on the normalised pixels: ``csp_xception``
(CWF-DeepLabv3+), ``aligned_xception`` (DeepLabv3+), ``mobilenetv2``
(MobileNetV2-DeepLabv3+) and ``resnet``/``resnet101`` (CycleNet, IFBFNet). U-Net and
BiSeNetV2 are one flat graph and have none. A sub-model rather than a layer-name prefix:
it survives a ``.keras`` round trip, needs no list of names per model, and takes every
layer of the extractor and nothing of the head (:func:`backbone_of`).

**Backbone weights** (:func:`load_backbone_weights`, the ``model.backbone_weights`` setting
and the ResNet builders' ``weights`` option) come from one of:

- a file of :func:`~xray_seg.models.backbones.resnet.save_backbone_weights` (keyed by
  variable path, so it moves between backbones of the same shape whatever their names);
- a Keras ``save_weights`` ``.weights.h5`` file of the same backbone;
- ImageNet weights of Keras Applications' MobileNetV2, ResNet50 or ResNet101, for the
  MobileNetV2 and ResNet backbones (:mod:`~xray_seg.models.backbones.keras_applications`).

A file that does not fit raises one :class:`~xray_seg.core.errors.ModelError` naming it,
and leaves the backbone as it was.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import keras

from xray_seg.core.errors import ModelError
from xray_seg.models.backbones.keras_applications import (
    backbone_family,
    load_applications_weights,
    read_applications_layers,
)

#: the ``format`` attribute of :func:`~xray_seg.models.backbones.resnet.save_backbone_weights` files.
BACKBONE_WEIGHTS_FORMAT = "xray_seg.resnet_backbone_weights.v1"
_FIX = "pass a weights file saved from a backbone with the same depth, blocks, width and stem"


def backbone_of(model: keras.Model) -> keras.Model:
    """The backbone sub-model of ``model`` (module docstring); ModelError for a model without one."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ModelError(
            f"model {model.name!r} has no backbone sub-model to freeze or load weights into",
            fix="use a model with a backbone (cwf_deeplabv3plus, deeplabv3plus, mobilenetv2_deeplabv3plus, "
            "cyclenet, ifbfnet), or leave freeze and backbone_weights unset",
        )
    return nested[0]


def load_backbone_weights(backbone: keras.Model, path: str | Path) -> None:
    """Load ``path`` into ``backbone`` (the formats of the module docstring).

    Raises :class:`ModelError` naming the file when it is missing, unreadable or does not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError("weights file not found", path=path, fix="check the path (weights are never downloaded)")
    try:
        with h5py.File(path, "r") as f:
            by_path = f.attrs.get("format") == BACKBONE_WEIGHTS_FORMAT
            legacy = "layer_names" in f.get("model_weights", f).attrs
            stored = _datasets(f) if by_path else {}
            applications = not by_path and not legacy and _is_applications_file(f)
    except OSError as exc:
        raise ModelError(f"not a readable HDF5 weights file ({exc})", path=path, fix=_FIX) from None
    family = backbone_family(backbone)
    if by_path:
        _assign_by_path(backbone, stored, path)
    elif (legacy or applications) and family is None:
        raise ModelError(
            f"a Keras Applications weights file, but backbone {backbone.name!r} has no ImageNet weights "
            "(they fit the MobileNetV2 and ResNet backbones only)",
            path=path,
            fix="train this backbone from scratch, or use mobilenetv2_deeplabv3plus / cyclenet / ifbfnet",
        )
    elif legacy or applications:
        load_applications_weights(backbone, read_applications_layers(path, family, backbone), family, path)
    else:
        _load_keras_file(backbone, path)


def _is_applications_file(f) -> bool:
    """A Keras 3 save of a ``keras.applications`` model: bare convs and batch norms at the top
    level, which our backbones never have (theirs sit inside ConvBNAct and block layers)."""
    layers = f["layers"] if isinstance(f.get("layers"), h5py.Group) else {}
    return any(name.startswith(("conv2d", "depthwise_conv2d", "batch_normalization")) for name in layers)


def _datasets(f) -> dict:
    stored = {}
    f.visititems(lambda key, obj: stored.__setitem__(key, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return stored


def _load_keras_file(backbone: keras.Model, path: Path) -> None:
    """A Keras 3 ``save_weights`` file of this same backbone."""
    saved = [keras.ops.convert_to_numpy(v) for v in backbone.weights]
    try:
        backbone.load_weights(path)
    except (ValueError, KeyError, OSError) as exc:
        for variable, value in zip(backbone.weights, saved):  # a failed load may have assigned some
            variable.assign(value)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"weights do not match backbone {backbone.name!r} ({first_line})", path=path, fix=_FIX
        ) from None


def _assign_by_path(backbone: keras.Model, stored: dict, path: Path) -> None:
    wanted = {v.path: v for v in backbone.weights}
    missing = sorted(set(wanted) - set(stored))
    unexpected = sorted(set(stored) - set(wanted))
    wrong = sorted(k for k in set(wanted) & set(stored) if tuple(stored[k].shape) != tuple(wanted[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise ModelError(f"weights do not match backbone {backbone.name!r}: {', '.join(parts)}", path=path, fix=_FIX)
    for key, variable in wanted.items():
        variable.assign(stored[key])
