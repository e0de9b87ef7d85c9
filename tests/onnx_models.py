"""Small ONNX models written on the fly, shared by the tests (instead of one copy per module)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def linear_onnx(in_dim: int = 4, out_dim: int = 3, seed: int = 0, batch: str | int = "N") -> onnx.ModelProto:
    """``y = x @ w + b`` (float32 [N, out_dim]) and ``top = argmax(y)`` (int64 [N])."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((in_dim, out_dim)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(out_dim).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
            helper.make_node("ArgMax", ["y"], ["top"], axis=1, keepdims=0),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, in_dim])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, out_dim]),
            helper.make_tensor_value_info("top", TensorProto.INT64, [batch]),
        ],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def linear_meta(in_dim: int = 4, out_dim: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, in_dim]}],
        "outputs": [
            {"name": "y", "dtype": "float32", "shape": [None, out_dim]},
            {"name": "top", "dtype": "int64", "shape": [-1]},
        ],
        **extra,
    }


def write_model(
    root: Path, name: str, version: str, onnx_model: onnx.ModelProto | bytes | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    directory = root / name / version
    directory.mkdir(parents=True)
    model = linear_onnx() if onnx_model is None else onnx_model
    data = model if isinstance(model, bytes) else model.SerializeToString()
    (directory / "model.onnx").write_bytes(data)
    meta = linear_meta() if meta is None else meta
    (directory / "model.json").write_text(json.dumps({"name": name, "version": version, **meta}))
    return directory
