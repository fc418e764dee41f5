"""The sliding-window check shared by Keras run folders and SavedModels."""

from __future__ import annotations

from xray_seg.core.errors import ConfigError


def check_window(window, network_size, source) -> None:
    """A sliding window must equal the size a fixed-size network runs at (Keras or SavedModel alike).

    A SavedModel would otherwise resize every tile to its network size silently, while a
    Keras run folder refuses the same window: both are refused the same way here.
    """
    if window is None or network_size is None:
        return
    window, network_size = tuple(int(v) for v in window), tuple(int(v) for v in network_size)
    if window != network_size:
        raise ConfigError(
            f"the model runs at {network_size[0]}x{network_size[1]} but the sliding window is {window[0]}x{window[1]}",
            path=source,
            fix=f"use --window {network_size[0]}x{network_size[1]}, or leave --window out",
        )
