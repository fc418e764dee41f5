"""Modulated deformable convolution (DCNv2) from ``keras.ops`` only.

CycleNet's ADC module (section 3.2, eq. 4) aligns the upsampled context features with
a modulated deformable convolution (Zhu et al., "Deformable ConvNets v2", 2019):

    Y[l0] = sum_n  w_n * X[l0 + l_n + dl_n] * dm_n

There is no deformable-conv op in Keras, so this layer is an explicit im2col:

1. sampling positions ``p0 + p_n + dp_n`` for every output location and kernel tap;
2. bilinear sampling of ``x`` at those positions by one gather (``keras.ops.take`` on
   the map flattened to ``[B*H*W*G, C/G]``) of the four neighbours; a neighbour outside
   the image contributes zero (as in the reference CUDA kernels);
3. the bilinear weights are multiplied by the modulation mask before the sum, giving
   columns ``[B, Ho, Wo, k*k, C]``;
4. columns reshaped to ``[B, Ho, Wo, k*k*C]`` times the kernel reshaped to
   ``[k*k*C, filters]`` (per conv group).

**Memory limit.** Step 2 materialises ``4 * B * Ho * Wo * k*k * C`` values (kept for the
backward pass), e.g. 151 MB per image for a 128x128 map with 64 channels and k=3 in
float32, against ``B * Ho * Wo * C`` for a standard conv - k*k*4 = 36 times more. Use it
on reduced channels (ADC reduces the context features with a 1x1 conv first).

Offsets of zero and a mask of one give exactly a standard convolution with the same
padding/stride/dilation (tested against ``keras.layers.Conv2D``).
"""

from __future__ import annotations

import keras
from keras import ops

