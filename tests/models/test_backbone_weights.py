"""Backbone weights from a local file: Keras Applications ImageNet files (made here with
``weights=None``, nothing is downloaded) for MobileNetV2 and ResNet, and the refusals."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

from xray_seg.core.errors import ModelError  # noqa: E402
from xray_seg.models.backbones.pretrained import backbone_of, load_backbone_weights  # noqa: E402
from xray_seg.models.registry import build_model  # noqa: E402


def _randomise_batch_norms(model, seed=0):
    """Give every batch norm of a Keras model non-trivial weights and statistics, so a copy shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable, low, high in (
                (layer.gamma, 0.5, 1.5),
                (layer.beta, -0.2, 0.2),
                (layer.moving_mean, -0.2, 0.2),
            ):
                variable.assign(rng.uniform(low, high, size=variable.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=layer.moving_variance.shape))
        elif getattr(layer, "bias", None) is not None and layer.use_bias:
            layer.bias.assign(rng.uniform(-0.1, 0.1, size=layer.bias.shape))


def _save(model, path, fmt):
    if fmt == "keras3":
        model.save_weights(path)  # what `keras.applications.X(...).save_weights` writes
    else:  # the legacy HDF5 layout of the Keras Applications downloads
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


def _np(variable):
    return keras.ops.convert_to_numpy(variable)


@pytest.mark.parametrize("fmt", ["keras3", "legacy"])
def test_mobilenetv2_takes_keras_applications_weights(tmp_path, fmt):
    from xray_seg.models.backbones.keras_applications import mobilenetv2_pairs

    app = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(64, 64, 3), alpha=0.35)
    _randomise_batch_norms(app)
    path = _save(app, tmp_path / ("mnv2.weights.h5" if fmt == "keras3" else "mnv2_no_top.h5"), fmt)
    backbone = backbone_of(build_model("mobilenetv2_deeplabv3plus", 3, (64, 64, 3), width=0.35))
    load_backbone_weights(backbone, path)

    pairs = mobilenetv2_pairs(backbone)
    assert len(pairs) == 51  # Conv1, then 17 blocks, the first without expansion: 1 + 2 + 16 * 3
    for conv, bn, conv_name, bn_name in pairs:  # every tensor is the file's (epsilon 1e-3 folded in)
        np.testing.assert_array_equal(_np(conv.kernel), _np(app.get_layer(conv_name).kernel))
        keras_bn = app.get_layer(bn_name)
        for ours, theirs in (
            (bn.gamma, keras_bn.gamma),
            (bn.beta, keras_bn.beta),
            (bn.moving_mean, keras_bn.moving_mean),
        ):
            np.testing.assert_array_equal(_np(ours), _np(theirs))
        np.testing.assert_allclose(_np(bn.moving_variance), _np(keras_bn.moving_variance) + 1e-3 - 1e-5, rtol=1e-6)
    # The same function: the stride-4 feature equals Keras's block_2 output on the same pixels.
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 64, 64, 3)).astype("float32")
    low, _ = backbone(x, training=False)
    reference = keras.Model(app.input, app.get_layer("block_2_add").output)(x, training=False)
    np.testing.assert_allclose(_np(low), _np(reference), atol=1e-5)


def test_resnet_takes_keras_applications_weights(tmp_path):
    """ResNet50 here (ResNet101 maps the same names, with 23 blocks in stage 3)."""
    from xray_seg.models.backbones.resnet import build_resnet_backbone

    app = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    _randomise_batch_norms(app)
    path = _save(app, tmp_path / "resnet50_notop.h5", "legacy")
    backbone = build_resnet_backbone((32, 32, 3), depth=50, stem="standard", weights=path)
    for layer, name in (
        ("stem_conv1", "conv1"),
        ("stage1_block1_shortcut", "conv2_block1_0"),
        ("stage4_block3_conv2", "conv5_block3_2"),
    ):
        ours, conv, bn = backbone.get_layer(layer), app.get_layer(f"{name}_conv"), app.get_layer(f"{name}_bn")
        kernel = _np(conv.kernel)[:, :, ::-1] if name == "conv1" else _np(conv.kernel)  # BGR -> RGB
        np.testing.assert_array_equal(_np(ours.conv.kernel), kernel)
        np.testing.assert_array_equal(_np(ours.bn.gamma), _np(bn.gamma))
        np.testing.assert_allclose(_np(ours.bn.moving_mean), _np(bn.moving_mean) - _np(conv.bias), rtol=1e-6)
    with pytest.raises(ModelError, match="need the 7x7 stem"):
        build_resnet_backbone((32, 32, 3), depth=50, weights=path)  # the deep stem has no Keras counterpart


def test_bad_backbone_weights_are_one_model_error_naming_the_file(tmp_path):
    app = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.5)
    path = _save(app, tmp_path / "alpha05.h5", "legacy")
    narrow = build_model("mobilenetv2_deeplabv3plus", 3, (32, 32, 3), width=0.25)
    before = [_np(v).copy() for v in narrow.weights]
    with pytest.raises(ModelError, match="the backbone has") as err:
        load_backbone_weights(backbone_of(narrow), path)
    assert str(path) in err.value.message
    assert all(np.array_equal(a, _np(b)) for a, b in zip(before, narrow.weights))  # nothing half-loaded
    csp = build_model("cwf_deeplabv3plus", 3, (32, 32, 3), width=0.0625)
    with pytest.raises(ModelError, match="has no ImageNet weights"):
        load_backbone_weights(backbone_of(csp), path)
    garbage = tmp_path / "garbage.h5"
    garbage.write_text("not hdf5")
    with pytest.raises(ModelError, match="not a readable HDF5"):
        load_backbone_weights(backbone_of(csp), garbage)


def test_caffe_normalization_subtracts_the_means_only():
    """What Keras Applications' ResNet weights expect (model option normalization="caffe")."""
    from xray_seg.models.model_io import CAFFE_MEAN, input_normalization

    x = np.full((1, 2, 2, 3), 200.0, "float32")
    np.testing.assert_allclose(_np(input_normalization("caffe")(x))[0, 0, 0], 200.0 - np.array(CAFFE_MEAN), rtol=1e-6)
