"""Training: ``xray-seg train`` (paper 1 section 4.3 protocol; CycleNet/IFBFNet recipes).

A run folder holds everything a run produces::

    RUN_DIR/config.yaml                  the resolved TrainConfig
    RUN_DIR/class_names.txt              label order of the model's outputs
    RUN_DIR/checkpoints/last.weights.h5  model + optimizer state after the last epoch
    RUN_DIR/checkpoints/best.weights.h5  the best epoch by val mIoU
    RUN_DIR/checkpoints/state.json       epochs done, best mIoU and epoch
    RUN_DIR/best_model.keras             inference model (main logits) of the best epoch
    RUN_DIR/history.csv                  per-epoch loss, lr, val metrics, throughput
    RUN_DIR/training_curves.png          loss and val metrics per epoch
    RUN_DIR/logs/                        TensorBoard (scalars, per-class IoU, prediction images)

``--resume`` continues exactly: weights, optimizer state (including the step counter
that drives the schedule), the epoch, and the data stream, which is a pure function
of (seed, epoch, position) so it restarts at the right epoch.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from xray_seg.core.config import load_config, save_config
from xray_seg.core.errors import ConfigError, XraySegError
from xray_seg.core.fileio import prepare_output_dir, write_text_atomic
from xray_seg.core.validation import validate_train_config
from xray_seg.pipeline.checks import check_training_data
from xray_seg.training.config import TrainConfig


@dataclass
class TrainResult:
    run_dir: Path
    best_miou: float
    best_epoch: int
    epochs_done: int
    train_images_per_sec: float
    seconds: float


def load_class_weights(path: str, class_names: list[str]) -> list[float]:
    """Read class weights written by ``xray-seg data-stats --weights-out``.

    Accepts a list in label order, ``{"class_weights": [...]}`` / ``{"weights": [...]}``,
    or a mapping from class name to weight.
    """
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read class weights ({exc})", path=file, fix="re-run `xray-seg data-stats --weights-out`") from None
    if isinstance(data, dict):
        data = data.get("class_weights", data.get("weights", data))
    if isinstance(data, dict):
        missing = [n for n in class_names if n not in data]
        if missing:
            raise ConfigError(f"class weights miss {missing}", path=file, fix="re-run `xray-seg data-stats --weights-out`")
        data = [data[n] for n in class_names]
    if len(data) != len(class_names):
        raise ConfigError(
            f"{len(data)} class weights for {len(class_names)} classes", path=file, fix="re-run `xray-seg data-stats --weights-out`"
        )
    return [float(w) for w in data]


def resume_config(run_dir: str | Path, epochs: int | None = None) -> TrainConfig:
    """The saved config of a run, with an optionally extended epoch budget."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError("not a run folder (no config.yaml)", path=run_dir, fix="give the --run-dir of an earlier `xray-seg train`")
    cfg = load_config(TrainConfig, path)
    if epochs:
        cfg.epochs = epochs
    return cfg


def _build_losses(cfg: TrainConfig, output_names, class_weights):
    from xray_seg.training.losses import OhemCrossEntropy, SegmentationCrossEntropy, aux_loss_weights

    def one_loss():
        if cfg.loss.type == "ohem":
            return OhemCrossEntropy(
                thresh=cfg.loss.ohem_thresh, min_kept=cfg.loss.ohem_min_kept, class_weights=class_weights
            )
        if cfg.loss.type == "ce":
            return SegmentationCrossEntropy(class_weights=class_weights)
        raise ConfigError(f"unknown loss type {cfg.loss.type!r}", fix="use loss.type=ce or loss.type=ohem")

    if output_names is None:
        return one_loss(), None
    return {name: one_loss() for name in output_names}, aux_loss_weights(output_names, cfg.loss.aux_weight)


def _enable_sync_batchnorm(model):
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


def training_crop(cfg: TrainConfig) -> tuple[int, int]:
    """The (height, width) the model trains on: ``data.crop_size``, or ``data.image_size``."""
    height, width = cfg.data.image_size
    crop = tuple(int(v) for v in cfg.data.crop_size) or (int(height), int(width))
    if len(crop) != 2 or min(crop) < 1:
        raise ConfigError(f"data.crop_size must be (height, width) or empty, got {cfg.data.crop_size}", fix="use e.g. --set data.crop_size=[128,128]")
    return crop


def make_training_dataset(cfg: TrainConfig, global_batch: int, *, start_epoch: int = 0):
    """The training ``tf.data.Dataset`` exactly as :func:`train` feeds it to the model."""
    from xray_seg.pipeline.dataset import make_train_dataset

    return make_train_dataset(
        cfg.data.voc_dir,
        cfg.data.train_split,
        image_size=tuple(cfg.data.image_size),
        batch_size=global_batch,
        augment=cfg.data.augment if cfg.data.augment.enabled else None,
        seed=cfg.seed,
        start_epoch=start_epoch,
        cache=cfg.data.cache,
        deterministic=cfg.deterministic,
        crop_size=training_crop(cfg),
    )


