"""Small real ONNX models built by the tests (onnx.helper), to exercise the ONNX encoder slot.

They are not face models: a fixed random 8x8/stride-8 convolution, averaged and flattened, gives a
`dim`-long vector that depends on the aligned face's pixels, which is all the mechanics need
(loading, shape checks, layout, scaling, unit vectors, storage by model, dimension refusals). Face
quality claims are tested on the evaluation model of `make eval-model`, skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8  # old enough for every onnxruntime that takes opset 13


def build_model(
    path: Path,
    *,
    dim: int = 64,
    layout: str = "nchw",
    side: int = 112,
    channels: int = 3,
    normalise_in_graph: bool = False,
    output_rank: int = 2,
    inputs: int = 1,
    seed: int = 7,
) -> Path:
    """Write a tiny encoder-shaped ONNX model to `path` and return `path`."""
    rng = np.random.default_rng(seed)
    shape = [1, channels, side, side] if layout == "nchw" else [1, side, side, channels]
    graph_inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)]
    graph_inputs += [
        helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, [1]) for i in range(1, inputs)
    ]
    nodes = []
    initialisers = [
        numpy_helper.from_array(rng.normal(size=(dim, channels, 8, 8)).astype(np.float32), "weight"),
        numpy_helper.from_array(np.array([127.5], np.float32), "mean"),
        numpy_helper.from_array(np.array([1 / 127.5], np.float32), "scale"),
    ]
    current = "image"
    if normalise_in_graph:
        nodes.append(helper.make_node("Sub", [current, "mean"], ["centred"], name="Sub_0"))
        nodes.append(helper.make_node("Mul", ["centred", "scale"], ["scaled"], name="Mul_1"))
        current = "scaled"
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", [current], ["nchw"], perm=[0, 3, 1, 2]))
        current = "nchw"
    nodes.append(
        helper.make_node("Conv", [current, "weight"], ["features"], kernel_shape=[8, 8], strides=[8, 8])
    )
    nodes.append(helper.make_node("GlobalAveragePool", ["features"], ["pooled"]))
    if output_rank == 2:
        nodes.append(helper.make_node("Flatten", ["pooled"], ["embedding"], axis=1))
        out_shape: list[int] = [1, dim]
    else:
        out_shape = [1, dim, 1, 1]
        nodes.append(helper.make_node("Identity", ["pooled"], ["embedding"]))
    graph = helper.make_graph(
        nodes,
        "tiny_encoder",
        graph_inputs,
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, out_shape)],
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
