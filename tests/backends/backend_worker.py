"""Checks run in a child process under a non-TensorFlow Keras backend (issue 21).

The Keras backend is fixed when Keras is first imported, and the test session runs on
TensorFlow, so the tests (``tests/_helpers.run_backend_worker``) start this script with
``KERAS_BACKEND=jax`` (or ``torch``) and reads the JSON it prints on its last line.

Tasks (``python backend_worker.py TASK DIR``):

- ``logits``: load every ``DIR/<model>.keras`` written under TensorFlow and write the
  logits of ``DIR/input.npy`` to ``DIR/<model>.<backend>.npy``.
- ``fit``: train a tiny CWF-DeepLabv3+ for a few ``model.fit`` steps on numpy batches
  and report the loss of each epoch.
- ``deform_grad``: ``ModulatedDeformConv2D``'s analytic gradient (the backend's autodiff)
  against central finite differences, in float64.
- ``batchnorm``: ``BatchNorm``'s Keras fallback (the path every non-TF backend takes) on
  ``DIR/bn_input.npy`` with the weights in ``DIR/bn_weights.npz``: training-mode output,
  moving statistics after three steps, inference output and input/gamma/beta gradients,
  written to ``DIR/bn.<backend>.npz`` for comparison with the TF fused kernel.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
if sys.argv[1:2] == ["deform_grad"]:
    os.environ["JAX_ENABLE_X64"] = "1"  # the finite-difference check needs float64

import keras  # noqa: E402

BACKEND = keras.backend.backend()


def grad_fn(loss_fn):
    """d loss / d each argument, with the running backend's autodiff."""
    if BACKEND == "jax":
        import jax

        return lambda *args: jax.grad(loss_fn, argnums=tuple(range(len(args))))(*args)
    if BACKEND == "torch":
        import torch

        def grads(*args):
            leaves = [torch.tensor(np.asarray(a), requires_grad=True) for a in args]
            loss = loss_fn(*leaves)
            return torch.autograd.grad(loss, leaves)

        return grads
    raise SystemExit(f"unsupported backend {BACKEND}")


def task_logits(folder: Path) -> dict:
    from xray_seg.models.registry import import_custom_objects

    import_custom_objects()
    image = np.load(folder / "input.npy")
    done = []
    for path in sorted(folder.glob("*.keras")):
        model = keras.saving.load_model(path, compile=False)
        out = model(image, training=False)
        if isinstance(out, dict):
            out = out["logits"]
        np.save(folder / f"{path.stem}.{BACKEND}.npy", keras.ops.convert_to_numpy(out))
        done.append(path.stem)
    return {"backend": BACKEND, "models": done}


def task_fit(folder: Path) -> dict:
    from xray_seg.models.registry import build_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(8, 64, 64, 3)).astype("float32")
    labels = np.zeros((8, 64, 64), "int32")
    labels[:, 16:48, 16:48] = 1  # one square "threat" per image, bright
    images[:, 16:48, 16:48] = 255.0
    labels[:, :4, :4] = 255  # ignore pixels are masked out of the loss
    model = build_model("cwf_deeplabv3plus", 2, (64, 64, 3), width=0.0625)

    def loss(y_true, y_pred):
        y_true = keras.ops.cast(y_true, "int32")
        valid = keras.ops.not_equal(y_true, 255)
        safe = keras.ops.where(valid, y_true, 0)
        ce = keras.losses.sparse_categorical_crossentropy(safe, y_pred, from_logits=True)
        weights = keras.ops.cast(valid, ce.dtype)
        return keras.ops.sum(ce * weights) / keras.ops.maximum(keras.ops.sum(weights), 1.0)

    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss)
    history = model.fit(images, labels, batch_size=4, epochs=6, verbose=0, shuffle=False)
    return {"backend": BACKEND, "losses": [float(v) for v in history.history["loss"]]}


