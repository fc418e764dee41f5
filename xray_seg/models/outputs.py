"""What a model returns, read in one place (docs/architecture.md, "Conventions").

A registered model returns its logits ``[B, H, W, K]``, or, with auxiliary heads on, a
dict ``{"logits": main, "aux": ..., ...}`` (see :mod:`xray_seg.models.registry`). Every
consumer (the trainer, the losses, the validation callback, inference, the serving
signatures and the exporter) takes the main logits through :func:`logits_of`. Plain
Python: no TensorFlow, so it works on symbolic Keras tensors, eager tensors and numpy.
"""

from __future__ import annotations

from xray_seg.core.errors import ModelError

MAIN_OUTPUT = "logits"
"""Name of the main segmentation output of a dict-output model."""


def logits_of(output):
    """The main logits of a model output: the tensor itself, or the dict's ``"logits"`` entry.

    A dict without ``"logits"`` but with a single entry gives that entry (a loaded model
    whose one output has another name).

    Raises:
        ModelError: a dict of several outputs, none of them called ``"logits"``.

    Example:
        >>> import numpy as np
        >>> logits_of({"logits": np.zeros((1, 4, 4, 3)), "aux": np.ones((1, 4, 4, 3))}).sum()
        np.float64(0.0)
        >>> logits_of(np.ones((1, 2, 2, 3))).shape
        (1, 2, 2, 3)
    """
    if not isinstance(output, dict):
        return output
    if MAIN_OUTPUT in output:
        return output[MAIN_OUTPUT]
    if len(output) == 1:
        return next(iter(output.values()))
    raise ModelError(
        f"the model returns several outputs {sorted(output)} and none is called {MAIN_OUTPUT!r}",
        fix=f"name the main segmentation output {MAIN_OUTPUT!r}",
    )
