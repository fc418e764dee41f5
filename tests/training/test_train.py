"""The trainer: end to end with evaluate and predict, exact resume, NaN stop, strategies."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from xray_seg.core.config import load_config
from xray_seg.training.config import TrainConfig

TINY = [
    "model.width=0.125",
    "data.image_size=[64,64]",
    "data.batch_size=4",
    "optim.lr=1e-3",
    "num_val_images=1",
]


def tiny_config(voc, *extra):
    return load_config(TrainConfig, "demo_cpu", [f"data.voc_dir={voc}", *TINY, *extra])


def weights_of(path):
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if hasattr(obj, "shape") else None)
    return out


def history_val_miou(run) -> list[float]:
    with open(run / "history.csv", newline="") as f:
        return [float(row["val_miou"] or "nan") for row in csv.DictReader(f)]  # blank: no validation


def val_class_pixels(voc, num_classes: int) -> list[int]:
    """Pixels of each class in the val masks (the ground truth evaluate counts; 255 left out)."""
    from xray_seg.conversion.voc import load_label_png, read_split

    masks = [load_label_png(voc / "SegmentationClass" / f"{stem}.png") for stem in read_split(voc, "val")]
    return np.bincount(np.concatenate([m[m != 255].ravel() for m in masks]), minlength=num_classes).tolist()


def test_train_evaluate_predict_end_to_end(tiny_voc, tmp_path):
    from xray_seg.evaluation.evaluator import evaluate
    from xray_seg.inference.prediction_files import predict_images
    from xray_seg.training.trainer import train

    run = tmp_path / "run"
    result = train(tiny_config(tiny_voc, "epochs=2", "steps_per_epoch=2"), run, verbose=0)
    assert result.epochs_done == 2
    val_miou = np.array(history_val_miou(run))  # NaN in an epoch without validation
    assert len(val_miou) == 2
    assert result.best_miou == pytest.approx(np.nanmax(val_miou))
    assert result.best_epoch == 1 + int(np.nanargmax(val_miou))
    for name in [
        "config.yaml",
        "class_names.txt",
        "best_model.keras",
        "history.csv",
        "training_curves.png",
        "checkpoints/last.weights.h5",
        "checkpoints/state.json",
    ]:
        assert (run / name).is_file(), name
    header = (run / "history.csv").read_text().splitlines()[0]
    assert "val_miou" in header and "val_iou_gun" in header and "lr" in header
    assert any((run / "logs").rglob("events.out.tfevents*"))

    ev = evaluate(run, tiny_voc, split="val", out_dir=tmp_path / "eval", progress=False)
    assert ev.num_images == 4
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["miou"] == pytest.approx(ev.scores["miou"])
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file() and (tmp_path / "eval" / "report.md").is_file()

    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"not an image")
    good = next((tiny_voc / "JPEGImages").iterdir())
    report = predict_images(run, [str(good), str(bad)], tmp_path / "pred", progress=False)
    assert len(report.written) == 1 and report.failures and str(bad) in report.failures[0][0]
    doc = json.loads((tmp_path / "pred" / f"{good.stem}.json").read_text())
    assert (doc["height"], doc["width"], doc["image"]) == (64, 64, str(good))
    assert len(doc["items"]) == report.items_found  # the one image written holds every item found
    assert (tmp_path / "pred" / f"{good.stem}_overlay.png").is_file()


def test_refuses_existing_run_dir(tiny_voc, tmp_path):
    from xray_seg.core.errors import OutputExistsError
    from xray_seg.training.trainer import train

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        train(tiny_config(tiny_voc, "epochs=1"), tmp_path / "run", verbose=0)


def test_resume_is_exact(tiny_voc, tmp_path):
    """2 epochs straight == 1 epoch, stop, resume for 1 more (deterministic mode)."""
    from xray_seg.training.trainer import resume_config, train

    extra = ["deterministic=true", "steps_per_epoch=2", "model.width=0.125"]
    train(tiny_config(tiny_voc, "epochs=2", *extra), tmp_path / "straight", verbose=0)
    train(tiny_config(tiny_voc, "epochs=2", *extra), tmp_path / "split", verbose=0, stop_after_epochs=1)
    assert json.loads((tmp_path / "split" / "checkpoints" / "state.json").read_text())["epochs_done"] == 1
    train(resume_config(tmp_path / "split"), tmp_path / "split", resume=True, verbose=0)
    a = weights_of(tmp_path / "straight" / "checkpoints" / "last.weights.h5")
    b = weights_of(tmp_path / "split" / "checkpoints" / "last.weights.h5")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert json.loads((tmp_path / "split" / "checkpoints" / "state.json").read_text())["epochs_done"] == 2


def test_nan_loss_stops_with_clear_error(tiny_voc, tmp_path, monkeypatch):
    """A loss that turns NaN (here: forced, since a huge lr no longer reliably diverges
    with fused batch norm) stops the run with a message naming NaN."""
    from keras import ops

    from xray_seg.training.callbacks import TrainingError
    from xray_seg.training.losses import OhemCrossEntropy
    from xray_seg.training.trainer import train

    monkeypatch.setattr(OhemCrossEntropy, "call", lambda self, y_true, y_pred: ops.mean(y_pred, axis=-1) * float("nan"))
    with pytest.raises(TrainingError, match="NaN"):
        train(tiny_config(tiny_voc, "epochs=1", "steps_per_epoch=2"), tmp_path / "run", verbose=0)


def test_lr_multipliers_scale_updates():
    """IFBFNet's 10x rate for some modules: the update of matching variables is 10x larger."""
    import keras

    from xray_seg.training.optim import build_optimizer

    def updates(multipliers, optimizer):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, name="body"), keras.layers.Dense(1, name="aux_head")]
        )
        before = [v.numpy().copy() for v in model.trainable_variables]
        model.compile(build_optimizer(optimizer, 0.01, momentum=0.0, lr_multipliers=multipliers), "mse")
        model.fit(np.ones((4, 4)), np.ones((4, 1)), epochs=1, batch_size=4, verbose=0)
        return [np.abs(v.numpy() - b).sum() for v, b in zip(model.trainable_variables, before)]

    for optimizer in ("sgd", "adam"):
        base, scaled = updates({}, optimizer), updates({"aux_head": 10.0}, optimizer)
        ratios = [s / b for s, b in zip(scaled, base)]
        np.testing.assert_allclose(ratios[:2], [1.0, 1.0], rtol=1e-5)  # body kernel, bias
        np.testing.assert_allclose(ratios[2:], [10.0, 10.0], rtol=1e-4)  # aux_head kernel, bias


