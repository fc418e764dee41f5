"""Losses: ignore-aware CE, class weights, OHEM selection, aux-head weights, serialisation."""

import keras
import numpy as np
import pytest
from keras import ops

from xray_seg.training.losses import (
    OhemCrossEntropy,
    SegmentationCrossEntropy,
    aux_loss_weights,
    make_loss,
)


def np_ce(logits, labels):
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    safe = np.where(labels == 255, 0, labels)
    ce = -np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    return ce, np.exp(-ce)  # per-pixel CE and the probability of the true class


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 6, 5, 4)).astype("float32") * 2
    labels = rng.integers(0, 4, size=(2, 6, 5)).astype("uint8")
    labels[0, :2] = 255
    labels[1, -1, :] = 255
    return logits, labels


def test_ce_is_mean_over_valid_pixels(batch):
    logits, labels = batch
    ce, _ = np_ce(logits, labels)
    valid = labels != 255
    want = ce[valid].mean()
    got = float(SegmentationCrossEntropy()(labels, logits))
    assert got == pytest.approx(want, rel=1e-5)
    # labels with a trailing channel axis give the same
    assert float(SegmentationCrossEntropy()(labels[..., None], logits)) == pytest.approx(want, rel=1e-5)
    # ignored pixels have no influence whatever their logits
    logits2 = logits.copy()
    logits2[labels == 255] = 100.0
    assert float(SegmentationCrossEntropy()(labels, logits2)) == pytest.approx(want, rel=1e-5)


def test_ce_class_weights_weighted_mean(batch):
    logits, labels = batch
    w = np.array([0.5, 1.0, 2.0, 3.0], dtype="float32")
    ce, _ = np_ce(logits, labels)
    valid = labels != 255
    wy = w[np.where(valid, labels, 0)] * valid
    want = (wy * ce).sum() / wy.sum()
    got = float(SegmentationCrossEntropy(class_weights=w.tolist())(labels, logits))
    assert got == pytest.approx(want, rel=1e-5)


def test_ce_reductions(batch):
    logits, labels = batch
    ce, _ = np_ce(logits, labels)
    valid = labels != 255
    per_pixel = np.asarray(SegmentationCrossEntropy(reduction=None)(labels, logits))
    assert per_pixel.shape == labels.shape
    np.testing.assert_allclose(per_pixel, np.where(valid, ce, 0.0), rtol=1e-5, atol=1e-6)
    total = float(SegmentationCrossEntropy(reduction="sum")(labels, logits))
    assert total == pytest.approx(ce[valid].sum(), rel=1e-5)


def test_all_ignore_gives_zero_and_finite_gradient():
    import tensorflow as tf

    logits = tf.Variable(np.random.default_rng(1).normal(size=(1, 4, 4, 3)).astype("float32"))
    labels = np.full((1, 4, 4), 255, dtype="uint8")
    for loss in (SegmentationCrossEntropy(), OhemCrossEntropy(min_kept=5)):
        with tf.GradientTape() as tape:
            value = loss(labels, logits)
        grad = tape.gradient(value, logits)
        assert float(value) == 0.0
        assert np.all(np.isfinite(grad.numpy())) and np.all(grad.numpy() == 0)


def _np_ohem(logits, labels, thresh, min_kept, frac=0.0):
    ce, p = np_ce(logits, labels)
    valid = labels != 255
    pv = np.sort(p[valid])
    k = min(max(min_kept, int(np.ceil(frac * valid.sum()))), valid.sum())
    kth = pv[k - 1] if k > 0 else -1.0
    keep = valid & ((p < thresh) | (p <= kth))
    return keep, (ce[keep].mean() if keep.any() else 0.0)


@pytest.mark.parametrize("thresh,min_kept,frac", [(0.7, 3, 0.0), (0.05, 20, 0.0), (0.0, 0, 0.75), (0.7, 10_000, 0.0)])
def test_ohem_selection_matches_reference(batch, thresh, min_kept, frac):
    logits, labels = batch
    loss = OhemCrossEntropy(thresh=thresh, min_kept=min_kept, min_kept_fraction=frac)
    keep_want, value_want = _np_ohem(logits, labels, thresh, min_kept, frac)
    keep = np.asarray(loss.keep_mask(ops.convert_to_tensor(labels.astype("float32")), logits))
    np.testing.assert_array_equal(keep, keep_want)
    assert keep.sum() >= min(min_kept, (labels != 255).sum())
    assert float(loss(labels, logits)) == pytest.approx(value_want, rel=1e-5)


