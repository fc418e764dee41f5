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
"""

from __future__ import annotations

import json
import os

from xray_seg.core.errors import ConfigError


def make_strategy(devices: str | None = None, cpu_replicas: int = 1):
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise ConfigError(f"TF_CONFIG is not valid JSON ({exc})", fix="see docs/training.md, section 'Several machines'") from None
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
        raise ConfigError(f"--devices {devices} given but no GPU is visible", fix="drop --devices, or check CUDA_VISIBLE_DEVICES")
    return tf.distribute.get_strategy()
