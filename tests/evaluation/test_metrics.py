"""Paper 1 metrics (eqs. 4-7) from confusion matrices; streaming Keras metric; tf.distribute."""

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from xray_seg.core.errors import DatasetError
from xray_seg.evaluation.metrics import StreamingConfusionMatrix, confusion_matrix, segmentation_scores

NAMES = ["_background_", "gun", "knife", "wrench", "pliers"]
# class 3 ("wrench") appears nowhere (its pixels are ignored); class 4 is predicted, never true
TRUTH = np.array([[0, 0, 0, 1, 1, 2, 2, 255, 255]])
PRED = np.array([[0, 0, 4, 1, 0, 2, 2, 1, 3]])
CM = np.array(
    [
        [2, 0, 0, 0, 1],
        [1, 1, 0, 0, 0],
        [0, 0, 2, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
)


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(TRUTH, PRED, 5)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, CM)
    # uint8 masks as read from PNGs give the same
    np.testing.assert_array_equal(confusion_matrix(TRUTH.astype(np.uint8), PRED.astype(np.uint8), 5), CM)


def test_confusion_matrix_errors():
    with pytest.raises(DatasetError, match=r"\[7\]"):
        confusion_matrix(np.array([0, 7]), np.array([0, 1]), 5)
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 1]), np.array([0, 5]), 5)
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 1]), np.array([0]), 5)


def test_scores_by_hand_with_absent_classes():
    s = segmentation_scores(CM, NAMES)
    assert s["pa"] == pytest.approx(5 / 7)  # eq. 4
    want_pa = [2 / 3, 1 / 2, 1.0, math.nan, math.nan]
    np.testing.assert_allclose(s["class_pa"], want_pa)
    assert s["mpa"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)  # eq. 5 over classes present in truth
    np.testing.assert_allclose(s["iou"], [0.5, 0.5, 1.0, math.nan, 0.0])  # eq. 6
    # wrench (absent everywhere) is excluded, pliers (predicted only) counts with IoU 0
    assert s["miou"] == pytest.approx(0.5)  # eq. 7
    assert s["classes_in_truth"] == ["_background_", "gun", "knife"]
    assert s["classes_evaluated"] == ["_background_", "gun", "knife", "pliers"]
    assert s["gt_pixels"] == [3, 2, 2, 0, 0] and s["pred_pixels"] == [3, 1, 2, 0, 1]
    assert s["total_pixels"] == 7 and s["num_classes"] == 5
    assert "excluded" in s["absent_class_policy"]
    assert s["confusion_matrix"] == CM.tolist()


def test_scores_perfect_and_empty():
    s = segmentation_scores(np.diag([5, 3, 0]))
    assert s["pa"] == s["mpa"] == s["miou"] == 1.0
    assert s["class_names"] == ["0", "1", "2"]
    e = segmentation_scores(np.zeros((3, 3)))
    assert math.isnan(e["pa"]) and math.isnan(e["mpa"]) and math.isnan(e["miou"])
    with pytest.raises(ValueError):
        segmentation_scores(np.zeros((3, 3)), ["a", "b"])


def one_hot_logits(pred, k):
    return np.eye(k, dtype="float32")[pred] * 5.0


def test_streaming_metric_matches_numpy_and_one_shot():
    rng = np.random.default_rng(0)
    k = 4
    truth = rng.integers(0, k, size=(6, 16, 16))
    truth[rng.random(truth.shape) < 0.1] = 255
    logits = rng.normal(size=(6, 16, 16, k)).astype("float32")
    metric = StreamingConfusionMatrix(k, class_names=["bg", "a", "b", "c"])
    for i in range(0, 6, 2):  # three batches
        metric.update_state(truth[i : i + 2].astype("uint8"), logits[i : i + 2])
    want = confusion_matrix(truth, logits.argmax(-1), k)
    np.testing.assert_array_equal(metric.matrix(), want)
    one_shot = StreamingConfusionMatrix(k)
    one_shot.update_state(truth[..., None], logits)  # [B,H,W,1] labels too
    np.testing.assert_array_equal(one_shot.matrix(), want)
    assert float(metric.result()) == pytest.approx(segmentation_scores(want)["miou"], rel=1e-6)
    assert metric.scores()["class_names"] == ["bg", "a", "b", "c"]
    metric.reset_state()
    assert metric.matrix().sum() == 0


