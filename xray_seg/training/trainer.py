"""Training: ``xray-seg train`` (paper 1 section 4.1, Table 1; CycleNet/IFBFNet recipes).

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
    RUN_DIR/init_report.json             with ``init``: the tensors loaded, mapped, skipped, new; the classes

``--resume`` continues exactly: weights, optimizer state (including the step counter
that drives the schedule), the epoch, and the data stream, which is a pure function
of (seed, epoch, position) so it restarts at the right epoch.

:func:`train` translates errors and cleans up (:func:`pipeline_errors_named`,
:func:`remove_unstarted_run`) around ``_train_session``, which reads as its steps, each a
short function below, in this order:
:func:`prepare_run_dir`, :func:`seed_everything`, :func:`write_class_names`,
:func:`batch_and_lr_arithmetic`, :func:`resolve_class_weights`, :func:`build_datasets`,
:func:`build_model_and_optimizer` (then, with ``init``, the weights of the source:
:mod:`xray_seg.training.init_source`), :func:`build_losses` (then ``compile``, and
:func:`restore_last_checkpoint` on resume), :func:`build_metrics`, :func:`build_callbacks`
(plus :func:`~xray_seg.training.finetune.fine_tuning_callbacks`), :func:`fit_with_recovery`
and :func:`train_result`. The strategy, and the Keras
MultiWorker work-around applied before ``fit``, live in :mod:`xray_seg.training.distribute`.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from xray_seg.conversion.stats import compute_class_stats, median_frequency_weights
from xray_seg.conversion.voc import read_class_names
from xray_seg.core.config import load_config, save_config
from xray_seg.core.errors import ConfigError, XraySegError
from xray_seg.core.fileio import has_marker, prepare_output_dir, sweep_temp_files, write_text_atomic
from xray_seg.core.layouts import RunLayout
from xray_seg.evaluation.report import plot_training_curves
from xray_seg.evaluation.timing import cpu_description
from xray_seg.inference.geometry import ScanGeometry
from xray_seg.models.backbones.pretrained import backbone_of, load_backbone_weights
from xray_seg.models.outputs import logits_of
from xray_seg.models.registry import build_model
from xray_seg.pipeline.checks import check_training_data
from xray_seg.pipeline.dataset import dataset_error_from, make_eval_dataset, make_train_dataset, split_size
from xray_seg.training.callbacks import (
    EpochTensorBoard,
    EpochTimer,
    HistoryCSV,
    NanGuard,
    RunCheckpoint,
    TrainingError,
    ValidationCallback,
    load_rng_state,
    read_state,
)
from xray_seg.training.config import TrainConfig
from xray_seg.training.config_checks import cpu_speed_warnings, resume_changes, validate_train_config
from xray_seg.training.distribute import enable_sync_batchnorm, make_strategy, prepare_fit_for_strategy
from xray_seg.training.finetune import fine_tuning_callbacks
from xray_seg.training.init_source import initialise_from_source, prepare_init
from xray_seg.training.losses import aux_loss_weights, loss_from_config
from xray_seg.training.optim import WarmupPoly, build_optimizer


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
        raise ConfigError(
            f"cannot read class weights ({exc})", path=file, fix="re-run `xray-seg data-stats --weights-out`"
        ) from None
    if isinstance(data, dict):
        data = data.get("class_weights", data.get("weights", data))
    if isinstance(data, dict):
        missing = [n for n in class_names if n not in data]
        if missing:
            raise ConfigError(
                f"class weights miss {missing}", path=file, fix="re-run `xray-seg data-stats --weights-out`"
            )
        data = [data[n] for n in class_names]
    if len(data) != len(class_names):
        raise ConfigError(
            f"{len(data)} class weights for {len(class_names)} classes",
            path=file,
            fix="re-run `xray-seg data-stats --weights-out`",
        )
    return [float(w) for w in data]


def resume_config(run_dir: str | Path, epochs: int | None = None) -> TrainConfig:
    """The saved config of a run, with an optionally extended epoch budget."""
    path = RunLayout(run_dir).config_file
    if not path.is_file():
        raise ConfigError(
            "not a run folder (no config.yaml)", path=run_dir, fix="give the --run-dir of an earlier `xray-seg train`"
        )
    cfg = load_config(TrainConfig, path)
    if epochs:
        cfg.epochs = epochs
    return cfg


def build_losses(cfg: TrainConfig, output_names, class_weights):
    """The loss of every model output and their weights: ``(loss, loss_weights)``.

    ``loss.type`` chooses cross-entropy, OHEM (IFBFNet section 3.4, eq. 7), dice, focal,
    Lovasz-softmax or a weighted sum such as ``ce+dice`` (:func:`losses.loss_from_config`),
    with optional class weights; with auxiliary heads, one loss per output and
    ``loss.aux_weight`` on the auxiliary ones (IFBFNet eq. 8, lambda 0.4). A single-output
    model gets one loss and no weights.
    """

    def one_loss():
        return loss_from_config(cfg.loss, class_weights)

    if output_names is None:
        return one_loss(), None
    return {name: one_loss() for name in output_names}, aux_loss_weights(output_names, cfg.loss.aux_weight)


def training_crop(cfg: TrainConfig) -> tuple[int, int]:
    """The (height, width) the model trains on: ``data.crop_size``, or ``data.image_size``."""
    height, width = cfg.data.image_size
    crop = tuple(int(v) for v in cfg.data.crop_size) or (int(height), int(width))
    if len(crop) != 2 or min(crop) < 1:
        raise ConfigError(
            f"data.crop_size must be (height, width) or empty, got {cfg.data.crop_size}",
            fix="use e.g. --set data.crop_size=[128,128]",
        )
    return crop


def make_training_dataset(cfg: TrainConfig, global_batch: int, *, start_epoch: int = 0):
    """The training ``tf.data.Dataset`` exactly as :func:`train` feeds it to the model."""
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
        scale=1.0,  # crops of native-resolution scans: the geometry rule (inference/geometry.py)
    )


def pipeline_images_per_sec(cfg: TrainConfig, *, passes: int = 2) -> float:
    """Median images/s of the training input pipeline alone (decode, augment, batch) over
    ``passes`` epochs of the train split, after one untimed epoch that also fills the cache.

    The demo prints it beside the training throughput: the pipeline must outrun the model.
    """
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


@dataclass
class BatchPlan:
    """The batch and learning-rate arithmetic of a run (see :func:`batch_and_lr_arithmetic`)."""

    replicas: int
    global_batch: int
    n_train: int
    steps: int
    lr: float


# ------------------------------------------------------------------ the steps of train()
# Each step does one job; train() calls them in this order. The order is part of the
# behaviour: seeding comes before the datasets and the model are built, so a seed gives
# the same run, and the strategy comes before anything initialises TensorFlow's devices.


def prepare_run_dir(cfg: TrainConfig, run_dir: Path, *, resume: bool, force: bool) -> dict:
    """Open the run folder and write ``config.yaml``; returns the state to continue from.

    A new run refuses a non-empty folder unless ``force`` and starts from
    ``{"epochs_done": 0, "best_miou": -1.0, "best_epoch": 0}``; ``resume`` reads
    ``checkpoints/state.json`` (``cfg`` should then come from :func:`resume_config`).
    """
    state = {"epochs_done": 0, "best_miou": -1.0, "best_epoch": 0}
    validate_train_config(cfg)
    if not cfg.data.voc_dir:
        raise ConfigError("no dataset given", fix="pass the VOC folder: xray-seg train VOC_DIR ...")
    if resume:
        state = read_state(run_dir)
    else:
        # The run folder may not be, contain or lie inside an input, and every file of both
        # splits is checked before the folder exists (docs/data_safety.md).
        inputs = [cfg.data.voc_dir, cfg.loss.class_weights if cfg.loss.class_weights not in ("", "auto") else None]
        prepare_output_dir(run_dir, force=force, inputs=inputs, dry_run=True, resume_flag="--resume")
        check_training_data(cfg)
        if inputs[1]:  # one weight per class of the dataset, checked before the folder exists
            load_class_weights(inputs[1], read_class_names(cfg.data.voc_dir))
        prepare_output_dir(run_dir, force=force, inputs=inputs, owner="train", resume_flag="--resume")
    save_config(cfg, run_dir / "config.yaml")
    return state


def seed_everything(cfg: TrainConfig) -> None:
    """Seed Python, NumPy and the backend with ``cfg.seed``; switch on op determinism and
    the mixed-precision policy when configured. Runs before any model or dataset exists."""
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy(cfg.mixed_precision)


def write_class_names(cfg: TrainConfig, run_dir: Path) -> list[str]:
    """The dataset's class names (label order of the outputs), copied to ``class_names.txt``."""
    class_names = read_class_names(cfg.data.voc_dir)
    write_text_atomic(run_dir / "class_names.txt", "\n".join(class_names) + "\n")
    return class_names


