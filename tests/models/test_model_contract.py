"""The contract every registered model keeps (``xray_seg.models.registry``), checked for each:

- raw 0..255 pixels in, logits (no softmax) at input resolution out; with ``aux=True`` the
  auxiliary heads it declares, each at input resolution too (or logits alone, or a refusal);
- a ``.keras`` round trip gives the same outputs;
- a few training steps lower the loss, and every trainable weight receives a gradient;
- the ``.keras`` file saved under TensorFlow gives the same logits under JAX (and PyTorch
  where installed), in a child process (``tests/backends/backend_worker.py``).

Model-specific facts of the papers (channel counts, strides, rates) stay in each model's file.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from _helpers import TINY_MODELS, run_backend_worker

keras = pytest.importorskip("keras")

from xray_seg.core.errors import ModelError  # noqa: E402
from xray_seg.models.registry import available_models, build_model  # noqa: E402
from xray_seg.training.losses import aux_loss_weights  # noqa: E402

NAMES = [spec.name for spec in available_models()]
NUM_CLASSES, SIZE = 3, 64
BACKENDS = [b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None]


# Weights that get no gradient by construction. BiSeNetV2's context embedding: the shift of the BN on the
# pooled features passes a 1x1 conv into another BN, which removes any per-channel constant in training.
NO_GRADIENT = {"bisenetv2": {"semantic_ce/pool_bn/beta"}}


def _pixels(seed=0, n=2):
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


def _numpy(out) -> dict:
    out = out if isinstance(out, dict) else {"logits": out}
    return {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}


def _build(name):
    options, aux = TINY_MODELS[name]
    keras.utils.set_random_seed(1)
    return build_model(name, NUM_CLASSES, (SIZE, SIZE, 3), **options, aux=aux is not None)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``saved(name)``: the tiny model (no zero weights, non-trivial BN statistics), its eval outputs, its ``.keras``."""
    folder = tmp_path_factory.mktemp("contract")
    np.save(folder / "input.npy", _pixels())
    cache = {}

    def get(name):
        if name not in cache:
            model = _build(name)
            rng = np.random.default_rng(4)
            for w in model.weights:  # so the round trips check the statistics and the zero-started paths too
                if "moving_variance" in w.path:
                    w.assign(rng.uniform(0.5, 2.0, w.shape).astype("float32"))
                elif "moving_mean" in w.path:
                    w.assign(rng.normal(0, 0.1, w.shape).astype("float32"))
                elif not np.any(keras.ops.convert_to_numpy(w)):  # e.g. biases, the ADC offset conv
                    w.assign(rng.normal(0, 0.05, w.shape).astype("float32"))
            outputs = _numpy(model(_pixels(), training=False))
            model.save(folder / f"{name}.keras")
            cache[name] = (model, outputs, folder / f"{name}.keras")
        return cache[name]

    get.folder = folder
    return get


def test_every_registered_model_has_a_tiny_setting():
    assert sorted(TINY_MODELS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_logits_at_input_resolution_with_the_declared_aux_heads(saved, name):
    model, outputs, _ = saved(name)
    aux = TINY_MODELS[name][1]
    assert sorted(outputs) == sorted(["logits", *(aux or ())])
    for key, value in outputs.items():
        assert value.shape == (2, SIZE, SIZE, NUM_CLASSES) and value.dtype == np.float32, key
        assert np.isfinite(value).all(), key
    assert not np.allclose(outputs["logits"].sum(-1), 1.0)  # logits, no softmax
    assert model.layers[1].name == "pixel_normalization"  # raw 0..255 pixels in
    if aux is None:
        with pytest.raises(ModelError, match="no auxiliary heads"):
            build_model(name, NUM_CLASSES, (SIZE, SIZE, 3), **TINY_MODELS[name][0], aux=True)


@pytest.mark.parametrize("name", NAMES)
def test_keras_round_trip_gives_the_same_outputs(saved, name):
    _, expected, path = saved(name)
    loaded = keras.saving.load_model(path)
    got = _numpy(loaded(_pixels(), training=False))
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("name", NAMES)
def test_a_few_training_steps_lower_the_loss_and_reach_every_weight(saved, toy_batch, name):
    model = saved(name)[0]
    images, labels = toy_batch(num_classes=NUM_CLASSES)
    names = sorted(model.output) if isinstance(model.output, dict) else None
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        keras.optimizers.Adam(3e-3),
        loss={n: ce for n in names} if names else ce,
        loss_weights=aux_loss_weights(names) if names else None,
        run_eagerly=True,  # tracing a train step costs more than 8 eager steps on 2 cores
    )
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    targets = {n: labels for n in names} if names else labels
    losses = model.fit(images, targets, batch_size=2, epochs=8, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.9 * losses[0], losses
    frozen = {
        w.path for w, b in zip(model.trainable_weights, before) if np.array_equal(keras.ops.convert_to_numpy(w), b)
    }
    assert frozen == NO_GRADIENT.get(name, set()), "no gradient reached these weights"


TORCH_AVG_POOL = pytest.mark.xfail(
    strict=True,
    reason="known gap: BiSeNetV2's logits differ under PyTorch by up to 0.05 (its 'same'-padded average "
    "pooling counts the padding on that backend); every other model matches to 1e-4, and all match under JAX.",
)


@pytest.fixture(scope="module")
def other_backend_logits(saved):
    """``logits(backend, name)``: the logits the child process computed from ``<name>.keras`` (one run per backend)."""
    done = set()

    def logits(backend, name):
        if backend not in done:
            for each in NAMES:
                saved(each)
            assert sorted(run_backend_worker(backend, "logits", saved.folder)["models"]) == sorted(NAMES)
            done.add(backend)
        return np.load(saved.folder / f"{name}.{backend}.npy")

    return logits


@pytest.mark.parametrize(
    ("backend", "name"),
    [
        pytest.param(b, n, marks=TORCH_AVG_POOL) if (b, n) == ("torch", "bisenetv2") else (b, n)
        for b in BACKENDS
        for n in NAMES
    ],
)
def test_logits_match_under_other_backends(saved, other_backend_logits, backend, name):
    expected = saved(name)[1]["logits"]
    np.testing.assert_allclose(other_backend_logits(backend, name), expected, atol=1e-4, rtol=1e-4)
