"""Fine-tuning: the backbone frozen for the first epochs (weights and batch-norm statistics),
then unfrozen; early stopping on val mIoU; the settings checked before any work."""

import csv
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from xray_seg.core.config import load_config  # noqa: E402
from xray_seg.core.errors import ConfigError, ModelError  # noqa: E402
from xray_seg.training.config import TrainConfig  # noqa: E402

#: The backbone's variables in every model that has one (docs/training.md, "Fine-tuning").
BACKBONE_LR_PATTERN = "^(stem|stage[0-9]|csp[0-9]|xception[0-9]|entry_|middle_|exit_)"


def _snapshot(layer) -> dict:
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in layer.weights}


def _changed(before: dict, after: dict, kind: str) -> list[str]:
    return [k for k in before if kind in k and not np.array_equal(before[k], after[k])]


class Snapshots(keras.callbacks.Callback):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head, self.taken = backbone, head, []

    def on_train_begin(self, logs=None):
        self.taken.append((_snapshot(self.backbone), _snapshot(self.head)))

    def on_epoch_end(self, epoch, logs=None):
        self.taken.append((_snapshot(self.backbone), _snapshot(self.head)))


def test_frozen_backbone_keeps_weights_and_bn_statistics_then_learns(capsys):
    """CWF-DeepLabv3+ (the default model), through real compiled Keras steps: every backbone
    shares the same callback and sub-model rule (``test_documented_backbone_lr_pattern...``)."""
    from xray_seg.models.backbones.pretrained import backbone_of
    from xray_seg.models.registry import build_model
    from xray_seg.training.finetune import BackboneFreeze
    from xray_seg.training.optim import build_optimizer

    keras.utils.set_random_seed(0)
    model = build_model("cwf_deeplabv3plus", 3, (64, 64, 3), width=0.0625)
    backbone, head = backbone_of(model), model.get_layer("aspp")
    model.compile(optimizer=build_optimizer("adam", 1e-2), loss=keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(4, 64, 64, 3)).astype("float32")
    y = rng.integers(0, 3, size=(4, 64, 64)).astype("int32")
    snaps = Snapshots(backbone, head)
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[BackboneFreeze(backbone, 1), snaps])

    (b0, h0), (b1, h1), (b2, h2) = snaps.taken
    assert _changed(b0, b1, "kernel") == [] and _changed(b0, b1, "gamma") == []  # frozen: 2 steps, no change
    assert _changed(b0, b1, "moving_mean") == [] and _changed(b0, b1, "moving_variance") == []
    assert _changed(h0, h1, "kernel") and _changed(h0, h1, "moving_mean")  # the head learned meanwhile
    assert _changed(b1, b2, "kernel") and _changed(b1, b2, "moving_mean")  # epoch 2: the backbone learns
    assert _changed(b1, b2, "moving_variance")
    assert all(layer.trainable for layer in backbone._flatten_layers())  # flags restored after training
    out = capsys.readouterr().out
    assert f"backbone {backbone.name!r} frozen" in out and f"epoch 2: backbone {backbone.name!r} unfrozen" in out


def test_model_without_backbone_is_refused():
    from xray_seg.models.backbones.pretrained import backbone_of
    from xray_seg.models.registry import build_model

    with pytest.raises(ModelError, match="'unet' has no backbone sub-model"):
        backbone_of(build_model("unet", 3, (64, 64, 3), width=0.0625))


class _Model:
    stop_training = False


@pytest.mark.parametrize(
    "every, mious, patience, stop_epoch",
    [
        (1, [0.1, 0.2, 0.2, 0.15, 0.3], 2, 4),  # equal is no improvement: epochs 3 and 4 wait
        (1, [0.1, 0.2, 0.3, 0.4], 1, None),
        (2, [0.1, 0.05, 0.05, 0.05], 2, 6),  # patience counts validations (epochs 4 and 6), not epochs
        (1, [0.3, float("nan"), 0.2], 2, 3),  # a NaN mIoU is no improvement
    ],
)
def test_early_stop_counts_validations(every, mious, patience, stop_epoch, capsys):
    from xray_seg.training.finetune import EarlyStopOnMiou

    callback = EarlyStopOnMiou(patience)
    callback.set_model(_Model())
    epoch, stopped_at = 0, None
    for miou in mious:
        for _ in range(every - 1):  # epochs that do not validate: no val_miou key
            callback.on_epoch_end(epoch, {"loss": 1.0})
            epoch += 1
        callback.on_epoch_end(epoch, {"loss": 1.0, "val_miou": miou})
        epoch += 1
        if callback.model.stop_training:
            stopped_at = epoch
            break
    assert stopped_at == stop_epoch and callback.stopped_epoch == stop_epoch
    assert ("early stop after epoch" in capsys.readouterr().out) == (stop_epoch is not None)


