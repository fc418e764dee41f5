"""The optimised SavedModel: today's signatures around a frozen network with batch norm folded.

docs/station.md ("The optimised SavedModel") gives the measurements behind the choice.
Today's SavedModel (:mod:`xray_seg.serving.savedmodel`) keeps the weights as resource
variables and runs every batch norm as its own ``FusedBatchNormV3`` op after the
convolution. ``OUT/savedmodel_optimized`` is written in four steps:

1. **Freeze the network.** The Keras model's inference function on one batch of tiles,
   float32 ``[None, h0, w0, 3]`` -> logits, is traced and its variables become constants
   (``convert_variables_to_constants_v2``): no ``ReadVariableOp``, no variable handles,
   no training branch (``training=False``), nothing a gradient needs.
2. **Fold batch norm into the convolutions** (:func:`fold_batch_norms`): every inference
   ``FusedBatchNormV3`` whose input is a ``Conv2D`` or ``DepthwiseConv2dNative`` with a
   constant filter (directly, or through the ``BatchToSpaceND`` of a dilated convolution)
   and used by nothing else becomes a ``BiasAdd``: the filter is multiplied per output
   channel by ``s = gamma / sqrt(var + eps)`` and the bias is ``beta - mean * s``
   (Ioffe & Szegedy 2015, eq. of the inference transform). Batch norms after other ops
   (a residual sum, a deformable convolution) stay as they are.
3. **Fold constants offline** with Grappler's device-independent passes
   (:data:`OFFLINE_PASSES`); CPU-specific fusions (``_FusedConv2D`` with its ``BiasAdd`` and
   ReLU) are left to the run-time Grappler of the machine that loads the model.
4. **The same signatures.** The frozen network replaces the Keras model inside
   :func:`xray_seg.serving.signatures.add_serving_endpoints` - the code that writes
   today's SavedModel - so ``serving_default``, ``serve_encoded``, ``model_info`` and ``serve_tiles`` have
   exactly the names, inputs, outputs and dtypes of ``OUT/savedmodel``
   (:func:`signature_specs`; the export compares them) and the same tiling and alarm graph.

``export.json`` is written beside ``saved_model.pb``; the folder is written hidden and
renamed into place when complete.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
from tensorflow.python.eager import wrap_function
from tensorflow.python.framework import tensor_util
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tensorflow.python.grappler import tf_optimizer

from xray_seg.core.fileio import write_json_atomic
from xray_seg.core.layouts import ExportLayout
from xray_seg.models.outputs import logits_of
from xray_seg.serving.export_metadata import endpoint_arguments
from xray_seg.serving.signatures import add_serving_endpoints

#: Grappler passes run offline on the frozen network: device-independent rewrites only.
OFFLINE_PASSES = ("pruning", "constfold", "shape", "arithmetic", "dependency")

CONV_OPS = ("Conv2D", "DepthwiseConv2dNative")
BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")


def _name(tensor: str) -> str:
    return tensor.lstrip("^").split(":")[0]


class _Graph:
    """A GraphDef's nodes by name and, for each node, the inputs of other nodes naming it."""

    def __init__(self, graph_def):
        self.graph_def = graph_def
        self.nodes = {n.name: n for n in graph_def.node}
        self.uses: dict[str, list[str]] = {}
        for node in graph_def.node:
            for inp in node.input:
                self.uses.setdefault(_name(inp), []).append(inp)

    def const(self, tensor: str):
        """The numpy value of ``tensor`` when it is a Const (through Identity nodes), else None."""
        node = self.nodes.get(_name(tensor))
        while node is not None and node.op == "Identity":
            node = self.nodes.get(_name(node.input[0]))
        if node is None or node.op != "Const":
            return None
        return tensor_util.MakeNdarray(node.attr["value"].tensor)

    def single_use(self, name: str) -> bool:
        uses = self.uses.get(name, [])
        return len(uses) == 1 and not uses[0].startswith("^")

    def add_const(self, name: str, value: np.ndarray) -> str:

        node = self.graph_def.node.add(name=name, op="Const")
        node.attr["dtype"].type = 1  # DT_FLOAT
        node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(np.asarray(value, np.float32)))
        return name


def _conv_before(graph: _Graph, bn):
    """The conv node feeding ``bn`` (directly or through a single-use BatchToSpaceND), or None."""
    node = graph.nodes.get(_name(bn.input[0]))
    if node is not None and node.op == "BatchToSpaceND" and graph.single_use(node.name):
        node = graph.nodes.get(_name(node.input[0]))
    if node is None or node.op not in CONV_OPS or not graph.single_use(node.name):
        return None
    if node.attr["data_format"].s not in (b"", b"NHWC"):
        return None
    return node


def _fold_one(graph: _Graph, bn) -> bool:
    if bn.attr["is_training"].b or bn.attr["data_format"].s not in (b"", b"NHWC"):
        return False
    if any(_name(u) == bn.name and u.split(":")[-1] not in (bn.name, "0") for u in graph.uses.get(bn.name, [])):
        return False  # a statistics output (mean, variance, ...) is used
    conv = _conv_before(graph, bn)
    if conv is None:
        return False
    kernel = graph.const(conv.input[1])
    params = [graph.const(t) for t in bn.input[1:5]]
    if kernel is None or any(p is None for p in params):
        return False
    gamma, beta, mean, var = (np.asarray(p, np.float64) for p in params)
    scale = gamma / np.sqrt(var + bn.attr["epsilon"].f)
    bias = beta - mean * scale
    if conv.op == "Conv2D":
        folded = kernel * scale.reshape(1, 1, 1, -1)
    else:  # depthwise [kh, kw, in, multiplier]: output channel i * multiplier + m
        folded = kernel * scale.reshape(1, 1, kernel.shape[2], kernel.shape[3])
    conv.input[1] = graph.add_const(f"{conv.name}/bn_folded_filter", folded)
    bias_name = graph.add_const(f"{bn.name}/bn_folded_bias", bias)
    data = bn.input[0]
    dtype = bn.attr["T"].type
    bn.op = "BiasAdd"
    del bn.input[:]
    bn.input.extend([data, bias_name])
    for key in list(bn.attr):
        del bn.attr[key]
    bn.attr["T"].type = dtype
    bn.attr["data_format"].s = b"NHWC"
    return True