def test_ohem_raises_threshold_to_min_kept(batch):
    logits, labels = batch
    n_valid = int((labels != 255).sum())
    # thresh 0 selects nothing by itself: exactly the min_kept lowest-probability pixels remain
    keep = np.asarray(OhemCrossEntropy(thresh=0.0, min_kept=7).keep_mask(ops.convert_to_tensor(labels), logits))
    assert keep.sum() == 7
    _, p = np_ce(logits, labels)
    assert p[keep].max() <= np.sort(p[labels != 255])[6] + 1e-7
    # IFBFNet eq. 7: the 3/4 of valid pixels with the largest loss
    keep = np.asarray(
        OhemCrossEntropy(thresh=0.0, min_kept=0, min_kept_fraction=0.75).keep_mask(
            ops.convert_to_tensor(labels), logits
        )
    )
    assert keep.sum() == int(np.ceil(0.75 * n_valid))


def test_ohem_gradient_only_on_kept_pixels(batch):
    import tensorflow as tf

    logits, labels = batch
    loss = OhemCrossEntropy(thresh=0.3, min_kept=4)
    var = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = loss(labels, var)
    grad = tape.gradient(value, var).numpy()
    keep, _ = _np_ohem(logits, labels, 0.3, 4)
    assert np.all(grad[~keep] == 0)
    assert np.all(np.abs(grad[keep]).sum(-1) > 0)


@pytest.mark.parametrize(
    "loss",
    [
        SegmentationCrossEntropy(class_weights=[1.0, 2.0]),
        OhemCrossEntropy(thresh=0.6, min_kept=12, min_kept_fraction=0.5),
    ],
)
def test_loss_serialisation_round_trip(loss):
    config = keras.losses.serialize(loss)
    again = keras.losses.deserialize(config)
    assert type(again) is type(loss)
    assert again.get_config() == loss.get_config()


def test_make_loss_and_errors():
    assert isinstance(make_loss("ce"), SegmentationCrossEntropy)
    ohem = make_loss("ohem", thresh=0.5, min_kept=9)
    assert isinstance(ohem, OhemCrossEntropy) and ohem.thresh == 0.5 and ohem.min_kept == 9
    from xray_seg.core.errors import ConfigError

    with pytest.raises(ConfigError):
        make_loss("tversky")  # dice, focal, lovasz exist since issue 19
    with pytest.raises(ValueError):
        OhemCrossEntropy(thresh=1.5)
    with pytest.raises(ValueError):
        SegmentationCrossEntropy(class_weights=[1.0, -1.0])


def test_aux_loss_weights():
    assert aux_loss_weights(["logits", "aux"]) == {"logits": 1.0, "aux": 0.4}
    assert aux_loss_weights(("aux2", "logits", "aux"), aux_weight=0.25) == {"aux2": 0.25, "logits": 1.0, "aux": 0.25}
    with pytest.raises(ValueError):
        aux_loss_weights(["aux"])
    with pytest.raises(ValueError):
        aux_loss_weights(["logits", "edges"])


def test_dict_output_model_total_loss_is_eq8():
    """compile(loss_weights=aux_loss_weights(...)) gives l_out + 0.4 * l_aux (IFBFNet eq. 8)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    out = {"logits": keras.layers.Conv2D(3, 1, name="logits")(inp), "aux": keras.layers.Conv2D(3, 1, name="aux")(inp)}
    model = keras.Model(inp, out)
    loss = SegmentationCrossEntropy()
    model.compile(loss={"logits": loss, "aux": loss}, loss_weights=aux_loss_weights(["logits", "aux"]))
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=(2, 8, 8)).astype("uint8")
    y[0, 0] = 255
    result = model.evaluate(x, {"logits": y, "aux": y}, return_dict=True, verbose=0)
    pred = model.predict(x, verbose=0)
    l_out = float(loss(y, pred["logits"]))
    l_aux = float(loss(y, pred["aux"]))
    assert result["loss"] == pytest.approx(l_out + 0.4 * l_aux, rel=1e-4)


def test_ohem_trains_under_xla_with_streaming_metric():
    from xray_seg.evaluation.metrics import StreamingConfusionMatrix

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(3, 3, padding="same")])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=OhemCrossEntropy(thresh=0.7, min_kept=64),
        metrics=[StreamingConfusionMatrix(3)],
        jit_compile=True,
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(8, 16, 16, 3)).astype("float32")
    y = (x[..., 0] > 128).astype("uint8") + (x[..., 1] > 200).astype("uint8")
    y[:, :2] = 255
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0).history
    assert all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]
    assert 0.0 <= history["miou"][-1] <= 1.0


@pytest.mark.parametrize("min_kept", [1, 7, 50, 10_000])
def test_ohem_top_k_path_agrees_with_the_sort_path(batch, min_kept):
    """min_kept_fraction=0 takes the static top_k path; a negligible fraction forces the sort."""
    logits, labels = batch
    y_true = ops.convert_to_tensor(labels.astype("float32"))
    fast = np.asarray(OhemCrossEntropy(thresh=0.2, min_kept=min_kept).keep_mask(y_true, logits))
    slow = np.asarray(OhemCrossEntropy(thresh=0.2, min_kept=min_kept, min_kept_fraction=1e-9).keep_mask(y_true, logits))
    np.testing.assert_array_equal(fast, slow)
