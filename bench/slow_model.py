"""A model slow on purpose, whatever its input: the scheduling test's and bench's load.

``300 x tanh(x @ W)`` with one shared 256x256 weight: about 1.2 ms a call for one row on this
machine, with a 1 KB request, and ``max_batch_size`` 1 (one request per call), so a few
thousand small requests make a backlog of seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

WIDTH = 256


def slow_model(root: Path, name: str, steps: int = 300) -> Path:
    """A model of ``steps`` chained ``tanh(x @ W)`` (one shared 256x256 weight), one request per call."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array((np.random.default_rng(0).standard_normal((WIDTH, WIDTH)) * 0.1)
                                     .astype(np.float32), "w")
    nodes, last = [], "x"
    for i in range(steps):
        nodes.append(helper.make_node("MatMul", [last, "w"], [f"m{i}"]))
        last = f"y{i}" if i < steps - 1 else "y"
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [last]))
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", WIDTH])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder = root / name / "1"
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "model.json").write_text(json.dumps({
        "name": name, "version": "1", "description": "slow on purpose (scheduling test)",
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, WIDTH]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, WIDTH]}],
        "max_batch_size": 1, "max_delay_ms": 0, "execution_providers": ["CPUExecutionProvider"]}))
    return folder