def test_warmup_poly_schedule():
    from xray_seg.training.optim import WarmupPoly

    s = WarmupPoly(1.0, total_steps=100, power=0.9, warmup_steps=10, warmup_ratio=0.1)
    assert float(s(0)) == pytest.approx(0.1)
    assert float(s(5)) == pytest.approx(0.55)
    assert float(s(50)) == pytest.approx(0.5**0.9, rel=1e-5)
    assert float(s(100)) == pytest.approx(0.0, abs=1e-7)
    assert float(WarmupPoly(1.0, 100, power=0.0)(70)) == pytest.approx(1.0)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from xray_seg.core.config import load_config
    from xray_seg.training.trainer import train
    from xray_seg.training.config import TrainConfig
    voc, run, replicas = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cfg = load_config(TrainConfig, "demo_cpu", [
        f"data.voc_dir={voc}", "model.width=0.125", "data.image_size=[64,64]",
        f"data.batch_size={4 // replicas}", "epochs=1", "steps_per_epoch=1", "optim.lr=0.0",
        "data.augment.enabled=false", "sync_bn=true", "deterministic=true", "num_val_images=0",
        "model.options={dropout: 0.0}"])  # dropout masks differ per replica by design
    train(cfg, run, cpu_replicas=replicas, verbose=0)
    """
)


def _run_script(script, *args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_mirrored_four_cpu_replicas_match_single_device(tiny_voc, tmp_path):
    losses = {}
    for replicas in (1, 4):
        proc = _run_script(MIRRORED_SCRIPT, tiny_voc, tmp_path / f"r{replicas}", replicas)
        assert proc.returncode == 0, proc.stderr[-3000:]
        history = (tmp_path / f"r{replicas}" / "history.csv").read_text().splitlines()
        row = dict(zip(history[0].split(","), history[1].split(",")))
        losses[replicas] = float(row["loss"])
    assert losses[4] == pytest.approx(losses[1], rel=1e-4)


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


MULTIWORKER_SCRIPT = textwrap.dedent(
    """
    import sys
    from xray_seg.core.config import load_config
    from xray_seg.training.trainer import train
    from xray_seg.training.config import TrainConfig
    voc, run = sys.argv[1], sys.argv[2]
    cfg = load_config(TrainConfig, "demo_cpu", [
        f"data.voc_dir={voc}", "model.width=0.125", "data.image_size=[64,64]", "data.batch_size=2",
        "epochs=1", "steps_per_epoch=2", "optim.lr=1e-3", "num_val_images=0",
        "sync_bn=true"])  # batch-norm statistics are per worker otherwise
    train(cfg, run, verbose=0)
    """
)


def test_multi_worker_two_local_processes_agree(tiny_voc, tmp_path):
    """Two workers on 127.0.0.1 via TF_CONFIG (MultiWorkerMirroredStrategy) end with equal weights."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", MULTIWORKER_SCRIPT, str(tiny_voc), str(tmp_path / f"w{index}")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=600))
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    a = weights_of(tmp_path / "w0" / "checkpoints" / "last.weights.h5")
    b = weights_of(tmp_path / "w1" / "checkpoints" / "last.weights.h5")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)