def test_training_stops_early_and_history_stays_consistent(tiny_voc, tmp_path, capsys, monkeypatch):
    """The real trainer with the val mIoU of each validation scripted: gains at epochs 1 and 2,
    none at 3 and 4, so patience 2 stops after epoch 4 of 6 (the backbone frozen throughout)."""
    from xray_seg.training.callbacks import ValidationCallback
    from xray_seg.training.trainer import train

    scripted = iter([0.5, 0.6, 0.6, 0.55, 0.9, 0.9])
    evaluate = ValidationCallback.evaluate

    def scripted_evaluate(self):
        scores, samples = evaluate(self)
        return {**scores, "miou": next(scripted)}, samples

    monkeypatch.setattr(ValidationCallback, "evaluate", scripted_evaluate)
    overrides = {"data.voc_dir": str(tiny_voc), "model.width": 0.0625, "data.image_size": [32, 32], "loss.type": "ce"}
    cfg = TrainConfig.from_preset(
        "demo_cpu", epochs=6, val_every=1, steps_per_epoch=1, num_val_images=0, **overrides,
        early_stop_patience=2, freeze="backbone", freeze_epochs=6,
    )  # fmt: skip
    run = tmp_path / "run"
    result = train(cfg, run, verbose=0)
    with open(run / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(float(r["epoch"])), float(r["val_miou"])) for r in rows] == [(1, 0.5), (2, 0.6), (3, 0.6), (4, 0.55)]
    assert (result.epochs_done, result.best_epoch, result.best_miou) == (4, 2, 0.6)
    assert "early stop after epoch 4: val mIoU has not improved on 0.6000 (epoch 2)" in capsys.readouterr().out
    with zipfile.ZipFile(run / "best_model.keras") as saved:  # saved during a frozen epoch, yet trainable
        config = saved.read("config.json").decode()
    assert '"trainable": true' in config and '"trainable": false' not in config


@pytest.mark.parametrize(
    "setting, message",
    [
        ("freeze=encoder", "freeze='encoder' must be backbone or empty"),
        ("freeze=backbone", "needs freeze_epochs >= 1"),
        ("freeze_epochs=3", "without freeze"),
        ("early_stop_patience=-1", "early_stop_patience=-1 must be an integer >= 0"),
        ("model.backbone_weights=/nonexistent/x.h5", "is not a file"),
    ],
)
def test_bad_fine_tuning_settings_are_refused(setting, message):
    from xray_seg.training.config_checks import validate_train_config

    cfg = load_config(TrainConfig, "demo_cpu", [setting])
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        validate_train_config(cfg)


def test_cli_refuses_bad_backbone_weights_and_a_model_without_backbone(tiny_voc, tmp_path, refused):
    garbage = tmp_path / "imagenet.h5"
    garbage.write_text("not hdf5")
    base = ["train", tiny_voc, "--preset", "demo_cpu", "--quiet", "--set", "epochs=1", "--set", "model.width=0.0625"]
    run = tmp_path / "run"
    refused([*base, "--run-dir", run, "--set", f"model.backbone_weights={garbage}"], str(garbage), "HDF5")
    assert not run.exists()
    unet = ["--set", "model.name=unet", "--set", "freeze=backbone", "--set", "freeze_epochs=1"]
    refused([*base, "--run-dir", run, "--set", "data.image_size=32", *unet], "'unet' has no backbone")
    assert not run.exists()


def test_documented_backbone_lr_pattern_matches_exactly_each_backbone():
    from xray_seg.models.backbones.pretrained import backbone_of
    from xray_seg.models.registry import build_model

    assert BACKBONE_LR_PATTERN in (Path(__file__).parents[2] / "docs" / "training.md").read_text()
    options = {"deeplabv3plus": {"middle_blocks": 1}, "cyclenet": {"backbone_blocks": (1, 1, 1, 1)}}
    for name in ("cwf_deeplabv3plus", "deeplabv3plus", "mobilenetv2_deeplabv3plus", "cyclenet"):  # ifbfnet: cyclenet's
        model = build_model(name, 3, (32, 32, 3), width=0.0625, **options.get(name, {}))
        matched = {v.path for v in model.weights if re.search(BACKBONE_LR_PATTERN, v.path)}
        assert matched == {v.path for v in backbone_of(model).weights}, name
