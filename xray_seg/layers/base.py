"""The base class of xray-seg's configurable layers: their Keras config is their constructor arguments."""

from __future__ import annotations

import keras


class ConfigLayer(keras.layers.Layer):
    """A Keras layer whose config is the constructor arguments named in ``CONFIG``.

    A subclass lists its arguments in ``CONFIG`` and calls ``self.store_config(locals())``
    right after ``super().__init__(**kwargs)``: each argument becomes an attribute of the
    same name (normalise one by assigning it again afterwards). :meth:`get_config` returns
    those attributes, tuples as lists (as JSON stores them), so ``cls(**config)`` rebuilds
    the layer and a ``.keras`` file round-trips.

    Example:
        >>> import keras
        >>> from xray_seg.layers.base import ConfigLayer
        >>> class Scale(ConfigLayer):
        ...     CONFIG = ("factor", "axes")
        ...     def __init__(self, factor: float = 2.0, axes=(1, 2), **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.store_config(locals())
        ...     def call(self, inputs):
        ...         return inputs * self.factor
        >>> config = Scale(3.0, name="scale").get_config()
        >>> config["factor"], config["axes"], Scale.from_config(config).factor
        (3.0, [1, 2], 3.0)
    """

    #: Names of the constructor arguments that make up the config, in order.
    CONFIG: tuple[str, ...] = ()

    def store_config(self, arguments: dict) -> None:
        """Keep every ``CONFIG`` entry of ``arguments`` (the caller's ``locals()``) as an attribute."""
        for key in self.CONFIG:
            setattr(self, key, arguments[key])

    def get_config(self):
        config = super().get_config()
        for key in self.CONFIG:
            value = getattr(self, key)
            config[key] = list(value) if isinstance(value, tuple) else value
        return config
