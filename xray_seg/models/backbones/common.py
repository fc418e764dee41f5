"""Helpers shared by the backbones: output-stride bookkeeping (atrous convolution)."""

from __future__ import annotations

from xray_seg.core.errors import ModelError


def check_output_stride(output_stride: int, allowed=(8, 16)) -> int:
    if output_stride not in allowed:
        raise ModelError(
            f"output_stride={output_stride} is not supported",
            fix=f"use one of {', '.join(map(str, allowed))} (16 is the papers' setting)",
        )
    return output_stride


class StrideSchedule:
    """Turns strides into atrous rates once the output stride is reached.

    DeepLab's rule (Chen et al. 2017, section 3.1; tf-slim ``stack_blocks_dense``): a unit
    that would push the feature stride beyond ``output_stride`` runs with stride 1 at the
    current rate, and every later unit's rate is multiplied by that stride.

    Args:
        output_stride: the wanted stride of the last feature map.
        current: the stride of the feature map the schedule starts from.
    """

    def __init__(self, output_stride: int, current: int = 1):
        self.output_stride = output_stride
        self.current = current
        self.rate = 1

    def step(self, stride: int) -> tuple[int, int]:
        """(stride, dilation_rate) to use for a unit that asks for ``stride``."""
        if stride > 1 and self.current * stride > self.output_stride:
            rate = self.rate
            self.rate *= stride
            return 1, rate
        self.current *= stride
        return stride, self.rate