def batch_and_lr_arithmetic(cfg: TrainConfig, replicas: int) -> BatchPlan:
    """Global batch (``data.batch_size`` per replica), steps per epoch, and the learning rate.

    Paper 1 (section 4.1, Table 1) trains with batch 4 at lr 1e-4; with
    ``optim.reference_batch`` set, the rate scales linearly with the global batch
    against it, so more replicas keep the recipe's per-image step size.
    """
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
    return BatchPlan(replicas=replicas, global_batch=global_batch, n_train=n_train, steps=steps, lr=lr)


def resolve_class_weights(cfg: TrainConfig, class_names: list[str], verbose: int) -> list[float] | None:
    """Loss weights per class: ``"auto"`` computes median-frequency weights over the train
    split (as ``xray-seg data-stats``), a path reads that file, empty means none."""
    if cfg.loss.class_weights == "auto":
        stats = compute_class_stats(cfg.data.voc_dir, cfg.data.train_split, progress=bool(verbose))
        class_weights = [float(w) for w in median_frequency_weights(stats)]
        if verbose:
            print(
                "median-frequency class weights: "
                + ", ".join(f"{n} {w:.2f}" for n, w in zip(class_names, class_weights))
            )
        return class_weights
    if cfg.loss.class_weights:
        return load_class_weights(cfg.loss.class_weights, class_names)
    return None


