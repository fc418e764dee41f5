"""CycleASPP: DenseASPP with feedback connections (CycleNet, section 3.1, eqs. 2-3).

Notation (paper): ``Y_0`` is the (reduced) input, ``Y_j^k`` the output of atrous layer
``j`` (1..J) after pass ``k`` (``k = 0`` is part I, ``k >= 1`` the feedback passes of
part II).

- Part I, eq. 2: ``Y_j^0 = f_{r_j}(concat[Y_{j-1}^0, ..., Y_1^0, Y_0])`` - the input and
  every earlier output (DenseASPP).
- Part II, eq. 3: ``Y_j^k = f_{r_j}(concat[Y_J^{k-1}, ..., Y_{j+1}^{k-1}, Y_{j-1}^k, ...,
  Y_1^k])`` - the latest output of every *other* layer, updated in sequence: later
  layers from the previous pass, earlier layers from this pass. The list in eq. 3
  stops at ``Y_1``, so **the input ``Y_0`` is not fed again in part II** (as in
  CliqueNet's stage II, which the paper cites as its inspiration).
- Output: the latest output of every layer, concatenated: ``concat[Y_1^K, ..., Y_J^K]``
  (J * ``growth_filters`` channels).

**Weight sharing.** Eqs. 2 and 3 use the same ``f_{r_j}`` for both parts, the paper calls
the structure "recurrent" and says the feedback "refine[s] the convolution filters",
following CliqueNet, where the weight ``W_ij`` of each connection ``i -> j`` is reused
in every stage. We implement exactly that: a 1x1 conv over a concatenation is the sum
of per-source 1x1 convs, so ``f_{r_j}`` owns one 1x1 conv per source ``i -> j`` and one
3x3 atrous conv. Part II reuses part I's forward connections ``i -> j`` (i < j) and the
atrous conv; the input connection ``0 -> j`` is used only in part I and the backward
connections ``i -> j`` (i > j) only in part II. Batch norms are *not* shared between
passes (each pass sees a different input distribution; per-step BN statistics as in
recurrent batch normalisation). ``share_weights=False`` gives every pass its own
convolutions instead.

**Widths** (DenseASPP, Yang et al. 2018, not given by CycleNet): the backbone feature is
first reduced by a 1x1 conv to ``reduction_filters`` (512; DenseASPP feeds its ASPP a
halved backbone feature), then each layer is 1x1 conv -> ``bottleneck_filters`` (128)
-> BN-ReLU -> 3x3 atrous conv (rate ``r_j``) -> ``growth_filters`` (64) -> BN-ReLU.
"""

from __future__ import annotations

import keras
from keras import ops

from xray_seg.layers.base import ConfigLayer
from xray_seg.layers.conv import ConvBNAct, conv2d
from xray_seg.layers.norm import BatchNorm


