"""ImageNet weights of Keras Applications (``keras.applications.MobileNetV2``, ``ResNet50``,
``ResNet101``) copied into our MobileNetV2 and dilated-ResNet backbones, from a local file.

Nothing is downloaded. The file is either a Keras Applications download (the legacy HDF5
format, e.g. ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5`` or
``resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5``; with or without the top), or
what ``keras.applications.X(...).save_weights("x.weights.h5")`` writes in Keras 3. Legacy
files are read by layer name; a Keras 3 file stores layers by position, so it is first
loaded into the matching ``keras.applications`` model built here (``weights=None``).

Each of our conv + batch-norm pairs takes one Keras conv and its batch norm
(:func:`mobilenetv2_pairs`, :func:`resnet_pairs`). Two exact rewrites keep the function of
the file's layers while our layers keep their own settings (so a saved model reloads the same):

- epsilon: Keras's MobileNetV2 normalises with epsilon 1e-3 and its ResNets with 1.001e-5,
  ours with 1e-5, so the moving variance is stored as ``variance + eps_file - eps_ours``;
- bias: Keras's ResNets put a bias on every conv before its batch norm, ours has none, so
  the bias moves into the moving mean (``mean - bias``; batch statistics cancel it anyway).

The ResNet stem kernel's input channels are reversed: Keras's ResNet weights were trained on
BGR (Caffe) input, our models read RGB.

Where the networks differ (docs/training.md, "ImageNet weights from a local file"):
MobileNetV2 is the same network (at output stride 16 our last two stages run dilated
instead of strided, DeepLab's rule, with the same weights). Our ResNet is v1.5 (stride on
the 3x3 conv, Keras's on the first 1x1) with "same" padding and must use the
``stem="standard"`` 7x7 stem: the weights fit tensor for tensor, the features are close,
not identical, and fine-tuning closes the gap.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import keras
import numpy as np

from xray_seg.core.errors import ModelError
from xray_seg.layers.blocks import InvertedResidual

#: epsilon of the batch norms in Keras Applications' MobileNetV2 and ResNets.
KERAS_BN_EPSILON = {"mobilenetv2": 1e-3, "resnet": 1.001e-5}
_RESNET_LAYER = re.compile(r"stage(\d)_block(\d+)_(conv1|conv2|conv3|shortcut)")
_RESNET_ROLE = {"shortcut": 0, "conv1": 1, "conv2": 2, "conv3": 3}


def backbone_family(backbone: keras.Model) -> str | None:
    """``"mobilenetv2"``, ``"resnet"`` (by their layers, whatever the model's name), or None."""
    names = {layer.name for layer in backbone.layers}
    if any(isinstance(layer, InvertedResidual) for layer in backbone.layers):
        return "mobilenetv2"
    if "stage1_block1_conv1" in names:
        return "resnet"
    return None


def mobilenetv2_pairs(backbone: keras.Model) -> list[tuple]:
    """``(conv, bn, keras conv name, keras bn name)`` for every conv of our MobileNetV2.

    Keras names its 17 inverted residuals ``expanded_conv`` then ``block_1`` .. ``block_16``,
    in the order of Sandler et al. 2018, Table 2, which is ours (stage by stage, unit by unit).
    """
    stem = backbone.get_layer("stem")
    pairs = [(stem.conv, stem.bn, "Conv1", "bn_Conv1")]
    units = [layer for layer in backbone.layers if isinstance(layer, InvertedResidual)]
    for index, unit in enumerate(units):
        prefix = f"block_{index}_" if index else "expanded_conv_"
        if unit.expand is not None:
            pairs.append((unit.expand.conv, unit.expand.bn, prefix + "expand", prefix + "expand_BN"))
        pairs.append((unit.depthwise, unit.depth_bn, prefix + "depthwise", prefix + "depthwise_BN"))
        pairs.append((unit.project.conv, unit.project.bn, prefix + "project", prefix + "project_BN"))
    return pairs


def resnet_pairs(backbone: keras.Model, path) -> list[tuple]:
    """``(conv, bn, keras conv name, keras bn name)`` for every conv of our dilated ResNet:
    ``stem_conv1`` is ``conv1``; ``stage{s}_block{b}_conv{j}`` is ``conv{s+1}_block{b}_{j}`` and
    the shortcut ``conv{s+1}_block{b}_0``."""
    names = {layer.name for layer in backbone.layers}
    if "stem_conv2" in names:
        raise ModelError(
            "Keras Applications ResNet weights need the 7x7 stem; this backbone has the deep (3x 3x3) stem",
            path=path,
            fix='build the model with the option stem="standard" (--set model.options.stem=standard)',
        )
    stem = backbone.get_layer("stem_conv1")
    pairs = [(stem.conv, stem.bn, "conv1_conv", "conv1_bn")]
    for layer in backbone.layers:
        match = _RESNET_LAYER.fullmatch(layer.name)
        if match:
            stage, block, role = int(match[1]), int(match[2]), _RESNET_ROLE[match[3]]
            keras_name = f"conv{stage + 1}_block{block}_{role}"
            pairs.append((layer.conv, layer.bn, f"{keras_name}_conv", f"{keras_name}_bn"))
    return pairs


def _legacy_layers(group) -> dict[str, list[np.ndarray]]:
    out = {}
    for raw in group.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        weight_names = [w.decode() if isinstance(w, bytes) else str(w) for w in group[name].attrs["weight_names"]]
        out[name] = [np.asarray(group[name][w]) for w in weight_names]
    return out


def _applications_model(family: str, backbone: keras.Model, include_top: bool) -> keras.Model:
    kwargs = dict(weights=None, include_top=include_top, input_shape=(224, 224, 3))
    if family == "mobilenetv2":
        # the width the backbone was built with: 320 x alpha is a multiple of 8 at every ImageNet alpha
        alpha = [layer for layer in backbone.layers if isinstance(layer, InvertedResidual)][-1].filters / 320
        return keras.applications.MobileNetV2(alpha=alpha, **kwargs)
    blocks = sum(1 for layer in backbone.layers if re.fullmatch(r"stage3_block\d+_conv1", layer.name))
    return (keras.applications.ResNet101 if blocks > 6 else keras.applications.ResNet50)(**kwargs)


def _keras3_layers(path: Path, family: str, backbone: keras.Model) -> dict[str, list[np.ndarray]]:
    """Layers of a Keras 3 ``save_weights`` file of a ``keras.applications`` model, read by
    loading it into that model (without, then with, the classifier top)."""
    errors = []
    for include_top in (False, True):
        model = _applications_model(family, backbone, include_top)
        try:
            model.load_weights(path)
        except (ValueError, KeyError, OSError) as exc:
            errors.append(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            continue
        return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}
    raise ModelError(
        f"not a Keras Applications {family} weights file that fits this backbone ({errors[0][:160]})",
        path=path,
        fix="pass the Keras Applications file of the same network and width (MobileNetV2 alpha = model width)",
    )


def read_applications_layers(path: Path, family: str, backbone: keras.Model) -> dict[str, list[np.ndarray]]:
    """``{layer name: [arrays in Keras order]}`` of a Keras Applications weights file."""
    with h5py.File(path, "r") as f:
        group = f.get("model_weights", f)
        if "layer_names" in group.attrs:
            return _legacy_layers(group)
    return _keras3_layers(path, family, backbone)


def _mismatch(path, family: str, what: str) -> ModelError:
    return ModelError(
        f"not the Keras Applications {family} weights this backbone needs: {what}",
        path=path,
        fix="pass the Keras Applications file of the same network and width (MobileNetV2 alpha = model width, "
        "ResNet at width 1.0), include_top either way",
    )


def load_applications_weights(backbone: keras.Model, layers: dict, family: str, path) -> int:
    """Assign the Keras layers ``layers`` to ``backbone`` (module docstring); returns the
    number of tensors assigned. Every conv must be present with the right shape: nothing is
    assigned otherwise."""
    pairs = mobilenetv2_pairs(backbone) if family == "mobilenetv2" else resnet_pairs(backbone, path)
    keras_eps = KERAS_BN_EPSILON[family]
    updates = []
    for conv, bn, conv_name, bn_name in pairs:
        if conv_name not in layers or bn_name not in layers:
            raise _mismatch(path, family, f"no layer {conv_name if conv_name not in layers else bn_name}")
        kernel, *bias = layers[conv_name]
        gamma, beta, mean, variance = layers[bn_name]
        if tuple(kernel.shape) != tuple(conv.kernel.shape):
            raise _mismatch(
                path, family, f"{conv_name} is {tuple(kernel.shape)}, the backbone has {tuple(conv.kernel.shape)}"
            )
        if conv_name == "conv1_conv":
            kernel = kernel[:, :, ::-1, :]  # BGR (Caffe) -> RGB
        if bias:
            mean = mean - bias[0]
        variance = np.maximum(variance + keras_eps - bn.epsilon, 0.0)
        updates += [(conv.kernel, kernel), (bn.gamma, gamma), (bn.beta, beta)]
        updates += [(bn.moving_mean, mean), (bn.moving_variance, variance)]
    for variable, value in updates:
        variable.assign(value.astype(variable.dtype))
    return len(updates)
