"""Dice, focal, Lovasz-softmax and weighted sums: hand-computed values on a 2x2 case,
finite-difference gradients (float64), ignore label, class weights, config, serialisation.

The tiny case: one 2x2 image, 3 classes, logits = log(p) so that softmax gives p exactly.

    pixel  p(0) p(1) p(2)  label
    (0,0)  0.7  0.2  0.1   0
    (0,1)  0.2  0.5  0.3   1
    (1,0)  0.1  0.1  0.8   2
    (1,1)  0.3  0.3  0.4   255 (ignored)
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from xray_seg.core.config import load_config
from xray_seg.core.errors import ConfigError
from xray_seg.training.config import TrainConfig
from xray_seg.training.losses import (
    CompositeLoss,
    DiceLoss,
    FocalLoss,
    LovaszSoftmaxLoss,
    OhemCrossEntropy,
    SegmentationCrossEntropy,
    loss_from_config,
    make_loss,
)

P = np.array([[[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]], [[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]])
LOGITS = np.log(P)[None].astype("float32")  # [1, 2, 2, 3]
LABELS = np.array([[[0, 1], [2, 255]]], dtype="uint8")


def value(loss, labels=LABELS, logits=LOGITS):
    return float(loss(labels, logits))


def test_dice_hand_computed():
    # valid pixels (0,0),(0,1),(1,0); smooth 1:
    # class 0: sum P = .7+.2+.1 = 1.0, sum Y = 1, P.Y = .7 -> D = (1.4 + 1) / (2 + 1) = 0.8
    # class 1: sum P = .2+.5+.1 = 0.8, sum Y = 1, P.Y = .5 -> D = (1.0 + 1) / (1.8 + 1) = 0.7142857
    # class 2: sum P = .1+.3+.8 = 1.2, sum Y = 1, P.Y = .8 -> D = (1.6 + 1) / (2.2 + 1) = 0.8125
    # loss = 1 - mean = 1 - 2.3267857 / 3 = 0.2244048
    assert value(DiceLoss()) == pytest.approx(1 - (0.8 + 2 / 2.8 + 0.8125) / 3, abs=1e-6)
    # class weights (1, 2, 1): 1 - (0.8 + 2 * 0.7142857 + 0.8125) / 4 = 0.2397321
    assert value(DiceLoss(class_weights=[1, 2, 1])) == pytest.approx(1 - (0.8 + 4 / 2.8 + 0.8125) / 4, abs=1e-6)


def test_focal_hand_computed():
    # FL = -(1 - p_y)^2 log p_y: (0.3^2)(-ln .7) = 0.0321007, (0.5^2)(-ln .5) = 0.1732868,
    # (0.2^2)(-ln .8) = 0.0089257; mean over the 3 valid pixels = 0.0714378
    terms = np.array([0.09 * -np.log(0.7), 0.25 * -np.log(0.5), 0.04 * -np.log(0.8)])
    assert value(FocalLoss(gamma=2.0)) == pytest.approx(terms.mean(), abs=1e-6)
    # alpha = class weights (1, 2, 1): (t0 + 2 t1 + t2) / 4 = 0.0969000
    assert value(FocalLoss(gamma=2.0, class_weights=[1, 2, 1])) == pytest.approx((terms @ [1, 2, 1]) / 4, abs=1e-6)
    # gamma 0 is cross-entropy
    assert value(FocalLoss(gamma=0.0)) == pytest.approx(value(SegmentationCrossEntropy()), abs=1e-6)


def test_lovasz_hand_computed():
    # class 0: errors |Y - P| = (.3, .2, .1), gt (1, 0, 0); sorted the same.
    #   gts = 1, inter = 1 - cumsum(gt) = (0, 0, 0), union = 1 + cumsum(1 - gt) = (1, 2, 3)
    #   J = 1 - inter/union = (1, 1, 1) -> grad (1, 0, 0) -> loss .3
    # class 1: errors (.2, .5, .1), gt (0, 1, 0); sorted (.5 g1, .2 g0, .1 g0) -> grad (1, 0, 0) -> .5
    # class 2: errors (.1, .3, .2), gt (0, 0, 1); sorted (.3 g0, .2 g1, .1 g0):
    #   inter = (1, 0, 0), union = (2, 2, 3), J = (.5, 1, 1) -> grad (.5, .5, 0) -> .15 + .10 = .25
    # mean = (.3 + .5 + .25) / 3 = 0.35; weights (1, 2, 1): (.3 + 1.0 + .25) / 4 = 0.3875
    assert value(LovaszSoftmaxLoss()) == pytest.approx(0.35, abs=1e-6)
    assert value(LovaszSoftmaxLoss(class_weights=[1, 2, 1])) == pytest.approx(0.3875, abs=1e-6)


def test_lovasz_present_vs_all_classes():
    # pixel (1,0) ignored too: labels 0, 1 only.
    # class 0: errors (.3, .2), gt (1, 0) -> .3; class 1: errors (.2, .5), gt (0, 1) -> .5
    # class 2 (absent): errors (.1, .3), gt (0, 0): gts = 0, union = (1, 2), J = (1, 1) -> grad (1, 0) -> .3
    labels = np.array([[[0, 1], [255, 255]]], dtype="uint8")
    assert value(LovaszSoftmaxLoss(classes="present"), labels) == pytest.approx(0.4, abs=1e-6)
    assert value(LovaszSoftmaxLoss(classes="all"), labels) == pytest.approx(1.1 / 3, abs=1e-6)


def test_lovasz_per_image_and_batch():
    # image 2 is all ignored: per image (0.35 + 0) / 2; as one set the ignored image adds nothing
    logits = np.concatenate([LOGITS, LOGITS])
    labels = np.concatenate([LABELS, np.full_like(LABELS, 255)])
    assert value(LovaszSoftmaxLoss(per_image=True), labels, logits) == pytest.approx(0.175, abs=1e-6)
    assert value(LovaszSoftmaxLoss(per_image=False), labels, logits) == pytest.approx(0.35, abs=1e-6)


def test_ce_plus_dice_weighted_sum():
    # CE = (-ln .7 - ln .5 - ln .8) / 3 = 0.4243219; dice = 0.2244048 (above); 1 * CE + 0.5 * dice
    ce = -(np.log(0.7) + np.log(0.5) + np.log(0.8)) / 3
    dice = 1 - (0.8 + 2 / 2.8 + 0.8125) / 3
    loss = make_loss("ce+dice", weights=[1.0, 0.5])
    assert isinstance(loss, CompositeLoss)
    assert value(loss) == pytest.approx(ce + 0.5 * dice, abs=1e-6)
    assert value(make_loss("ce+lovasz")) == pytest.approx(ce + 0.35, abs=1e-6)


def test_ignored_pixels_change_nothing():
    # any logits at the ignored pixel give the same loss and zero gradient there
    other = LOGITS.copy()
    other[0, 1, 1] = [5.0, -3.0, 1.0]
    for loss in (DiceLoss(), FocalLoss(), LovaszSoftmaxLoss(), make_loss("ce+dice")):
        assert value(loss) == pytest.approx(value(loss, LABELS, other), abs=1e-7)
        x = tf.constant(other)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = loss(LABELS, x)
        assert np.abs(tape.gradient(out, x).numpy()[0, 1, 1]).max() == 0.0


def test_all_ignored_batch_is_zero_not_nan():
    labels = np.full_like(LABELS, 255)
    for loss in (FocalLoss(), LovaszSoftmaxLoss(), LovaszSoftmaxLoss(per_image=True)):
        assert value(loss, labels) == 0.0
    assert np.isfinite(value(DiceLoss(), labels))


@pytest.mark.parametrize(
    "loss",
    [
        DiceLoss(dtype="float64"),
        DiceLoss(class_weights=[1, 3, 0.5], dtype="float64"),
        FocalLoss(gamma=2.0, class_weights=[1, 2, 1], dtype="float64"),
        LovaszSoftmaxLoss(dtype="float64"),
        LovaszSoftmaxLoss(per_image=True, classes="all", dtype="float64"),
        make_loss("ce+dice", weights=[1.0, 0.7], dtype="float64"),
        make_loss("focal+lovasz", dtype="float64"),
    ],
    ids=["dice", "dice_w", "focal", "lovasz", "lovasz_img_all", "ce+dice", "focal+lovasz"],
)
def test_gradient_matches_finite_differences(loss):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, 3, 3))
    labels = rng.integers(0, 3, size=(2, 3, 3)).astype("uint8")
    labels[0, 0, 0] = 255
    x = tf.constant(logits, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = loss(labels, x)
    assert out.dtype == tf.float64
    grad = tape.gradient(out, x).numpy()
    eps, numeric = 1e-6, np.zeros_like(logits)
    for i in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[i] += eps
        down[i] -= eps
        numeric[i] = (float(loss(labels, tf.constant(up))) - float(loss(labels, tf.constant(down)))) / (2 * eps)
    # Lovasz is piecewise linear in the errors: random logits stay away from ties
    np.testing.assert_allclose(grad, numeric, atol=1e-7, rtol=1e-5)


def test_serialisation_round_trip():
    for loss in (
        DiceLoss(smooth=0.5, class_weights=[1, 2, 3]),
        FocalLoss(gamma=1.5),
        LovaszSoftmaxLoss(per_image=True),
        make_loss("ohem+dice", weights=[1, 2], thresh=0.6, min_kept=2),
    ):
        again = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(again) is type(loss)
        assert value(again) == pytest.approx(value(loss), abs=1e-7)


def test_make_loss_errors():
    with pytest.raises(ConfigError):
        make_loss("ce+bogus")
    with pytest.raises(ConfigError):
        make_loss("ce+dice", weights=[1.0])
    with pytest.raises(ConfigError):
        make_loss("dice", gamma=2.0)  # an option no term takes
    assert isinstance(make_loss("ohem+focal", thresh=0.5, gamma=1.0).losses[0], OhemCrossEntropy)


def test_config_and_overrides_choose_the_loss():
    cfg = load_config(
        TrainConfig, "demo_cpu", ["loss.type=ohem+dice", "loss.weights=[1.0,0.5]", "loss.dice_smooth=2.0"]
    )
    loss = loss_from_config(cfg.loss)
    assert isinstance(loss, CompositeLoss) and loss.weights == [1.0, 0.5]
    assert loss.losses[0].min_kept == cfg.loss.ohem_min_kept and loss.losses[1].smooth == 2.0
    cfg = load_config(TrainConfig, None, ["loss.type=focal", "loss.focal_gamma=1.0"])
    assert loss_from_config(cfg.loss, [1.0, 2.0]).gamma == 1.0
    cfg = load_config(TrainConfig, None, ["loss.type=lovasz", "loss.lovasz_per_image=true"])
    assert loss_from_config(cfg.loss).per_image


def test_trainer_trains_with_a_sum_loss_and_tip(tiny_voc, tmp_path):
    """loss.type=ce+dice and data.augment.tip_prob from --set reach the trainer: one tiny run
    trains, saves a loadable model and writes them into its resolved config."""
    import yaml

    from xray_seg.training.trainer import train

    cfg = load_config(
        TrainConfig,
        "demo_cpu",
        [
            f"data.voc_dir={tiny_voc}",
            "model.width=0.0625",
            "data.image_size=[64,64]",
            "data.batch_size=4",
            "num_val_images=1",
            "epochs=1",
            "steps_per_epoch=1",
            "loss.type=ce+dice",
            "loss.weights=[1.0,0.5]",
            "data.augment.tip_prob=1.0",
            "data.augment.tip_max_threats=2",
        ],
    )
    result = train(cfg, tmp_path / "run", verbose=0)
    assert result.epochs_done == 1 and np.isfinite(result.best_miou)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["loss"]["type"] == "ce+dice" and saved["data"]["augment"]["tip_prob"] == 1.0
    keras.saving.load_model(tmp_path / "run" / "best_model.keras", compile=True)


def test_same_values_and_gradients_on_jax():
    """keras.ops only: under the JAX backend the hand-computed values hold and ignored pixels get no gradient."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    pytest.importorskip("jax")
    script = textwrap.dedent("""
        import numpy as np, jax
        from xray_seg.training.losses import make_loss
        P = np.array([[[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]], [[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]])
        x, y = np.log(P)[None].astype("float32"), np.array([[[0, 1], [2, 255]]], "uint8")
        for kind in ["dice", "focal", "lovasz", "ce+dice"]:
            loss = make_loss(kind)
            g = np.asarray(jax.grad(lambda z: loss(y, z))(x))
            print(kind, float(loss(y, x)), bool(np.all(g[0, 1, 1] == 0)) and bool(np.all(np.isfinite(g))))
    """)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(root), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    got = {line.split()[0]: (float(line.split()[1]), line.split()[2]) for line in out.splitlines() if line.strip()}
    dice = 1 - (0.8 + 2 / 2.8 + 0.8125) / 3
    ce = -(np.log(0.7) + np.log(0.5) + np.log(0.8)) / 3
    want = {
        "dice": dice,
        "focal": (0.09 * -np.log(0.7) + 0.25 * -np.log(0.5) + 0.04 * -np.log(0.8)) / 3,
        "lovasz": 0.35,
        "ce+dice": ce + dice,
    }
    for kind, value in want.items():
        assert got[kind][0] == pytest.approx(value, abs=1e-6) and got[kind][1] == "True", kind
