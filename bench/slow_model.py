"""Models slow on purpose, whatever their input: the scheduling and graph tests' and benches' load.

``300 x tanh(x @ W)`` with one shared 256x256 weight: about 1.2 ms a call for one row on this
machine, with a 1 KB request, and ``max_batch_size`` 1 (one request per call), so a few
thousand small requests make a backlog of seconds. :func:`slow_digits` puts the same chain
between the digits model's input and output (``pixels`` [-1, 64] to ``probabilities`` [-1, 10]),
so it can stand in an ensemble with the digits versions as its slow member.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

WIDTH = 256


def _chain(first: str, steps: int) -> tuple[list[Any], str]:
    """``steps`` chained ``tanh(x @ w)`` nodes from ``first``; the nodes and the last name."""
    from onnx import helper

    nodes, last = [], first
    for i in range(steps):
        nodes.append(helper.make_node("MatMul", [last, "w"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"y{i}"]))
        last = f"y{i}"
    return nodes, last


def _weight(name: str, rows: int, cols: int, seed: int) -> Any:
    from onnx import numpy_helper

    values = np.random.default_rng(seed).standard_normal((rows, cols)) * 0.1
    return numpy_helper.from_array(values.astype(np.float32), name)


def _save(root: Path, name: str, graph: Any, meta: dict[str, Any]) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder = root / name / "1"
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "model.json").write_text(json.dumps({"name": name, "version": "1", **meta,
                                                   "execution_providers": ["CPUExecutionProvider"]}))
    return folder


def slow_model(root: Path, name: str, steps: int = 300) -> Path:
    """A model of ``steps`` chained ``tanh(x @ W)`` (one shared 256x256 weight), one request per call."""
    from onnx import TensorProto, helper

    nodes, last = _chain("x", steps)
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", WIDTH])],
                              [_weight("w", WIDTH, WIDTH, 0)])
    return _save(root, name, graph, {
        "description": "slow on purpose (scheduling test)",
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, WIDTH]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, WIDTH]}],
        "max_batch_size": 1, "max_delay_ms": 0})


def slow_digits(root: Path, name: str, steps: int = 2000) -> Path:
    """``pixels`` [-1, 64] to ``probabilities`` [-1, 10] through ``steps`` chained ``tanh(x @ W)``:
    the digits model's signature, far slower (a graph test's slow ensemble member)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("MatMul", ["pixels", "w_in"], ["h"]), helper.make_node("Tanh", ["h"], ["t"])]
    chain, last = _chain("t", steps)
    nodes += chain + [helper.make_node("MatMul", [last, "w_out"], ["logits"]),
                      helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    graph = helper.make_graph(
        nodes, "slow-digits", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 10])],
        [_weight("w_in", 64, WIDTH, 1), _weight("w", WIDTH, WIDTH, 0), _weight("w_out", WIDTH, 10, 2)])
    return _save(root, name, graph, {
        "description": "the digits signature, slow on purpose (graph test)",
        "inputs": [{"name": "pixels", "dtype": "float32", "shape": [-1, 64]}],
        "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [-1, 10]}],
        "max_batch_size": 64, "max_delay_ms": 0})