def test_streaming_metric_absent_classes_and_sample_weight():
    metric = StreamingConfusionMatrix(5)
    metric.update_state(TRUTH.reshape(1, 1, 9), one_hot_logits(PRED.reshape(1, 1, 9), 5))
    np.testing.assert_array_equal(metric.matrix(), CM)
    assert float(metric.result()) == pytest.approx(0.5)
    weighted = StreamingConfusionMatrix(5)
    sw = np.ones((1, 1, 9), dtype="float32")
    sw[0, 0, 2] = 0  # drop the pixel truth 0 -> predicted 4
    weighted.update_state(TRUTH.reshape(1, 1, 9), one_hot_logits(PRED.reshape(1, 1, 9), 5), sample_weight=sw)
    want = CM.copy()
    want[0, 4] = 0
    np.testing.assert_array_equal(weighted.matrix(), want)
    with pytest.raises(ValueError):
        metric.update_state(TRUTH.reshape(1, 1, 9), one_hot_logits(PRED.reshape(1, 1, 9), 5)[..., :4])


def test_streaming_metric_in_compiled_model_and_serialisation():
    keras.utils.set_random_seed(0)
    k = 3
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(k, 1)])
    model.compile(loss="sparse_categorical_crossentropy", metrics=[StreamingConfusionMatrix(k)], jit_compile=True)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 8, 8, 3)).astype("float32")
    y = rng.integers(0, k, size=(5, 8, 8)).astype("int32")
    result = model.evaluate(x, y, batch_size=2, return_dict=True, verbose=0)
    want = segmentation_scores(confusion_matrix(y, model.predict(x, verbose=0).argmax(-1), k))["miou"]
    assert result["miou"] == pytest.approx(want, rel=1e-5)
    again = keras.metrics.deserialize(keras.metrics.serialize(StreamingConfusionMatrix(k, class_names=["a", "b", "c"])))
    assert isinstance(again, StreamingConfusionMatrix) and again.get_config()["class_names"] == ["a", "b", "c"]


DISTRIBUTED = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from xray_seg.training.losses import SegmentationCrossEntropy
    from xray_seg.evaluation.metrics import StreamingConfusionMatrix, confusion_matrix

    k = 3
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, k, size=(8, 8, 8)).astype("int32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(k, 1)])
        model.compile(loss=SegmentationCrossEntropy(), metrics=[StreamingConfusionMatrix(k)])
    res = model.evaluate(x, y, batch_size=4, return_dict=True, verbose=0)
    pred = model.predict(x, verbose=0).argmax(-1)
    metric = [m for m in model.metrics if isinstance(m, StreamingConfusionMatrix)]
    if not metric:
        metric = [m for m in model.metrics[-1].metrics if isinstance(m, StreamingConfusionMatrix)]
    keras_cm = metric[0].matrix().tolist()

    # custom loop: each replica adds its half of the batch; the read-out is the SUM
    with strategy.scope():
        m2 = StreamingConfusionMatrix(k)
    logits = model.predict(x, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((y, logits)).batch(4)
    for yb, lb in strategy.experimental_distribute_dataset(ds):
        strategy.run(m2.update_state, args=(yb, lb))

    plain = SegmentationCrossEntropy()(y, logits)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "keras_cm": keras_cm,
        "loop_cm": m2.matrix().tolist(),
        "want_cm": confusion_matrix(y, pred, k).tolist(),
        "miou": res["miou"], "loop_miou": float(m2.result()),
        "loss": res["loss"], "plain_loss": float(plain),
    }))
    """
)


def test_streaming_metric_sums_over_mirrored_replicas(tmp_path):
    script = tmp_path / "distributed.py"
    script.write_text(DISTRIBUTED)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(repo), "CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert out["keras_cm"] == out["want_cm"]
    assert out["loop_cm"] == out["want_cm"]
    assert sum(map(sum, out["want_cm"])) == 8 * 8 * 8
    assert out["miou"] == pytest.approx(out["loop_miou"], rel=1e-5)
    # the loss is scaled per replica, so the distributed loss equals the single-device one
    assert out["loss"] == pytest.approx(out["plain_loss"], rel=1e-4)