@keras.saving.register_keras_serializable(package="xray_seg")
class CycleASPP(ConfigLayer):
    """Cycle atrous spatial pyramid pooling (CycleNet section 3.1, eqs. 2-3, Fig. 1).

    See the module docstring for the connection pattern, the weight sharing and the
    channel widths.

    Args:
        rates: atrous rates r_1..r_J of the cascade (paper: (3, 6, 12, 18, 24, 30)).
        feedback_steps: number of part-II passes k (paper: 1; 0 = DenseASPP).
        reduction_filters: channels of the 1x1 reduction of the input (Y_0).
        bottleneck_filters: channels of each layer's 1x1 conv before its atrous conv.
        growth_filters: output channels of each atrous layer (DenseASPP: 64).
        share_weights: reuse part I's convolutions in part II (paper; see above).
        **kwargs: standard layer arguments.

    Example:
        >>> import numpy as np
        >>> from xray_seg.layers.cycle_aspp import CycleASPP
        >>> aspp = CycleASPP(rates=(3, 6, 12), reduction_filters=64, bottleneck_filters=32, growth_filters=16)
        >>> tuple(aspp(np.zeros((1, 16, 16, 128), "float32")).shape)
        (1, 16, 16, 48)
    """

    CONFIG = ("rates", "feedback_steps", "reduction_filters", "bottleneck_filters", "growth_filters", "share_weights")

    def __init__(
        self,
        rates=(3, 6, 12, 18, 24, 30),
        feedback_steps: int = 1,
        reduction_filters: int = 512,
        bottleneck_filters: int = 128,
        growth_filters: int = 64,
        share_weights: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rates = tuple(int(r) for r in rates)
        self.feedback_steps = int(feedback_steps)
        self.reduction_filters = int(reduction_filters)
        self.bottleneck_filters = int(bottleneck_filters)
        self.growth_filters = int(growth_filters)
        self.share_weights = bool(share_weights)
        if len(self.rates) < 2:
            raise ValueError(f"CycleASPP needs at least two atrous layers, got rates={rates!r}")
        if self.feedback_steps < 0:
            raise ValueError(f"feedback_steps must be >= 0, got {feedback_steps!r}")

        self.reduce = ConvBNAct(self.reduction_filters, 1, name="reduce")
        # Flat lists (one entry per (pass group, layer, source)) so that .keras saving
        # tracks every sublayer by its unique name.
        self.projections = []
        self.atrous_convs = []
        for group in range(self._conv_groups):
            for j in range(1, self.num_layers + 1):
                for i in self._group_sources(group, j):
                    self.projections.append(conv2d(self.bottleneck_filters, 1, name=self._projection_name(group, i, j)))
                rate = self.rates[j - 1]
                self.atrous_convs.append(
                    conv2d(self.growth_filters, 3, dilation_rate=rate, name=f"atrous{self._suffix(group)}_{j}")
                )
        self.bottleneck_bns = []
        self.output_bns = []
        for step in range(self.num_passes):
            for j in range(1, self.num_layers + 1):
                self.bottleneck_bns.append(BatchNorm(name=f"pass{step}_layer{j}_bn1"))
                self.output_bns.append(BatchNorm(name=f"pass{step}_layer{j}_bn2"))
        self._projection_index = {
            (group, i, j): n
            for n, (group, i, j) in enumerate(
                (group, i, j)
                for group in range(self._conv_groups)
                for j in range(1, self.num_layers + 1)
                for i in self._group_sources(group, j)
            )
        }

    # --- connection pattern (eqs. 2-3) -------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.rates)

    @property
    def num_passes(self) -> int:
        return 1 + self.feedback_steps

    @property
    def _conv_groups(self) -> int:
        """1 shared set of convs, or one per pass."""
        return 1 if self.share_weights else self.num_passes

    def pass_sources(self, step: int, j: int) -> list[tuple[int, int]]:
        """The inputs of layer ``j`` in pass ``step`` as ``(source layer, source pass)``.

        Source layer 0 is the reduced input ``Y_0``. Part I (eq. 2): ``Y_0`` and
        ``Y_1^0..Y_{j-1}^0``. Part II (eq. 3): ``Y_i^{step}`` for ``i < j`` and
        ``Y_i^{step-1}`` for ``i > j``; no ``Y_0``.
        """
        if step == 0:
            return [(0, 0)] + [(i, 0) for i in range(1, j)]
        return [(i, step if i < j else step - 1) for i in range(1, self.num_layers + 1) if i != j]

    def _group_sources(self, group: int, j: int) -> list[int]:
        """Source layers that have a projection conv into ``j`` in conv group ``group``."""
        if self.share_weights:
            steps = range(self.num_passes)
        else:
            steps = [group]
        return sorted({i for step in steps for i, _ in self.pass_sources(step, j)})

    def _suffix(self, group: int) -> str:
        return "" if self.share_weights else f"_pass{group}"

    def _projection_name(self, group: int, i: int, j: int) -> str:
        return f"proj{self._suffix(group)}_{i}_to_{j}"

    def projection(self, step: int, i: int, j: int) -> keras.layers.Conv2D:
        """The 1x1 conv carrying source ``i`` into layer ``j`` in pass ``step``."""
        group = 0 if self.share_weights else step
        return self.projections[self._projection_index[(group, i, j)]]

    def atrous(self, step: int, j: int) -> keras.layers.Conv2D:
        group = 0 if self.share_weights else step
        return self.atrous_convs[group * self.num_layers + j - 1]

    # --- keras ---------------------------------------------------------------------------
    def build(self, input_shape):
        batch_hw = tuple(input_shape[:3])
        self.reduce.build(input_shape)
        for (_group, i, _j), n in self._projection_index.items():
            channels = self.reduction_filters if i == 0 else self.growth_filters
            self.projections[n].build(batch_hw + (channels,))
        for conv in self.atrous_convs:
            conv.build(batch_hw + (self.bottleneck_filters,))
        for bn in self.bottleneck_bns:
            bn.build(batch_hw + (self.bottleneck_filters,))
        for bn in self.output_bns:
            bn.build(batch_hw + (self.growth_filters,))

    def _layer(self, step: int, j: int, sources, training):
        """f_{r_j} on the concatenation of ``sources`` (= sum of per-source 1x1 convs)."""
        x = None
        for i, tensor in sources:
            y = self.projection(step, i, j)(tensor)
            x = y if x is None else x + y
        bn_index = step * self.num_layers + j - 1
        x = ops.relu(self.bottleneck_bns[bn_index](x, training=training))
        x = self.atrous(step, j)(x)
        return ops.relu(self.output_bns[bn_index](x, training=training))

    def call(self, inputs, training=None):
        outputs = {(0, 0): self.reduce(inputs, training=training)}  # (layer, pass) -> Y
        for step in range(self.num_passes):
            for j in range(1, self.num_layers + 1):
                sources = [(i, outputs[(i, k)]) for i, k in self.pass_sources(step, j)]
                outputs[(j, step)] = self._layer(step, j, sources, training)
        last = self.num_passes - 1
        return ops.concatenate([outputs[(j, last)] for j in range(1, self.num_layers + 1)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.num_layers * self.growth_filters,)
