"""Optimizers, learning-rate schedules and per-module learning-rate multipliers.

- Paper 1 (section 4.1, Table 1): Adam, lr 1e-4, constant.
- CycleNet (section 4.1) and IFBFNet (section 4.1): SGD, momentum 0.9, weight decay,
  the "poly" schedule ``lr * (1 - step / total) ** 0.9`` with a linear warm-up.
- IFBFNet trains its auxiliary branch and fusion modules at 10x the base rate. This
  is a general mechanism here: ``lr_multipliers`` maps a regular expression over a
  variable's path (e.g. ``"aux|balanced_fusion"``) to a factor, applied inside the
  optimizer's update step, so it is exact for SGD and Adam alike. (Decoupled weight
  decay keeps the base rate; the multiplier scales only the gradient update.)
"""

from __future__ import annotations

import re

import keras
from keras import ops

from xray_seg.core.errors import ConfigError


@keras.saving.register_keras_serializable(package="xray_seg")
class WarmupPoly(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ``warmup_ratio * base`` to ``base`` over ``warmup_steps``, then
    poly decay ``base * (1 - t / T) ** power`` (T = ``total_steps``), floored at ``min_lr``.

    With ``power=0`` the decay is constant (Adam in paper 1 uses a constant rate).

    Args:
        base_lr: the peak learning rate.
        total_steps: the steps of the whole run (epochs x steps per epoch).
        power: poly power (0.9 in CycleNet and IFBFNet).
        warmup_steps: linear warm-up length in steps (0 = none).
        warmup_ratio: the starting fraction of ``base_lr`` for warm-up.
        min_lr: the floor of the decayed rate.
    """

    def __init__(self, base_lr, total_steps, power=0.9, warmup_steps=0, warmup_ratio=0.1, min_lr=0.0):
        self.base_lr = float(base_lr)
        self.total_steps = int(max(1, total_steps))
        self.power = float(power)
        self.warmup_steps = int(warmup_steps)
        self.warmup_ratio = float(warmup_ratio)
        self.min_lr = float(min_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        progress = ops.clip(step / float(self.total_steps), 0.0, 1.0)
        decayed = (self.base_lr - self.min_lr) * ops.power(1.0 - progress, self.power) + self.min_lr
        if self.warmup_steps <= 0:
            return decayed
        warm = self.base_lr * (self.warmup_ratio + (1.0 - self.warmup_ratio) * step / float(self.warmup_steps))
        return ops.where(step < float(self.warmup_steps), warm, decayed)

    def get_config(self):
        return dict(
            base_lr=self.base_lr,
            total_steps=self.total_steps,
            power=self.power,
            warmup_steps=self.warmup_steps,
            warmup_ratio=self.warmup_ratio,
            min_lr=self.min_lr,
        )


class _LrMultiplierMixin:
    """Scales the learning rate of matching variables inside ``update_step``."""

    def _init_multipliers(self, lr_multipliers):
        self.lr_multipliers = dict(lr_multipliers or {})
        self._compiled_multipliers = [(re.compile(p), float(f)) for p, f in self.lr_multipliers.items()]
        self._multiplier_by_index: list[float] = []

    def build(self, variables):
        super().build(variables)
        self._multiplier_by_index = [self.multiplier_for(v.path) for v in variables]

    def multiplier_for(self, path: str) -> float:
        for pattern, factor in self._compiled_multipliers:
            if pattern.search(path):
                return factor
        return 1.0

    def update_step(self, gradient, variable, learning_rate):
        factor = self._multiplier_by_index[self._get_variable_index(variable)] if self._multiplier_by_index else 1.0
        if factor != 1.0:
            learning_rate = learning_rate * factor
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["lr_multipliers"] = self.lr_multipliers
        return config


@keras.saving.register_keras_serializable(package="xray_seg")
class MultiplierSGD(_LrMultiplierMixin, keras.optimizers.SGD):
    """SGD with per-variable learning-rate multipliers (see module docstring)."""

    def __init__(self, lr_multipliers=None, **kwargs):
        super().__init__(**kwargs)
        self._init_multipliers(lr_multipliers)


@keras.saving.register_keras_serializable(package="xray_seg")
class MultiplierAdam(_LrMultiplierMixin, keras.optimizers.Adam):
    """Adam with per-variable learning-rate multipliers (see module docstring)."""

    def __init__(self, lr_multipliers=None, **kwargs):
        super().__init__(**kwargs)
        self._init_multipliers(lr_multipliers)


@keras.saving.register_keras_serializable(package="xray_seg")
class MultiplierAdamW(_LrMultiplierMixin, keras.optimizers.AdamW):
    """AdamW with per-variable learning-rate multipliers (see module docstring)."""

    def __init__(self, lr_multipliers=None, **kwargs):
        super().__init__(**kwargs)
        self._init_multipliers(lr_multipliers)


OPTIMIZERS = {"sgd": MultiplierSGD, "adam": MultiplierAdam, "adamw": MultiplierAdamW}


def build_optimizer(
    name: str,
    learning_rate,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    clipnorm: float | None = None,
    lr_multipliers: dict | None = None,
):
    """An optimizer by name ("sgd", "adam" or "adamw") with optional multipliers and clipping."""
    cls = OPTIMIZERS.get(name.lower())
    if cls is None:
        raise ConfigError(f"unknown optimizer {name!r}", fix=f"use one of: {', '.join(OPTIMIZERS)}")
    kwargs = dict(learning_rate=learning_rate, lr_multipliers=lr_multipliers)
    if weight_decay:
        kwargs["weight_decay"] = weight_decay
    if clipnorm:
        kwargs["global_clipnorm"] = clipnorm
    if cls is MultiplierSGD:
        kwargs["momentum"] = momentum
    return cls(**kwargs)
