"""Plain Keras loading of xray-seg's ``.keras`` files (docs/python_api.md, "Plain Keras loading").

A ``.keras`` file names its layers ``xray_seg>ConvBNAct``, ``xray_seg>DWFFASPP``, ...; Keras
finds such a class only in its registry of custom objects, which the class's module fills when
it is imported. Two ways make ``keras.saving.load_model("RUN/best_model.keras")`` work:

1. ``import xray_seg`` first. It imports neither Keras nor TensorFlow. It hands Keras a registry
   that imports xray-seg's serialisable modules the first time a ``xray_seg>`` name is looked
   up (:func:`install_keras_hook`): the registry is swapped at once when Keras is already
   imported, else right after Keras's ``object_registration`` module loads (a one-shot import
   hook on that one module).
2. ``keras.saving.load_model(path, custom_objects=xray_seg.custom_objects())``: every class
   xray-seg registers, by its registered name, with no hook involved.

The swap uses one internal name of Keras (``keras.src.saving.object_registration.
GLOBAL_CUSTOM_OBJECTS``, the dict ``keras.saving.get_custom_objects()`` returns); where a Keras
version lacks it, nothing is swapped and way 2 still works (``tests/test_keras_objects.py``
checks both in fresh processes).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

PACKAGE_PREFIX = "xray_seg>"
REGISTRY_MODULE = "keras.src.saving.object_registration"
_registering = [False]


def register_keras_objects() -> None:
    """Import every module that registers a Keras-serialisable class: layers, models, the
    losses, optimiser and schedules a compiled model names, the metrics, CycleGAN's layers."""
    import xray_seg.evaluation.metrics  # noqa: F401
    import xray_seg.synthesis.cyclegan.layers  # noqa: F401
    import xray_seg.training.losses  # noqa: F401
    import xray_seg.training.optim  # noqa: F401
    from xray_seg.models.registry import import_custom_objects

    import_custom_objects()


def custom_objects() -> dict:
    """``{registered name: class}`` of every Keras object xray-seg registers, for
    ``keras.saving.load_model(path, custom_objects=xray_seg.custom_objects())``."""
    import keras

    register_keras_objects()
    return {k: v for k, v in keras.saving.get_custom_objects().items() if k.startswith(PACKAGE_PREFIX)}


class _LazyRegistry(dict):
    """Keras's registry of custom objects, which imports xray-seg's classes on the first lookup
    of a ``xray_seg>`` name it does not hold yet."""

    def __contains__(self, key):
        found = dict.__contains__(self, key)
        if not found and isinstance(key, str) and key.startswith(PACKAGE_PREFIX) and not _registering[0]:
            _registering[0] = True
            try:
                register_keras_objects()
            finally:
                _registering[0] = False
            found = dict.__contains__(self, key)
        return found


def _swap(module) -> None:
    current = getattr(module, "GLOBAL_CUSTOM_OBJECTS", None)
    if isinstance(current, dict) and not isinstance(current, _LazyRegistry):
        module.GLOBAL_CUSTOM_OBJECTS = _LazyRegistry(current)


class _SwappingLoader(importlib.abc.Loader):
    """Runs Keras's own loader of the registry module, then swaps its registry."""

    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        _swap(module)


class _RegistryFinder(importlib.abc.MetaPathFinder):
    """A one-shot finder for :data:`REGISTRY_MODULE` that wraps its loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname != REGISTRY_MODULE:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _SwappingLoader(spec.loader)
        return spec


def install_keras_hook() -> None:
    """Make ``keras.saving.load_model`` find xray-seg's classes after ``import xray_seg``
    (module docstring), without importing Keras or TensorFlow."""
    module = sys.modules.get(REGISTRY_MODULE)
    if module is not None:
        _swap(module)
    elif not any(isinstance(finder, _RegistryFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegistryFinder())
