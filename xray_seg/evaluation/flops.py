"""Parameter and FLOP counting for any Keras model (TensorFlow backend).

FLOPs are counted from the traced TensorFlow graph of ``model(x, training=False)`` for one
image, with TensorFlow's own per-op statistics (``ops.get_stats_for_node_def(...,
"flops")``, the functions behind ``tf.compat.v1.profiler``'s ``float_operation``). So the
count is exact for whatever a model does (regular, atrous, depthwise and transposed
convolutions, matmuls) without per-layer bookkeeping, and works for every registered
model.

Conventions:

- **GMACs** = multiply-accumulates of the convolution and matmul ops (Conv2D,
  DepthwiseConv2dNative, Conv2DBackpropInput, Conv3D, MatMul, BatchMatMul*), i.e. half
  of TensorFlow's count for those ops. This is what most papers print as "FLOPs"
  (e.g. DeepLabv3+'s "Multiply-Adds").
- **GFLOPs** = 2 x GMACs (one multiply plus one add each), the unit of a machine's
  FLOP/s and of a matmul's ``2 n^3``; use it for throughput versus a matmul peak.
- **other GFLOPs** = the element-wise ops TensorFlow also counts (adds, muls of BN,
  fusion weights, bias adds, means). Reported separately; not included in GFLOPs.
  Inference folds BN into the convolutions, and activations/resizes are not counted.
- **Atrous convolutions** are counted at the pixels they produce. TensorFlow runs a
  dilated convolution as ``SpaceToBatchND -> convolution -> BatchToSpaceND``; the space-to-
  batch input is padded up to a multiple of the rate, so the inner convolution computes
  more outputs than the layer returns (1296 instead of 1024 for a 3x3 conv at rate 6, 12
  or 18 on a 32x32 map: +27 %), and TensorFlow's statistic, the profiler's ``float_ops``,
  counts them all. :func:`count_flops` scales such a convolution to the elements the
  ``BatchToSpaceND`` after it keeps: the same convention as an undilated convolution
  (2 x output pixels x kernel x in x out). The profiler and this counter agree on every
  other op (``tests/evaluation/test_flops.py``; docs/benchmarks.md, "The FLOP counter and
  the matmul peak").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

CONV_OPS = frozenset(
    {
        "Conv2D",
        "Conv3D",
        "DepthwiseConv2dNative",
        "Conv2DBackpropInput",
        "MatMul",
        "BatchMatMul",
        "BatchMatMulV2",
        "BatchMatMulV3",
    }
)


@dataclass
class FlopCount:
    """FLOPs of one forward pass of one image.

    Attributes:
        macs: multiply-accumulates of conv/matmul ops.
        other_flops: element-wise FLOPs TensorFlow counts (not in :attr:`flops`).
        by_op: TensorFlow FLOPs per op type (conv ops count 2 per MAC).
    """

    macs: int
    other_flops: int
    by_op: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def count_params(model) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts."""
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    total = sum(int(w.numpy().size) for w in model.weights)
    return trainable, total - trainable


def count_flops(model, input_shape) -> FlopCount:
    """Count the FLOPs of ``model`` on one input of ``input_shape`` (H, W, C), batch 1."""
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops

    spec = tf.TensorSpec((1, *input_shape), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    by_op: dict[str, int] = defaultdict(int)
    _collect(graph, by_op, tf_ops)
    macs = sum(v for k, v in by_op.items() if k in CONV_OPS) // 2
    other = sum(v for k, v in by_op.items() if k not in CONV_OPS)
    return FlopCount(macs=macs, other_flops=other, by_op=dict(by_op))


def _collect(graph, by_op, tf_ops) -> None:
    for op in graph.get_operations():
        try:
            stats = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops")
        except ValueError:  # shape not fully defined
            stats = None
        if stats is not None and stats.value:
            value = int(stats.value)
            if op.type in CONV_OPS:
                kept, computed = _kept_fraction(op)
                value = value * kept // computed
            by_op[op.type] += value


def _elements(tensor) -> int:
    count = 1
    for dim in tensor.shape.as_list():
        count *= int(dim)
    return count


def _kept_fraction(op) -> tuple[int, int]:
    """``(kept, computed)`` output elements of a convolution: less than 1 for the inner
    convolution of an atrous ``SpaceToBatchND -> conv -> BatchToSpaceND`` (module docstring)."""
    computed = _elements(op.outputs[0])
    if op.inputs[0].op.type != "SpaceToBatchND":
        return 1, 1
    tensor = op.outputs[0]
    for _ in range(2):  # the conv's output, or one BiasAdd/Identity after it
        consumers = tensor.consumers()
        batch_to_space = [c for c in consumers if c.type == "BatchToSpaceND"]
        if batch_to_space:
            return _elements(batch_to_space[0].outputs[0]), computed
        if len(consumers) != 1 or consumers[0].type not in ("BiasAdd", "Identity"):
            break
        tensor = consumers[0].outputs[0]
    return 1, 1
