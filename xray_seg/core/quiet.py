"""A quieter start: silence what is noise, keep what is a real warning (docs/architecture.md).

Called by the CLI before a command runs (before TensorFlow is imported):

- **TensorFlow's start-up lines.** TensorFlow 2.21 loads two native libraries
  (``_pywrap_cpu_feature_guard`` and ``_pywrap_profiler_plugin``) that each carry their own
  copy of absl logging, and each logs, before ``absl::InitializeLog()`` and regardless of
  ``TF_CPP_MIN_LOG_LEVEL``: "WARNING: All log messages before absl::InitializeLog() ...",
  oneDNN's "custom operations are on", "Could not find cuda drivers" and
  cpu_feature_guard's "This TensorFlow binary is optimized ..." - so every command showed
  them twice. The first ``import tensorflow`` therefore runs with the process's stderr
  (file descriptor 2) sent to /dev/null; Python errors raised by the import still reach the
  user, after it. ``--debug`` keeps them.

- **cuInit.** On a machine without an NVIDIA driver, TensorFlow's CUDA plugin logs
  ``E0000 ... failed call to cuInit ... (303)`` at error level on every start, although
  nothing is wrong (the CPU is used). It logs it when the platform is first used, which is
  after the import (the train step), so the quiet import also lists the GPUs once, silenced
  (:func:`probe_cuda_quietly`): the line cannot come later whatever ``TF_CPP_MIN_LOG_LEVEL``
  is (``scripts/_venv.sh`` sets 2). Only then, and only if the user has not set
  ``TF_CPP_MIN_LOG_LEVEL``, the C++ log level is raised to 3; elsewhere it defaults to 2
  (C++ INFO and WARNING hidden, errors shown).
- **Keras' "`shuffle=True` was passed, but will be ignored".** Our ``tf.data`` stream
  shuffles itself, per epoch and reproducibly (:mod:`xray_seg.pipeline.dataset`), so
  the note is noise.
- **Pillow's DecompressionBombWarning.** Every image we decode is checked against our
  own pixel limit first (:mod:`xray_seg.core.pixel_limit`), which names the file and
  the way to raise it; Pillow's limit is aligned with it and its raw warning silenced.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import warnings
from pathlib import Path

from xray_seg.core.pixel_limit import max_pixels


def nvidia_driver_present() -> bool:
    """True if an NVIDIA kernel driver is loaded (its /proc entry or a device node exists)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


@contextlib.contextmanager
def stderr_silenced():
    """Send file descriptor 2 (native libraries' logs as well as ``sys.stderr``) to /dev/null."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` under :func:`stderr_silenced` (module docstring)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # once; the spec below comes from the other finders
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def quiet_exec(module):
                with stderr_silenced():
                    exec_module(module)
                    if not nvidia_driver_present():
                        probe_cuda_quietly(module)

            spec.loader.exec_module = quiet_exec
        return spec


def probe_cuda_quietly(tensorflow) -> None:
    """Let TensorFlow's CUDA platform make its one cuInit call now, inside the silenced import.

    Without a driver that call fails and logs ``E0000 ... failed call to cuInit`` at error
    level; left to itself it happens at the first device use (the train step), after the
    import, and shows whenever ``TF_CPP_MIN_LOG_LEVEL`` is below 3 (``scripts/_venv.sh`` sets
    2). Listing physical devices initialises the platform (once per process) without
    creating the runtime context, so thread and device settings can still be made.
    """
    with contextlib.suppress(Exception):
        tensorflow.config.list_physical_devices("GPU")


def silence_tensorflow_import() -> None:
    """Make the first ``import tensorflow`` quiet (no-op once TensorFlow is loaded)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def quiet_start(debug: bool = False) -> None:
    """Apply the filters of the module docstring (idempotent); ``debug`` keeps TensorFlow's start-up lines."""
    if not debug:
        silence_tensorflow_import()
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2" if nvidia_driver_present() else "3"
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed, but will be ignored")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    # Pillow still refuses (DecompressionBombError) anything over twice our limit, in any decoder.
    Image.MAX_IMAGE_PIXELS = max_pixels()