@pytest.mark.parametrize(
    "preset",
    [
        "cwf_xray512",
        "sgd_poly",
        "demo_cpu",
        "cyclenet_xray512",
        "cyclenet_cityscapes",
        "ifbfnet_xray512",
        "ifbfnet_cityscapes",
    ],
)
def test_bundled_presets_resolve(preset):
    cfg = load_config(TrainConfig, preset)
    assert cfg.epochs > 0 and cfg.data.batch_size > 0
    if preset == "cwf_xray512":  # paper 1, section 4.3
        assert (cfg.optim.optimizer, cfg.optim.lr, cfg.epochs, cfg.data.batch_size) == ("adam", 1e-4, 100, 4)
        assert tuple(cfg.data.image_size) == (512, 512)
    if preset.startswith("cyclenet"):  # CycleNet section 4.1
        assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.power) == ("sgd", 1e-2, 1e-4, 0.9)
        assert cfg.model.aux and cfg.loss.aux_weight == 0.4


@pytest.mark.parametrize("model", ["cyclenet", "ifbfnet"])
def test_alternative_models_train_through_the_trainer(tiny_voc, tmp_path, model):
    """`xray-seg train --model cyclenet|ifbfnet`: aux heads, OHEM/multipliers, same pipeline."""
    from xray_seg.evaluation.evaluator import evaluate
    from xray_seg.training.trainer import train

    preset = f"{model}_xray512"
    cfg = load_config(
        TrainConfig,
        preset,
        [
            f"data.voc_dir={tiny_voc}",
            "model.width=0.125",
            "data.image_size=[64,64]",
            "data.batch_size=4",
            "model.options.backbone_blocks=[1,1,1,1]",
            "epochs=1",
            "steps_per_epoch=1",
            "num_val_images=0",
            "sync_bn=false",
            "loss.ohem_min_kept=1000",
        ],
    )
    result = train(cfg, tmp_path / "run", verbose=0)
    assert result.epochs_done == 1
    assert "aux" in (tmp_path / "run" / "config.yaml").read_text()
    ev = evaluate(tmp_path / "run", tiny_voc, split="val", progress=False)
    cm = np.array(ev.scores["confusion_matrix"])
    assert ev.num_images == 4 and ev.scores["gt_pixels"] == val_class_pixels(tiny_voc, len(cm))
    assert ev.scores["pa"] == pytest.approx(np.trace(cm) / cm.sum())


def test_crop_training_builds_a_size_free_model_validated_at_image_size(tiny_voc, tmp_path):
    """data.crop_size smaller than data.image_size: crops in training, full images in validation."""
    import keras

    from xray_seg.evaluation.evaluator import evaluate
    from xray_seg.pipeline.dataset import make_train_dataset
    from xray_seg.training.trainer import train

    images, masks = next(
        iter(make_train_dataset(tiny_voc, image_size=(64, 64), crop_size=(32, 32), batch_size=4, augment=None))
    )
    assert images.shape == (4, 32, 32, 3) and masks.shape == (4, 32, 32)
    run = tmp_path / "run"
    result = train(tiny_config(tiny_voc, "epochs=1", "steps_per_epoch=2", "data.crop_size=[32,32]"), run, verbose=0)
    assert result.best_miou == pytest.approx(history_val_miou(run)[0])
    model = keras.saving.load_model(run / "best_model.keras", compile=False)
    assert tuple(model.input_shape) == (None, None, None, 3)
    ev = evaluate(run, tiny_voc, split="val", out_dir=tmp_path / "eval", progress=False)
    assert ev.num_images == 4


def test_pipeline_throughput_uses_the_training_dataset(tiny_voc):
    """The demo's pipeline figure times the very dataset train() feeds the model."""
    from xray_seg.training.trainer import make_training_dataset, pipeline_images_per_sec

    cfg = tiny_config(tiny_voc)
    images, masks = next(iter(make_training_dataset(cfg, cfg.data.batch_size)))
    assert images.shape == (cfg.data.batch_size, *cfg.data.image_size, 3)
    assert masks.shape == (cfg.data.batch_size, *cfg.data.image_size)
    rate = pipeline_images_per_sec(cfg, passes=1)
    assert np.isfinite(rate) and rate > 0
