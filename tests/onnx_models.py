"""Small ONNX models written on the fly, shared by the tests (instead of one copy per module)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def copy_versions(models_dir: Path, root: Path, name: str, model: str = "digits",
                  versions: tuple[str, ...] = ("1", "2")) -> Path:
    """Versions of ``model`` copied under the model name ``name`` into ``root/name`` (outside the
    model folder, so only a deploy brings them to the TaskManagers); returns that folder."""
    for version in versions:
        shutil.copytree(models_dir / model / version, root / name / version)
        meta = json.loads((root / name / version / "model.json").read_text())
        meta["name"] = name
        (root / name / version / "model.json").write_text(json.dumps(meta))
    return root / name


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
    return as_model(graph)


def as_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    """``graph`` as a model of opset 17, IR version 8 (what the pinned ONNX Runtime loads)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def lookup_onnx() -> onnx.ModelProto:
    """``y = table[idx]`` for ``idx`` int64 [N, 1] and a table of 4 floats: an index outside
    0..3 passes every check the metadata allows and fails the ONNX Runtime call."""
    table = numpy_helper.from_array(np.array([10.0, 11.0, 12.0, 13.0], np.float32), "table")
    return as_model(helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["y"], axis=0)],
        "lookup",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[table],
    ))


LOOKUP_META: dict[str, Any] = {
    "inputs": [{"name": "idx", "dtype": "int64", "shape": [-1, 1]}],
    "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, 1]}],
}


def tile_onnx(width: int) -> onnx.ModelProto:
    """``y = tile(x, [1, width])``: one float32 in, ``width`` out per row."""
    repeats = numpy_helper.from_array(np.array([1, width], np.int64), "repeats")
    return as_model(helper.make_graph(
        [helper.make_node("Tile", ["x", "repeats"], ["y"])],
        "tile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
        initializer=[repeats],
    ))


def tile_meta(width: int) -> dict[str, Any]:
    return {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 1]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, width]}],
    }


def digits_like_onnx(seed: int) -> onnx.ModelProto:
    """The demo ``digits`` model's interface: ``pixels`` float32 [N, 64] -> ``label``, ``probabilities``."""
    w = numpy_helper.from_array(np.random.default_rng(seed).standard_normal((64, 10)).astype(np.float32), "w")
    return as_model(helper.make_graph(
        [
            helper.make_node("MatMul", ["pixels", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
        ],
        "digits",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 64])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10]),
        ],
        initializer=[w],
    ))


DIGITS_META: dict[str, Any] = {
    "inputs": [{"name": "pixels", "dtype": "float32", "shape": [-1, 64]}],
    "outputs": [{"name": "label", "dtype": "int64", "shape": [-1]},
                {"name": "probabilities", "dtype": "float32", "shape": [-1, 10]}],
}


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