def task_deform_grad(folder: Path) -> dict:
    from xray_seg.layers.deform import ModulatedDeformConv2D

    rng = np.random.default_rng(4)
    batch, size, channels, filters, k = 1, 5, 2, 3, 3
    taps = k * k
    layer = ModulatedDeformConv2D(filters, k, strides=1, dilation_rate=1, dtype="float64")
    x = rng.normal(size=(batch, size, size, channels))
    whole = rng.integers(-2, 2, size=(batch, size, size, 2 * taps)).astype("float64")
    offset = whole + rng.uniform(0.2, 0.8, size=whole.shape)  # >= 0.2 px from integer positions
    mask = rng.uniform(0.1, 0.9, size=(batch, size, size, taps))
    layer([x, offset, mask])
    weight = rng.normal(size=(batch, size, size, filters))
    kernel0 = keras.ops.convert_to_numpy(layer.kernel)

    # Differentiate w.r.t. the inputs with the kernel fixed (stateless call), and w.r.t.
    # the kernel through keras's stateless_call.
    def loss_inputs(xv, ov, mv):
        return keras.ops.sum(layer([xv, ov, mv]) * keras.ops.convert_to_tensor(weight))

    def loss_kernel(kv):
        values = [kv if v is layer.kernel else v.value for v in layer.trainable_variables]
        out, _ = layer.stateless_call(values, [v.value for v in layer.non_trainable_variables], [x, offset, mask])
        return keras.ops.sum(out * keras.ops.convert_to_tensor(weight))

    analytic = [keras.ops.convert_to_numpy(g) for g in grad_fn(loss_inputs)(x, offset, mask)]
    analytic.append(keras.ops.convert_to_numpy(grad_fn(loss_kernel)(kernel0)[0]))
    bases = [x, offset, mask, kernel0]
    eps, worst, checked = 1e-6, 0.0, 0
    for which, base in enumerate(bases):
        for flat in rng.choice(base.size, size=12, replace=False):
            index = np.unravel_index(flat, base.shape)
            values = []
            for sign in (1.0, -1.0):
                moved = [b.copy() for b in bases]
                moved[which][index] += sign * eps
                value = loss_kernel(moved[3]) if which == 3 else loss_inputs(*moved[:3])
                values.append(float(keras.ops.convert_to_numpy(value)))
            numeric = (values[0] - values[1]) / (2 * eps)
            error = abs(analytic[which][index] - numeric) / max(abs(numeric), 1e-2)
            worst = max(worst, float(error))
            checked += 1
    return {"backend": BACKEND, "checked": checked, "worst_relative_error": worst}


def task_batchnorm(folder: Path) -> dict:
    from xray_seg.layers.norm import BatchNorm

    x = np.load(folder / "bn_input.npy")
    weights = np.load(folder / "bn_weights.npz")
    layer = BatchNorm()
    layer.build(x.shape)
    layer.gamma.assign(weights["gamma"])
    layer.beta.assign(weights["beta"])
    train_out = keras.ops.convert_to_numpy(layer(x, training=True))
    for step in range(2):
        layer(x * (step + 2.0), training=True)
    moving_mean = keras.ops.convert_to_numpy(layer.moving_mean)
    moving_var = keras.ops.convert_to_numpy(layer.moving_variance)
    infer_out = keras.ops.convert_to_numpy(layer(x, training=False))
    upstream = np.load(folder / "bn_upstream.npy")

    def loss(xv, gamma, beta):
        values = []
        for v in layer.trainable_variables:
            values.append(gamma if v is layer.gamma else beta)
        nontrainable = [v.value for v in layer.non_trainable_variables]
        out, _ = layer.stateless_call(values, nontrainable, xv, training=True)
        return keras.ops.sum(out * keras.ops.convert_to_tensor(upstream))

    gx, ggamma, gbeta = (keras.ops.convert_to_numpy(g) for g in grad_fn(loss)(x, weights["gamma"], weights["beta"]))
    np.savez(
        folder / f"bn.{BACKEND}.npz",
        train_out=train_out,
        moving_mean=moving_mean,
        moving_var=moving_var,
        infer_out=infer_out,
        grad_x=gx,
        grad_gamma=ggamma,
        grad_beta=gbeta,
    )
    return {"backend": BACKEND}


TASKS = {"logits": task_logits, "fit": task_fit, "deform_grad": task_deform_grad, "batchnorm": task_batchnorm}

if __name__ == "__main__":
    task, folder = sys.argv[1], Path(sys.argv[2])
    assert os.environ.get("KERAS_BACKEND") == BACKEND, (os.environ.get("KERAS_BACKEND"), BACKEND)
    print(json.dumps(TASKS[task](folder)))