from xray_seg.layers.base import ConfigLayer


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(output size, padding before) of TensorFlow's "same" padding along one axis."""
    out = -(-size // stride)
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2


@keras.saving.register_keras_serializable(package="xray_seg")
class ModulatedDeformConv2D(ConfigLayer):
    """Modulated deformable 2-D convolution, DCNv2 (CycleNet section 3.2, eq. 4).

    Called on ``[x, offset, mask]``:

    - ``x``: ``[B, H, W, C]`` features (channels last);
    - ``offset``: ``[B, Ho, Wo, 2 * deformable_groups * k*k]``; for deformable group
      ``g`` and kernel tap ``n`` (row-major over the k x k window) channel
      ``g*2*k*k + 2*n`` is the row offset ``dy`` and ``g*2*k*k + 2*n + 1`` the column
      offset ``dx``, in input pixels (the interleaved (dy, dx) layout of the DCNv2
      reference code);
    - ``mask``: ``[B, Ho, Wo, deformable_groups * k*k]``, already in [0, 1] (channel
      ``g*k*k + n``).

    Args:
        filters: output channels.
        kernel_size: odd or even int k (square kernel).
        strides: int stride.
        padding: "same" (TensorFlow's "same": output ``ceil(H / stride)``) or "valid".
        dilation_rate: int dilation of the regular grid ``p_n``.
        groups: convolution groups (as ``keras.layers.Conv2D(groups=...)``); the kernel
            has shape ``[k, k, C / groups, filters]``.
        deformable_groups: offset groups: the input channels are split into this many
            groups, each sampled with its own offsets and mask (1 in CycleNet's ADC).
        use_bias: add a bias.
        kernel_initializer, bias_initializer: initialisers.
        **kwargs: standard layer arguments (name, dtype, ...).

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.deform import ModulatedDeformConv2D
        >>> x = np.random.default_rng(0).normal(size=(1, 8, 8, 4)).astype("float32")
        >>> offset, mask = np.zeros((1, 8, 8, 18), "float32"), np.ones((1, 8, 8, 9), "float32")
        >>> tuple(ModulatedDeformConv2D(16, 3)([x, offset, mask]).shape)
        (1, 8, 8, 16)
    """

    CONFIG = (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "dilation_rate",
        "groups",
        "deformable_groups",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
    )

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        padding: str = "same",
        dilation_rate: int = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        use_bias: bool = True,
        kernel_initializer="he_normal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.padding = padding
        self.dilation_rate = int(dilation_rate)
        self.groups = int(groups)
        self.deformable_groups = int(deformable_groups)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        if self.filters % self.groups:
            raise ValueError(f"filters ({filters}) must be divisible by groups ({groups})")

    def build(self, input_shape):
        x_shape = input_shape[0]
        channels = x_shape[-1]
        if channels % self.groups or channels % self.deformable_groups:
            raise ValueError(
                f"input channels ({channels}) must be divisible by groups ({self.groups}) "
                f"and deformable_groups ({self.deformable_groups})"
            )
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(k, k, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )

    def _geometry(self, height: int, width: int):
        """(Ho, Wo, pad_top, pad_left) for the configured padding."""
        k, s, d = self.kernel_size, self.strides, self.dilation_rate
        if self.padding == "same":
            out_h, pad_h = _same_padding(height, k, s, d)
            out_w, pad_w = _same_padding(width, k, s, d)
        else:
            effective = (k - 1) * d + 1
            out_h, out_w, pad_h, pad_w = (height - effective) // s + 1, (width - effective) // s + 1, 0, 0
        return out_h, out_w, pad_h, pad_w

    def call(self, inputs):
        x, offset, mask = inputs
        dtype = self.compute_dtype
        # Sampling positions and bilinear weights stay in float32 (float64 if the layer
        # computes in float64): float16 would round positions on large maps.
        geo = "float64" if dtype == "float64" else "float32"
        x = ops.cast(x, dtype)
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:
            raise ValueError("ModulatedDeformConv2D needs a static spatial input size")
        out_h, out_w, pad_h, pad_w = self._geometry(height, width)
        batch = ops.shape(x)[0]
        pos_y, pos_x = self._positions(ops.cast(offset, geo), batch, out_h, out_w, pad_h, pad_w, geo)
        taps, g = self.kernel_size * self.kernel_size, self.deformable_groups
        mask = ops.transpose(ops.reshape(ops.cast(mask, geo), (batch, out_h, out_w, g, taps)), (0, 1, 2, 4, 3))
        columns = self._sample(x, pos_y, pos_x, mask, geo)  # [B, Ho, Wo, taps, G, C/G]
        return self._apply_kernel(columns, batch, out_h, out_w, x.shape[3])

    def _positions(self, offset, batch, out_h: int, out_w: int, pad_h: int, pad_w: int, geo: str):
        """Deformed sampling positions ``p0 + p_n + dp_n``, each ``[B, Ho, Wo, taps, G]``
        (tap-major so the columns need no transpose)."""
        k, g = self.kernel_size, self.deformable_groups
        taps = k * k
        # Regular grid p0 + p_n: rows [Ho, 1, taps], columns [1, Wo, taps] (row-major taps).
        base_y = ops.arange(out_h, dtype=geo) * self.strides - pad_h
        base_x = ops.arange(out_w, dtype=geo) * self.strides - pad_w
        tap_y = ops.repeat(ops.arange(k, dtype=geo) * self.dilation_rate, k)
        tap_x = ops.tile(ops.arange(k, dtype=geo) * self.dilation_rate, k)
        grid_y = base_y[:, None, None] + tap_y[None, None, :]
        grid_x = base_x[None, :, None] + tap_x[None, None, :]
        offset = ops.reshape(offset, (batch, out_h, out_w, g, taps, 2))
        offset = ops.transpose(offset, (0, 1, 2, 4, 3, 5))
        return grid_y[..., None] + offset[..., 0], grid_x[..., None] + offset[..., 1]

    def _sample(self, x, pos_y, pos_x, mask, geo: str):
        """Modulated bilinear samples of ``x`` at the positions: one gather of the four
        neighbours (zero outside the image), weighted and summed: ``[B, Ho, Wo, taps, G, C/G]``."""
        g = self.deformable_groups
        batch = ops.shape(x)[0]
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        y0 = ops.floor(pos_y)
        x0 = ops.floor(pos_x)
        ly = pos_y - y0
        lx = pos_x - x0
        y0 = ops.cast(y0, "int32")
        x0 = ops.cast(x0, "int32")

        batch_index = ops.reshape(ops.arange(batch, dtype="int32"), (-1, 1, 1, 1, 1))
        group_index = ops.reshape(ops.arange(g, dtype="int32"), (1, 1, 1, 1, g))
        indices, weights = [], []
        for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
            yy, xx = y0 + dy, x0 + dx
            inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
            wy = ly if dy else 1.0 - ly
            wx = lx if dx else 1.0 - lx
            weights.append(wy * wx * mask * ops.cast(inside, geo))
            yy = ops.clip(yy, 0, height - 1)
            xx = ops.clip(xx, 0, width - 1)
            indices.append(((batch_index * height + yy) * width + xx) * g + group_index)
        indices = ops.stack(indices, axis=0)  # [4, B, Ho, Wo, taps, G]
        weights = ops.cast(ops.stack(weights, axis=0)[..., None], self.compute_dtype)  # [4, B, Ho, Wo, taps, G, 1]

        flat = ops.reshape(x, (-1, channels // g))  # [B*H*W*G, C/G]
        samples = ops.take(flat, indices, axis=0)  # [4, B, Ho, Wo, taps, G, C/G]
        return ops.sum(samples * weights, axis=0)

    def _apply_kernel(self, columns, batch, out_h: int, out_w: int, channels: int):
        """The columns ``[B, Ho, Wo, taps, G, C/G]`` times the kernel, per conv group, plus the bias."""
        taps = self.kernel_size * self.kernel_size
        if self.groups == 1:
            columns = ops.reshape(columns, (batch, out_h, out_w, taps * channels))
            outputs = ops.matmul(columns, ops.reshape(self.kernel, (taps * channels, self.filters)))
        else:
            conv_in = channels // self.groups
            columns = ops.reshape(columns, (batch, out_h, out_w, taps, self.groups, conv_in))
            kernel = ops.reshape(self.kernel, (taps, conv_in, self.groups, self.filters // self.groups))
            outputs = ops.einsum("bhwkgc,kcgo->bhwgo", columns, kernel)
            outputs = ops.reshape(outputs, (batch, out_h, out_w, self.filters))
        if self.bias is not None:
            outputs = outputs + self.bias
        return outputs

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0]
        out_h, out_w, _, _ = self._geometry(x_shape[1], x_shape[2])
        return (x_shape[0], out_h, out_w, self.filters)

    def get_config(self):
        config = super().get_config()
        for key in ("kernel_initializer", "bias_initializer"):
            config[key] = keras.initializers.serialize(config[key])
        return config


def deform_conv_flops(
    out_h: int, out_w: int, in_channels: int, filters: int, kernel_size: int = 3, groups: int = 1
) -> int:
    """Analytic FLOPs of one ModulatedDeformConv2D call (batch 1; multiply-add = 2 FLOPs).

    Counts the im2col matmul (``2 * Ho*Wo * k*k*C/groups * filters``) and the modulated
    bilinear sampling (4 neighbours x (weight multiply + add) per sampled value, plus the
    weight/mask products per position: ``~ 8 * Ho*Wo*k*k*C + 40 * Ho*Wo*k*k``).
    """
    taps = kernel_size * kernel_size
    matmul = 2 * out_h * out_w * taps * (in_channels // groups) * filters
    sampling = 8 * out_h * out_w * taps * in_channels + 40 * out_h * out_w * taps
    return int(matmul + sampling)
