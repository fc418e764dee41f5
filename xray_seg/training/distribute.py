"""Choosing the tf.distribute strategy for training.

- ``TF_CONFIG`` set: :class:`tf.distribute.MultiWorkerMirroredStrategy` (several
  machines; each runs the same command with its own ``task.index``).
- ``cpu_replicas > 1``: the CPU is split into that many logical devices and
  :class:`tf.distribute.MirroredStrategy` runs over them. This exercises the exact
  Mirrored code path on a machine without GPUs (tests use it).
- GPUs visible: MirroredStrategy over all of them, or over ``devices`` (e.g. "0,2").
- Otherwise: TensorFlow's default (single-device) strategy.

Logical devices can only be configured before TensorFlow initialises its runtime,
so call :func:`make_strategy` before building any model or dataset.

Beside the strategy: synchronised batch norm across replicas, and
:func:`prepare_fit_for_strategy`, the work-around for two Keras bugs under
MultiWorkerMirroredStrategy that the trainer applies between ``compile`` and ``fit``.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as tf_trainer

from xray_seg.core.errors import ConfigError


def make_strategy(devices: str | None = None, cpu_replicas: int = 1):

    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"TF_CONFIG is not valid JSON ({exc})", fix="see docs/training.md, section 'Several machines'"
            ) from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cpu_replicas > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_replicas)]
            )
        except RuntimeError:
            pass  # already configured in this process (e.g. a second run in one test session)
        logical = tf.config.list_logical_devices("CPU")
        if len(logical) < cpu_replicas:
            raise ConfigError(
                f"--cpu-replicas {cpu_replicas} requested but TensorFlow was already initialised with {len(logical)} CPU device(s)",
                fix="start a fresh process",
            )
        return tf.distribute.MirroredStrategy([d.name for d in logical[:cpu_replicas]])
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if devices:
            wanted = [f"/gpu:{int(i)}" for i in devices.split(",") if i.strip()]
            return tf.distribute.MirroredStrategy(wanted)
        return tf.distribute.MirroredStrategy()
    if devices:
        raise ConfigError(
            f"--devices {devices} given but no GPU is visible", fix="drop --devices, or check CUDA_VISIBLE_DEVICES"
        )
    return tf.distribute.get_strategy()


def enable_sync_batchnorm(model) -> None:
    """Batch statistics over all replicas (CycleNet section 4.1, IFBFNet section 4.1)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


def prepare_fit_for_strategy(model, strategy, element_spec) -> None:
    """Call between ``compile`` and ``fit``: applies the MultiWorker work-around below
    under :class:`tf.distribute.MultiWorkerMirroredStrategy`, does nothing otherwise."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _prebuild_for_multiworker(model, strategy, element_spec)


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