def pipeline_images_per_sec(cfg: TrainConfig, *, passes: int = 2) -> float:
    """Median images/s of the training input pipeline alone (decode, augment, batch) over
    ``passes`` epochs of the train split, after one untimed epoch that also fills the cache.

    The demo prints it beside the training throughput: the pipeline must outrun the model.
    """
    import statistics

    from xray_seg.pipeline.dataset import split_size

    batch = cfg.data.batch_size
    steps = max(1, split_size(cfg.data.voc_dir, cfg.data.train_split) // batch)
    iterator = iter(make_training_dataset(cfg, batch))
    rates = []
    for epoch in range(passes + 1):
        start = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        if epoch:
            rates.append(steps * batch / (time.perf_counter() - start))
    return statistics.median(rates)


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    devices: str | None = None,
    cpu_replicas: int = 1,
    verbose: int = 1,
    stop_after_epochs: int | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data.voc_dir``; see the module docstring for outputs.

    ``stop_after_epochs`` ends this session after that many epochs (the schedule still
    spans ``cfg.epochs``), for machines with time-limited jobs; ``resume`` continues.
    """
    from xray_seg.training.distribute import make_strategy

    strategy = make_strategy(devices, cpu_replicas)  # before anything initialises TF devices

    import keras
    import tensorflow as tf

    from xray_seg.training.callbacks import (
        EpochTimer, NanGuard, RunCheckpoint, TrainingError, ValidationCallback, load_rng_state, read_state,
    )
    from xray_seg.pipeline.dataset import make_eval_dataset, split_size
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.models.registry import build_model
    from xray_seg.training.optim import WarmupPoly, build_optimizer

    run_dir = Path(run_dir)
    state = {"epochs_done": 0, "best_miou": -1.0, "best_epoch": 0}
    validate_train_config(cfg)
    if not cfg.data.voc_dir:
        raise ConfigError("no dataset given", fix="pass the VOC folder: xray-seg train VOC_DIR ...")
    if resume:
        state = read_state(run_dir)  # cfg should come from resume_config(run_dir)
    else:
        inputs = [cfg.data.voc_dir, cfg.loss.class_weights if cfg.loss.class_weights not in ("", "auto") else None]
        prepare_output_dir(run_dir, force=force, inputs=inputs, dry_run=True, resume_flag="--resume")
        check_training_data(cfg)  # every file of both splits, before a run folder exists
        prepare_output_dir(run_dir, force=force, inputs=inputs, owner="train", resume_flag="--resume")
    save_config(cfg, run_dir / "config.yaml")

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy(cfg.mixed_precision)

    class_names = read_class_names(cfg.data.voc_dir)
    write_text_atomic(run_dir / "class_names.txt", "\n".join(class_names) + "\n")
    num_classes = len(class_names)
    replicas = strategy.num_replicas_in_sync
    global_batch = cfg.data.batch_size * replicas
    n_train = split_size(cfg.data.voc_dir, cfg.data.train_split)
    steps = cfg.steps_per_epoch or max(1, n_train // global_batch)
    if n_train < global_batch:
        raise ConfigError(
            f"the {cfg.data.train_split!r} split has {n_train} images, fewer than one global batch ({global_batch})",
            path=cfg.data.voc_dir,
            fix="lower data.batch_size or add images",
        )
    lr = cfg.optim.lr * (global_batch / cfg.optim.reference_batch if cfg.optim.reference_batch else 1.0)
    class_weights = None
    if cfg.loss.class_weights == "auto":
        from xray_seg.conversion.stats import compute_class_stats, median_frequency_weights

        stats = compute_class_stats(cfg.data.voc_dir, cfg.data.train_split, progress=bool(verbose))
        class_weights = [float(w) for w in median_frequency_weights(stats)]
        if verbose:
            print("median-frequency class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(class_names, class_weights)))
    elif cfg.loss.class_weights:
        class_weights = load_class_weights(cfg.loss.class_weights, class_names)

    height, width = cfg.data.image_size
    crop = training_crop(cfg)
    # Crops smaller than the image: the model must take the crops and the full images alike.
    input_shape = (height, width, 3) if crop == (height, width) else (None, None, 3)
    train_ds = make_training_dataset(cfg, global_batch, start_epoch=state["epochs_done"])
    val_ds = make_eval_dataset(cfg.data.voc_dir, cfg.data.val_split, image_size=(height, width), batch_size=global_batch)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds = train_ds.with_options(options)

    with strategy.scope():
        model = build_model(
            cfg.model.name, num_classes, input_shape, width=cfg.model.width, aux=cfg.model.aux, **cfg.model.options
        )
        output_names = sorted(model.output.keys()) if isinstance(model.output, dict) else None
        inference_model = keras.Model(model.input, model.output["logits"]) if output_names else model
        if cfg.sync_bn:
            _enable_sync_batchnorm(model)
        schedule = WarmupPoly(
            lr,
            total_steps=cfg.epochs * steps,
            power=cfg.optim.power if cfg.optim.schedule == "poly" else 0.0,
            warmup_steps=int(round(cfg.optim.warmup_epochs * steps)),
        )
        optimizer = build_optimizer(
            cfg.optim.optimizer,
            schedule,
            momentum=cfg.optim.momentum,
            weight_decay=cfg.optim.weight_decay,
            clipnorm=cfg.optim.clipnorm or None,
            lr_multipliers=cfg.optim.lr_multipliers,
        )
        loss, loss_weights = _build_losses(cfg, output_names, class_weights)
        model.compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights, jit_compile=cfg.jit_compile)
        if resume:
            optimizer.build(model.trainable_variables)
            model.load_weights(run_dir / "checkpoints" / "last.weights.h5")
            load_rng_state(model, run_dir / "checkpoints" / "rng_state.npz")

    if output_names:
        train_ds = train_ds.map(lambda x, y: (x, {name: y for name in output_names}))
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _prebuild_for_multiworker(model, strategy, train_ds.element_spec)

    nan_guard = NanGuard()
    validation = ValidationCallback(
        val_ds, class_names, every=cfg.val_every, log_dir=run_dir / "logs", num_images=cfg.num_val_images
    )
    checkpoint = RunCheckpoint(run_dir, inference_model, best_miou=state["best_miou"], best_epoch=state["best_epoch"])
    callbacks = [
        nan_guard,
        EpochTimer(steps * global_batch),
        validation,
        checkpoint,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resume),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs"), write_graph=False),
    ]
    if verbose:
        print(
            f"training {cfg.model.name} on {n_train} images: {replicas} replica(s), global batch {global_batch}, "
            f"{steps} steps/epoch, epochs {state['epochs_done'] + 1}..{cfg.epochs}, run folder {run_dir}"
        )
        if crop != (height, width):
            print(f"training on {crop[0]}x{crop[1]} crops of images fitted to {height}x{width}; validating at {height}x{width}")
    start = time.perf_counter()
    try:
        history = model.fit(
            train_ds,
            epochs=min(cfg.epochs, state["epochs_done"] + stop_after_epochs) if stop_after_epochs else cfg.epochs,
            initial_epoch=state["epochs_done"],
            steps_per_epoch=steps,
            callbacks=callbacks,
            verbose=verbose,
        )
    except KeyboardInterrupt:
        # No mid-epoch weights are written: --resume restarts exactly from the last finished epoch.
        done = read_state(run_dir)["epochs_done"] if (run_dir / "checkpoints" / "state.json").exists() else 0
        print(
            f"\ninterrupted: `xray-seg train --resume --run-dir {run_dir}` continues exactly from the end of "
            f"epoch {done} (the unfinished epoch is redone)",
        )
        raise
    finally:
        _write_curves(run_dir)
    seconds = time.perf_counter() - start
    if nan_guard.where is not None:
        epoch, batch = nan_guard.where
        raise TrainingError(
            f"the loss became NaN/inf at epoch {epoch}, step {batch}; the last good checkpoint is kept",
            path=run_dir,
            fix="lower optim.lr, set optim.clipnorm (e.g. 1.0), or check the class weights and labels",
        )
    final_state = read_state(run_dir)
    rates = [r for r in history.history.get("train_images_per_sec", [])[1:] if math.isfinite(r)]
    rate = sorted(rates)[len(rates) // 2] if rates else history.history.get("train_images_per_sec", [0.0])[-1]
    return TrainResult(
        run_dir=run_dir,
        best_miou=final_state["best_miou"],
        best_epoch=final_state["best_epoch"],
        epochs_done=final_state["epochs_done"],
        train_images_per_sec=float(rate),
        seconds=seconds,
    )


def _prebuild_for_multiworker(model, strategy, element_spec) -> None:
    """Work around two Keras 3.15 bugs under MultiWorkerMirroredStrategy.

    1. ``fit`` first builds the model symbolically from a real batch that it averages
       across workers with ``strategy.reduce``, which fails for collective strategies
       ("Attempt to convert a value (PerReplica...)"). We build from the dataset's
       element spec instead and skip Keras' own pre-build.
    2. Each step's scalar logs are averaged across workers with ``axis=0``, which fails
       for scalars ("Invalid reduction dimension 0 for input with 0 dimensions"). We
       average them with ``axis=None`` (the same mean, defined for scalars).
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    with strategy.scope():
        model._symbolic_build(data_batch=element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    original = getattr(tf_trainer.reduce_per_replica, "__wrapped__", tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.__wrapped__ = original
    tf_trainer.reduce_per_replica = reduce_per_replica


def _write_curves(run_dir: Path) -> None:
    history = run_dir / "history.csv"
    if history.is_file() and history.stat().st_size:
        from xray_seg.evaluation.report import plot_training_curves

        try:
            plot_training_curves(run_dir / "training_curves.png", history)
        except (ValueError, XraySegError):
            pass  # an empty or one-line history has nothing to plot yet
