"""Measurements of one model version: file size, latency, throughput and quality.

Timed sessions run like serving ones (:class:`aimass.serving.models.SessionCache`): the CPU provider,
``intra_op_threads`` threads (1 by default), sequential execution, spinning off. Latency is
the median of ``repeats`` timed runs after ``warmup`` untimed ones.
"""

from __future__ import annotations

import gzip
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aimass.contract.messages import DTYPES
from aimass.serving.models import ModelSpec

BATCHES = (1, 32)
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True)
class EvalData:
    """Inputs to score every candidate on, with labels when a held-out set has them."""

    feeds: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str
    """Where the rows come from, in words (for the report)."""

    @property
    def rows(self) -> int:
        return len(next(iter(self.feeds.values())))


@dataclass(frozen=True)
class Outputs:
    """What a candidate answered on the evaluation rows."""

    top1: np.ndarray
    """Predicted class per row: an integer rank-1 output, else the argmax of the first float one."""
    floats: tuple[np.ndarray, ...]
    """Every float output, for the largest absolute difference from the parent."""


def session(path: Path, threads: int, providers: tuple[str, ...] = (CPU,)) -> Any:
    """An ONNX Runtime session configured as serving configures it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=list(providers))


def file_sizes(path: Path) -> tuple[int, int]:
    """Bytes of the file, and of it gzip-compressed (what pruning's zeros save in transit)."""
    data = Path(path).read_bytes()
    return len(data), len(gzip.compress(data, compresslevel=6, mtime=0))


def eval_data(spec: ModelSpec, holdout: Path | None, rows: int, seed: int = 0) -> EvalData:
    """The held-out set at ``holdout`` when it exists, else ``rows`` seeded random rows.

    A held-out ``.npz`` holds one array per input name (or ``X`` for a one-input model) and
    optionally labels ``y``. Random rows are uniform in [0, 1) for float inputs and small
    integers otherwise; open dimensions other than the batch one are 1.
    """
    if holdout is not None and holdout.exists():
        with np.load(holdout, allow_pickle=False) as data:
            stored = dict(data.items())
        if len(spec.inputs) == 1 and spec.input_names[0] not in stored and "X" in stored:
            stored[spec.input_names[0]] = stored["X"]
        if all(n in stored for n in spec.input_names):
            feeds = {t.name: np.ascontiguousarray(stored[t.name], DTYPES[t.dtype]) for t in spec.inputs}
            labels = stored.get("y")
            return EvalData(feeds, None if labels is None else labels.astype(np.int64), f"{holdout}")
    rng = np.random.default_rng(seed)
    feeds = {}
    for t in spec.inputs:
        shape = (rows, *(1 if d is None else d for d in t.shape[1:]))
        dtype = DTYPES[t.dtype]
        if dtype.kind == "f":
            feeds[t.name] = rng.random(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[t.name] = rng.random(shape) < 0.5
        else:
            feeds[t.name] = rng.integers(0, 10, shape).astype(dtype)
    return EvalData(feeds, None, f"{rows} random rows (seed {seed}; no held-out set)")


def outputs(sess: Any, spec: ModelSpec, data: EvalData, batch: int = 256) -> Outputs:
    """Run every evaluation row through ``sess`` (``batch`` rows per call)."""
    names = list(spec.output_names)
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for start in range(0, data.rows, batch):
        got = sess.run(names, {k: v[start : start + batch] for k, v in data.feeds.items()})
        for part, value in zip(parts, got, strict=True):
            part.append(np.asarray(value))
    arrays = [np.concatenate(p) for p in parts]
    floats = tuple(a for a in arrays if a.dtype.kind == "f")
    integer = [a for a in arrays if a.dtype.kind in "iu" and a.ndim == 1]
    if integer:
        top1 = integer[0].astype(np.int64)
    else:
        ranked = [a for a in floats if a.ndim >= 2]
        top1 = ranked[0].reshape(len(ranked[0]), -1).argmax(axis=1) if ranked else np.zeros(data.rows, np.int64)
    return Outputs(top1, floats)


def agreement(parent: Outputs, other: Outputs) -> tuple[float, float]:
    """Share of rows with the parent's top-1 answer, and the largest absolute float difference."""
    top1 = float(np.mean(parent.top1 == other.top1))
    diffs = [
        float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        for a, b in zip(parent.floats, other.floats, strict=True)
        if a.shape == b.shape and a.size
    ]
    return top1, max(diffs, default=0.0)


def latency_ms(sess: Any, data: EvalData, batch: int, repeats: int, warmup: int) -> float:
    """Median milliseconds of one call with ``batch`` rows (evaluation rows, tiled if too few)."""
    feeds = {}
    for name, array in data.feeds.items():
        reps = -(-batch // len(array))
        feeds[name] = np.ascontiguousarray(np.concatenate([array] * reps)[:batch])
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0


def gpu_unavailable() -> str | None:
    """Why the CUDA provider cannot be measured here, or None when a session really gets it."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return "this ONNX Runtime build has no CUDA provider"
    if not os.path.exists("/dev/nvidiactl"):
        return "no NVIDIA device on this machine"
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        probe = ort.InferenceSession(model.SerializeToString(), options, providers=[CUDA, CPU])
    except Exception as exc:  # noqa: BLE001 - any failure means no usable GPU
        return f"a CUDA session failed: {exc}"
    return None if probe.get_providers()[0] == CUDA else "the CUDA provider is installed but unusable here"