def fold_batch_norms(graph_def) -> tuple[object, int, int]:
    """Fold inference batch norms into the convolutions before them (module docstring, step 2).

    Returns ``(graph_def, folded, kept)``: a rewritten copy, and how many batch norms were
    folded and left as they are.
    """
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    graph = _Graph(out)
    batch_norms = [n for n in list(out.node) if n.op in BN_OPS]
    folded = sum(_fold_one(graph, bn) for bn in batch_norms)
    return out, folded, len(batch_norms) - folded


def grappler_offline(graph_def, inputs: list[str], outputs: list[str]):
    """``graph_def`` rewritten by Grappler's :data:`OFFLINE_PASSES` (constant folding, pruning, ...)."""
    meta = meta_graph_pb2.MetaGraphDef(graph_def=graph_def)
    fetch = meta.collection_def["train_op"].node_list.value
    fetch.extend(_name(t) for t in [*outputs, *inputs])
    rewriter = rewriter_config_pb2.RewriterConfig(optimizers=list(OFFLINE_PASSES), meta_optimizer_iterations=2)
    rewriter.min_graph_nodes = -1  # optimise small graphs too
    config = config_pb2.ConfigProto()
    config.graph_options.rewrite_options.CopyFrom(rewriter)
    return tf_optimizer.OptimizeGraph(config, meta)


class FrozenNetwork:
    """The network as a frozen, BN-folded function: ``network(pixels, training=False)`` -> logits.

    It stands in for the Keras model inside the serving graph (module docstring, step 4).

    Attributes:
        function: the concrete function float32 ``[None, h0, w0, 3]`` -> logits.
        folded: batch norms folded into convolutions; ``kept``: those left as they are.
    """

    def __init__(self, model, input_size):

        h0, w0 = int(input_size[0]), int(input_size[1])
        spec = tf.TensorSpec([None, h0, w0, 3], tf.float32, name="pixels")
        traced = tf.function(lambda x: tf.cast(logits_of(model(x, training=False)), tf.float32))
        frozen = convert_variables_to_constants_v2(traced.get_concrete_function(spec))
        inputs, outputs = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
        graph_def, self.folded, self.kept = fold_batch_norms(frozen.graph.as_graph_def())
        graph_def = grappler_offline(graph_def, inputs, outputs)
        self.function = wrap_function.function_from_graph_def(graph_def, inputs, outputs[0])
        self.function.inputs[0].set_shape([None, h0, w0, 3])
        self.op_counts = op_counts(graph_def)

    def __call__(self, pixels, training=False):
        return self.function(pixels)


def op_counts(graph_def) -> dict:
    """``{op type: count}`` over a GraphDef and its function library."""
    counts = Counter(n.op for n in graph_def.node)
    for fn in graph_def.library.function:
        counts.update(n.op for n in fn.node_def)
    return dict(counts)


class _Endpoints:
    """What :func:`~xray_seg.serving.signatures.add_serving_endpoints` needs of an ``ExportArchive``."""

    def __init__(self):
        self.signatures = {}

    def add_endpoint(self, name, fn, input_signature):

        self.signatures[name] = tf.function(fn, input_signature=input_signature).get_concrete_function()


def signature_specs(loaded) -> dict:
    """``{name: (inputs, outputs)}`` with each tensor's dtype and shape, of a loaded SavedModel."""
    out = {}
    for name, fn in loaded.signatures.items():
        outputs = {k: (v.dtype.name, str(v.shape)) for k, v in fn.structured_outputs.items()}
        inputs = {k: (v.dtype.name, str(v.shape)) for k, v in fn.structured_input_signature[1].items()}
        out[name] = (inputs, outputs)
    return out


def write_optimized_savedmodel(source, out_dir: Path, metadata: dict) -> tuple[Path, dict]:
    """Write ``OUT/savedmodel_optimized`` (with ``export.json``) for an ``ExportSource``; returns its
    path and what was done (batch norms folded and kept, op counts of the network)."""
    final = ExportLayout(out_dir).optimized_dir
    partial = ExportLayout(out_dir).optimized_partial
    shutil.rmtree(partial, ignore_errors=True)
    try:
        network = FrozenNetwork(source.model, source.input_size)
        endpoints = _Endpoints()
        add_serving_endpoints(endpoints, network, **endpoint_arguments(source))
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)  # inference only
        tf.saved_model.save(tf.Module(), str(partial), signatures=endpoints.signatures, options=options)
        write_json_atomic(ExportLayout.metadata_file(partial), metadata)
        os.replace(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    ops = network.op_counts
    info = {
        "batch_norms_folded": network.folded,
        "batch_norms_kept": network.kept,
        "network_ops": {k: ops.get(k, 0) for k in ("Conv2D", "DepthwiseConv2dNative", "BiasAdd", *BN_OPS)},
        "variables": ops.get("VarHandleOp", 0) + ops.get("ReadVariableOp", 0),
    }
    return final, info