def build_datasets(cfg: TrainConfig, plan: BatchPlan, *, start_epoch: int):
    """``(train_ds, val_ds)``: the training stream from ``start_epoch`` (sharded by data
    across workers) and the validation scans at native resolution (:func:`training_geometry`)."""
    train_ds = make_training_dataset(cfg, plan.global_batch, start_epoch=start_epoch)
    val_ds = make_eval_dataset(
        cfg.data.voc_dir, cfg.data.val_split, batch_size=plan.global_batch, geometry=training_geometry(cfg)
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return train_ds.with_options(options), val_ds


def training_geometry(cfg: TrainConfig):
    """How validation brings a scan to the network: native resolution, tiles of the training
    size (the one geometry rule, docs/architecture.md "Geometry")."""
    return ScanGeometry(tile=tuple(cfg.data.image_size))


def model_input_shape(cfg: TrainConfig) -> tuple:
    """``(H, W, 3)``; ``(None, None, 3)`` when training on crops smaller than the image,
    since the model must then take the crops and the full validation images alike."""
    height, width = cfg.data.image_size
    return (height, width, 3) if training_crop(cfg) == (height, width) else (None, None, 3)


def build_model_and_optimizer(cfg: TrainConfig, num_classes: int, plan: BatchPlan):
    """``(model, inference_model, output_names, optimizer)``, built in the strategy's scope.

    ``output_names`` lists the outputs of a model with auxiliary heads (None for one
    output); ``inference_model`` gives the main logits only. The schedule is warm-up then
    poly decay (CycleNet and IFBFNet section 4.1) or constant (paper 1 section 4.1).
    """
    model = build_model(
        cfg.model.name,
        num_classes,
        model_input_shape(cfg),
        width=cfg.model.width,
        aux=cfg.model.aux,
        **cfg.model.options,
    )
    if cfg.model.backbone_weights:  # a local file, e.g. Keras Applications ImageNet weights
        load_backbone_weights(backbone_of(model), cfg.model.backbone_weights)
    output_names = sorted(model.output.keys()) if isinstance(model.output, dict) else None
    inference_model = keras.Model(model.input, logits_of(model.output)) if output_names else model
    if cfg.sync_bn:
        enable_sync_batchnorm(model)
    schedule = WarmupPoly(
        plan.lr,
        total_steps=cfg.epochs * plan.steps,
        power=cfg.optim.power if cfg.optim.schedule == "poly" else 0.0,
        warmup_steps=int(round(cfg.optim.warmup_epochs * plan.steps)),
    )
    optimizer = build_optimizer(
        cfg.optim.optimizer,
        schedule,
        momentum=cfg.optim.momentum,
        weight_decay=cfg.optim.weight_decay,
        clipnorm=cfg.optim.clipnorm or None,
        lr_multipliers=cfg.optim.lr_multipliers,
    )
    return model, inference_model, output_names, optimizer


def restore_last_checkpoint(model, optimizer, run_dir: Path) -> None:
    """For ``--resume``: weights, optimizer state (with the step that drives the schedule)
    and the seed-generator states of the last finished epoch."""
    optimizer.build(model.trainable_variables)
    model.load_weights(run_dir / "checkpoints" / "last.weights.h5")
    load_rng_state(model, run_dir / "checkpoints" / "rng_state.npz")


def build_metrics(cfg: TrainConfig, val_ds, class_names: list[str], run_dir: Path):
    """The validation metrics: paper 1's PA, mPA, IoU and mIoU (eqs. 4-7) from one confusion
    matrix over the val split every ``val_every`` epochs, as a callback that adds them to the
    epoch logs (and prediction images to TensorBoard)."""
    return ValidationCallback(
        val_ds,
        class_names,
        every=cfg.val_every,
        log_dir=run_dir / "logs",
        num_images=cfg.num_val_images,
        geometry=training_geometry(cfg),
    )


def build_callbacks(run_dir: Path, validation, inference_model, plan: BatchPlan, state: dict, *, resume: bool):
    """``(nan_guard, callbacks)`` in the order they must run: NaN stop, epoch timer,
    validation (which adds the metrics to the logs), checkpoints, history.csv, TensorBoard."""
    nan_guard = NanGuard()
    checkpoint = RunCheckpoint(run_dir, inference_model, best_miou=state["best_miou"], best_epoch=state["best_epoch"])
    callbacks = [
        nan_guard,
        EpochTimer(plan.steps * plan.global_batch),
        validation,
        checkpoint,
        HistoryCSV(RunLayout(run_dir).history_csv, validation.val_keys(), append=resume),
        EpochTensorBoard(log_dir=str(RunLayout(run_dir).logs_dir), write_graph=False),
    ]
    return nan_guard, callbacks


def print_plan(cfg: TrainConfig, plan: BatchPlan, state: dict, run_dir: Path) -> None:
    """One line on what this session trains (two when training on crops)."""
    height, width = cfg.data.image_size
    crop = training_crop(cfg)
    print(
        f"training {cfg.model.name} on {plan.n_train} images: {plan.replicas} replica(s), global batch {plan.global_batch}, "
        f"{plan.steps} steps/epoch, epochs {state['epochs_done'] + 1}..{cfg.epochs}, run folder {run_dir}"
    )
    if crop != (height, width):
        print(
            f"training on {crop[0]}x{crop[1]} crops of images fitted to {height}x{width}; validating at {height}x{width}"
        )
    if not tf.config.list_logical_devices("GPU"):
        for line in cpu_speed_warnings(cfg, cpu_description()):
            print(line)


def fit_with_recovery(
    model,
    train_ds,
    callbacks,
    nan_guard,
    cfg: TrainConfig,
    plan: BatchPlan,
    state: dict,
    run_dir: Path,
    *,
    stop_after_epochs: int | None,
    verbose: int,
):
    """``model.fit`` from the epoch ``state`` says, then ``(history, seconds)``.

    Ctrl-C saves ``checkpoints/interrupted.weights.h5`` and says how to resume; the curves
    PNG is drawn however fit ends; a NaN/inf loss (stopped by ``nan_guard``) raises
    :class:`~xray_seg.training.callbacks.TrainingError` naming the epoch and step.
    """
    start = time.perf_counter()
    try:
        history = model.fit(
            train_ds,
            epochs=min(cfg.epochs, state["epochs_done"] + stop_after_epochs) if stop_after_epochs else cfg.epochs,
            initial_epoch=state["epochs_done"],
            steps_per_epoch=plan.steps,
            callbacks=callbacks,
            verbose=verbose,
        )
    except KeyboardInterrupt:
        # No mid-epoch weights are written: --resume restarts exactly from the last finished epoch.
        done = read_state(run_dir)["epochs_done"] if RunLayout(run_dir).state_file.exists() else 0
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
    return history, seconds


def train_result(run_dir: Path, history, seconds: float) -> TrainResult:
    """The run's best epoch and mIoU (from ``state.json``) and its median training throughput
    (the first epoch, which includes tracing, left out)."""
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
    spans ``cfg.epochs``), for machines with time-limited jobs; ``resume`` continues, with
    ``cfg`` equal to the run's saved config (only ``epochs`` may grow: :func:`check_resume`).

    Errors a user can cause are :class:`~xray_seg.core.errors.XraySegError`: a bad label the
    pipeline meets mid-run becomes the :class:`~xray_seg.core.errors.DatasetError` naming
    the file (:func:`pipeline_errors_named`), and a run folder this call created is removed
    again when no epoch finished (:func:`remove_unstarted_run`).
    """
    run_dir = Path(run_dir)
    if resume:
        check_resume(cfg, run_dir)
        sweep_temp_files(RunLayout(run_dir).checkpoints_dir)  # left by a kill during a checkpoint write
    existed = run_dir.exists()
    try:
        with pipeline_errors_named():
            return _train_session(
                cfg,
                run_dir,
                resume=resume,
                force=force,
                devices=devices,
                cpu_replicas=cpu_replicas,
                verbose=verbose,
                stop_after_epochs=stop_after_epochs,
            )
    except XraySegError:
        remove_unstarted_run(run_dir, existed=existed, resume=resume)
        raise


def check_resume(cfg: TrainConfig, run_dir: Path) -> None:
    """ConfigError naming every setting of ``cfg`` that differs from the run's saved config
    (:func:`~xray_seg.training.config_checks.resume_changes`): the run would not continue exactly."""
    changes = resume_changes(resume_config(run_dir), cfg)
    if changes:
        raise ConfigError(
            "--resume with settings that differ from the run's config.yaml, so it would not continue exactly: "
            + "; ".join(changes),
            path=RunLayout(run_dir).config_file,
            fix="resume with the same settings (only --epochs may grow), or start a new run with another --run-dir",
        )


@contextlib.contextmanager
def pipeline_errors_named():
    """A TensorFlow error raised by a bad label inside the pipeline becomes the one-line
    :class:`~xray_seg.core.errors.DatasetError` naming the file; other errors pass unchanged."""
    try:
        yield
    except tf.errors.InvalidArgumentError as exc:
        error = dataset_error_from(exc)
        if error is None:
            raise
        raise error from None


def remove_unstarted_run(run_dir: Path, *, existed: bool, resume: bool) -> None:
    """Delete a run folder this call created (it holds our marker) if no epoch finished
    (no ``checkpoints/state.json``)."""
    if resume or existed or not run_dir.is_dir() or not has_marker(run_dir):
        return
    if not RunLayout(run_dir).state_file.exists():
        shutil.rmtree(run_dir, ignore_errors=True)


def _train_session(
    cfg: TrainConfig,
    run_dir: Path,
    *,
    resume: bool,
    force: bool,
    devices: str | None,
    cpu_replicas: int,
    verbose: int,
    stop_after_epochs: int | None,
) -> TrainResult:
    """The steps of :func:`train` in their order (module docstring)."""
    strategy = make_strategy(devices, cpu_replicas)  # before anything initialises TF devices
    init = None
    if cfg.init and not resume:  # a bad --init source is refused before the run folder exists
        validate_train_config(cfg)
        init, cfg = prepare_init(cfg)
    state = prepare_run_dir(cfg, run_dir, resume=resume, force=force)
    seed_everything(cfg)
    class_names = write_class_names(cfg, run_dir)
    plan = batch_and_lr_arithmetic(cfg, strategy.num_replicas_in_sync)
    class_weights = resolve_class_weights(cfg, class_names, verbose)
    train_ds, val_ds = build_datasets(cfg, plan, start_epoch=state["epochs_done"])
    with strategy.scope():
        model, inference_model, output_names, optimizer = build_model_and_optimizer(cfg, len(class_names), plan)
        if init is not None:  # weights by path and shape, classes by name; the optimizer stays fresh
            initialise_from_source(model, cfg, init, class_names, run_dir, verbose=verbose)
        loss, loss_weights = build_losses(cfg, output_names, class_weights)
        model.compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights, jit_compile=cfg.jit_compile)
        if resume:
            restore_last_checkpoint(model, optimizer, run_dir)
    if output_names:  # every output (main and auxiliary heads) learns the same masks
        train_ds = train_ds.map(lambda x, y: (x, {name: y for name in output_names}))
    prepare_fit_for_strategy(model, strategy, train_ds.element_spec)
    validation = build_metrics(cfg, val_ds, class_names, run_dir)
    nan_guard, callbacks = build_callbacks(run_dir, validation, inference_model, plan, state, resume=resume)
    first, last = fine_tuning_callbacks(cfg, model, state, run_dir)  # freeze before the checkpoint, early stop after
    callbacks = [*first, *callbacks, *last]
    if verbose:
        print_plan(cfg, plan, state, run_dir)
    history, seconds = fit_with_recovery(
        model,
        train_ds,
        callbacks,
        nan_guard,
        cfg,
        plan,
        state,
        run_dir,
        stop_after_epochs=stop_after_epochs,
        verbose=verbose,
    )
    return train_result(run_dir, history, seconds)


def _write_curves(run_dir: Path) -> None:
    history = RunLayout(run_dir).history_csv
    if history.is_file() and history.stat().st_size:
        try:
            plot_training_curves(RunLayout(run_dir).training_curves, history)
        except (ValueError, XraySegError):
            pass  # an empty or one-line history has nothing to plot yet
