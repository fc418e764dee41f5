"""A quieter start: silence what is noise, keep what is a real warning (docs/architecture.md).

Called by the CLI before a command runs (before TensorFlow is imported):

- **cuInit.** On a machine without an NVIDIA driver, TensorFlow's CUDA plugin logs
  ``E0000 ... failed call to cuInit ... (303)`` at error level on every start, although
  nothing is wrong (the CPU is used). Only then, and only if the user has not set
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

import os
import warnings
from pathlib import Path

from xray_seg.core.pixel_limit import max_pixels


def nvidia_driver_present() -> bool:
    """True if an NVIDIA kernel driver is loaded (its /proc entry or a device node exists)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def quiet_start() -> None:
    """Apply the filters of the module docstring (idempotent)."""
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
