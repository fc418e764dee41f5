"""The optimised SavedModel (xray_seg.serving.optimize): today's signatures exactly, batch norm
folded into the convolutions, no variables, and the Keras model's numbers."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")


def _saved_ops(folder) -> dict:
    from tensorflow.core.protobuf import saved_model_pb2

    from xray_seg.serving.optimize import op_counts

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folder / "saved_model.pb").read_bytes())
    return op_counts(proto.meta_graphs[0].graph_def)


def test_signatures_are_exactly_the_savedmodels(station_export):
    from xray_seg.serving.optimize import signature_specs

    _, out, result = station_export
    today = tf.saved_model.load(str(out / "savedmodel"))
    optimized = tf.saved_model.load(str(out / "savedmodel_optimized"))
    assert set(optimized.signatures) == {"serving_default", "serve_encoded", "model_info", "serve_tiles"}
    assert signature_specs(optimized) == signature_specs(today)  # names, inputs, outputs, dtypes, shapes
    assert result.manifest["savedmodel_optimized"]["signatures_match_savedmodel"] is True
    assert (out / "savedmodel_optimized" / "export.json").read_text() == (
        out / "savedmodel" / "export.json"
    ).read_text()
    info_a, info_b = today.signatures["model_info"](), optimized.signatures["model_info"]()
    for key in info_a:
        np.testing.assert_array_equal(info_a[key].numpy(), info_b[key].numpy())


def test_graph_has_batch_norm_folded_and_no_variables(station_export):
    _, out, result = station_export
    before, after = _saved_ops(out / "savedmodel"), _saved_ops(out / "savedmodel_optimized")
    assert before.get("FusedBatchNormV3", 0) > 0 and before.get("VarHandleOp", 0) > 0
    for op in ("FusedBatchNormV3", "VarHandleOp", "ReadVariableOp", "AssignVariableOp"):
        assert after.get(op, 0) == 0, op
    entry = result.manifest["savedmodel_optimized"]
    assert entry["batch_norms_folded"] > 50 and entry["batch_norms_kept"] == 0


@pytest.mark.parametrize("shape", [(64, 64), (64, 160)], ids=["one-tile", "non-square"])
def test_parity_with_keras(station_export, keras_reference, shape):
    """Class maps on >= 99.9% of pixels and probabilities within 1e-4 of the Keras model,
    on one 64x64 tile and on a 64x160 scan tiled inside serving_default."""
    _, out, _ = station_export
    serve = tf.saved_model.load(str(out / "savedmodel_optimized")).signatures["serving_default"]
    image = np.random.default_rng(7).integers(0, 256, (*shape, 3), dtype=np.uint8)
    got = serve(images=tf.constant(image[None]))
    ref = keras_reference(image)
    assert got["probabilities"].shape == (1, *shape, 3)
    assert float(np.max(np.abs(got["probabilities"].numpy()[0] - ref))) < 1e-4
    assert float(np.mean(got["class_map"].numpy()[0] == ref.argmax(-1))) >= 0.999


def test_fold_leaves_a_batch_norm_it_cannot_fold():
    """A batch norm after a sum (no conv before it) stays; the one after the conv is folded, same numbers.
    (xray-seg's BatchNorm: the fused kernel every model uses; Keras's own computes batch norm from
    element-wise ops, which Grappler's constant folding simplifies instead.)"""
    import keras

    from xray_seg.layers.norm import BatchNorm
    from xray_seg.serving.optimize import FrozenNetwork

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = BatchNorm()(x)
    y = keras.layers.Add()([x, x])
    y = BatchNorm()(y)
    model = keras.Model(inputs, y)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            layer.set_weights([rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4)])
    network = FrozenNetwork(model, (8, 8))
    assert (network.folded, network.kept) == (1, 1)
    x = rng.uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(network(tf.constant(x)).numpy(), model(x, training=False).numpy(), rtol=1e-4, atol=1e-3)
