"""The compression methods, each a step from one ONNX file to another.

Every step reads ``source`` and writes ``target`` (both ``.onnx`` paths) and returns the
parameters it used, recorded in the new version's ``model.json``. A step that cannot apply
to a model raises :class:`CompressError` with a one-line message that names the fix.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from aimass.serving.models import ModelSpec

PRUNE, OPTIMIZE, DYNAMIC_INT8, STATIC_INT8, FP16 = "prune", "optimize", "dynamic-int8", "static-int8", "fp16"
METHODS = (PRUNE, DYNAMIC_INT8, STATIC_INT8, FP16, OPTIMIZE)
"""Every method, in the order a combination applies them (see :func:`plan`)."""
OPT_LEVELS = ("basic", "extended", "all")
#: Operators whose weights ONNX Runtime's int8 quantizers rewrite; a model without any gains nothing.
QUANTIZABLE_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "Attention", "LSTM", "GRU", "Gather"})
#: Operators an int8-quantized graph contains when the quantizer did rewrite something.
QUANTIZED_OPS = frozenset({
    "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv", "QuantizeLinear",
    "DequantizeLinear", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "QAttention", "QGemm",
})
CALIBRATION_BATCH = 32
"""Rows per calibration run."""
#: Operators that take a weight matrix, whose float initializers pruning zeroes.
WEIGHT_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose"})


class CompressError(Exception):
    """A compression that cannot be done; the message is one line and says what to change."""


def plan(methods: Sequence[str]) -> list[str]:
    """The methods to apply, deduplicated, in order: prune, then int8 or fp16, then optimize.

    Pruning comes first because it works on the float weights. Quantization comes before
    offline optimization because the optimizer fuses ``Gemm``/``MatMul`` into
    ONNX Runtime's own operators (``FusedGemm``...) that the quantizers do not rewrite;
    optimizing last fuses the quantized graph as a serving session would at every start.

    Raises:
        CompressError: no method, an unknown one, or two numeric formats at once.
    """
    chosen = set(methods)
    unknown = chosen - set(METHODS)
    if unknown or not chosen:
        raise CompressError(f"unknown or no method {sorted(unknown)}: use --method with one of {', '.join(METHODS)}")
    formats = chosen & {DYNAMIC_INT8, STATIC_INT8, FP16}
    if len(formats) > 1:
        raise CompressError(
            f"methods {', '.join(sorted(formats))} each choose the number format: keep one of them "
            "(combine it with prune and/or optimize)"
        )
    return [m for m in METHODS if m in chosen]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the quantizer's advice logged on the root logger ("consider pre-processing")."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def _save(model: Any, path: Path) -> None:
    import onnx

    onnx.save(model, str(path))


def _op_types(model: Any) -> set[str]:
    ops: set[str] = set()
    graphs = [model.graph]
    while graphs:  # subgraphs of If/Loop/Scan count too
        graph = graphs.pop()
        for node in graph.node:
            ops.add(node.op_type)
            graphs += [attr.g for attr in node.attribute if attr.HasField("g")]
    return ops


def prune(source: Path, target: Path, sparsity: float) -> dict[str, Any]:
    """Zero the smallest-magnitude ``sparsity`` share of each float weight matrix.

    Weight matrices are float initializers of rank 2 or more that feed a MatMul, Gemm or
    Conv; biases and other constants are left alone. Each matrix is pruned to the target on
    its own (per-tensor magnitude pruning), so no layer is emptied. The file keeps dense
    storage: pruning alone does not shrink it, but it compresses well and is the input of
    sparse kernels elsewhere.

    Raises:
        CompressError: ``sparsity`` outside [0, 1), or no weight matrix to prune.
    """
    from onnx import numpy_helper

    if not 0.0 <= sparsity < 1.0:
        raise CompressError(f"--sparsity {sparsity} is outside [0, 1): give the share of weights to zero, e.g. 0.5")
    model = _load(source)
    consumers = {name for node in model.graph.node if node.op_type in WEIGHT_OPS for name in node.input}
    zeros = total = 0
    pruned: list[str] = []
    for index, init in enumerate(model.graph.initializer):
        if init.name not in consumers or len(init.dims) < 2:
            continue
        weights = numpy_helper.to_array(init)
        if weights.dtype.kind != "f":
            continue
        flat = weights.reshape(-1).copy()
        count = int(round(sparsity * flat.size))
        if count:
            flat[np.argpartition(np.abs(flat), count - 1)[:count]] = 0
        zeros += int(np.count_nonzero(flat == 0))
        total += flat.size
        model.graph.initializer[index].CopyFrom(numpy_helper.from_array(flat.reshape(weights.shape), init.name))
        pruned.append(init.name)
    if not pruned:
        raise CompressError(f"{source} has no float weight matrix feeding MatMul, Gemm or Conv: pruning does not apply")
    _save(model, target)
    return {
        "sparsity": sparsity,
        "achieved_sparsity": round(zeros / total, 6),
        "pruned_weights": total,
        "tensors": pruned,
        "scope": "per tensor, smallest magnitude first",
    }


def _require_quantizable(source: Path, method: str) -> None:
    if not _op_types(_load(source)) & QUANTIZABLE_OPS:
        raise CompressError(
            f"{method}: the model has none of the operators int8 quantization rewrites "
            f"({', '.join(sorted(QUANTIZABLE_OPS))}): use --method fp16 or optimize instead"
        )


def _require_quantized(target: Path, method: str) -> None:
    if not _op_types(_load(target)) & QUANTIZED_OPS:
        raise CompressError(
            f"{method}: ONNX Runtime's quantizer left every operator of the model in float: "
            "use --method fp16 or optimize instead"
        )


def quantize_dynamic_int8(source: Path, target: Path, per_channel: bool = False) -> dict[str, Any]:
    """Int8 weights; activations quantized on the fly at each run (no calibration data).

    Raises:
        CompressError: the model has no operator the quantizer rewrites, or it fails.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _require_quantizable(source, DYNAMIC_INT8)
    try:
        with _quiet():
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel)
    except Exception as exc:  # noqa: BLE001 - the quantizer raises many unrelated types
        raise CompressError(f"{DYNAMIC_INT8}: ONNX Runtime's quantizer failed: {_one_line(exc)}") from None
    _require_quantized(target, DYNAMIC_INT8)
    return {"weight_type": "int8", "activations": "uint8, quantized at run time", "per_channel": per_channel}


def quantize_static_int8(
    source: Path, target: Path, calibration: dict[str, np.ndarray], per_channel: bool = False
) -> dict[str, Any]:
    """Int8 weights and activations, activation ranges measured on ``calibration`` (QDQ format).

    Raises:
        CompressError: the model has no operator the quantizer rewrites, or it fails.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    _require_quantizable(source, STATIC_INT8)

    class Batches(CalibrationDataReader):
        """The calibration arrays, ``CALIBRATION_BATCH`` rows at a time."""

        def __init__(self) -> None:
            rows = len(next(iter(calibration.values())))
            self._chunks: Iterator[dict[str, np.ndarray]] = iter([
                {k: v[i : i + CALIBRATION_BATCH] for k, v in calibration.items()}
                for i in range(0, rows, CALIBRATION_BATCH)
            ])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._chunks, None)

    try:
        with _quiet():
            quantize_static(
                str(source), str(target), Batches(), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
            )
    except Exception as exc:  # noqa: BLE001
        raise CompressError(f"{STATIC_INT8}: ONNX Runtime's quantizer failed: {_one_line(exc)}") from None
    _require_quantized(target, STATIC_INT8)
    rows = len(next(iter(calibration.values())))
    return {
        "weight_type": "int8", "activation_type": "uint8", "format": "QDQ", "calibration": "MinMax",
        "calibration_rows": rows, "per_channel": per_channel,
    }


def to_fp16(source: Path, target: Path) -> dict[str, Any]:
    """Float16 weights and arithmetic, with float32 inputs and outputs kept (the wire contract).

    Uses ONNX Runtime's own converter (``onnxruntime.transformers.float16``); operators
    without float16 kernels (the ``ai.onnx.ml`` ones, for instance) stay in float32 behind casts.

    Raises:
        CompressError: the model has no float tensor to convert, or the converter fails.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = _load(source)
    try:
        converted = convert_float_to_float16(model, keep_io_types=True)
    except Exception as exc:  # noqa: BLE001
        raise CompressError(f"{FP16}: the float16 converter failed: {_one_line(exc)}") from None
    _save(converted, target)
    return {"weights": "float16", "io_types": "kept (float32 in and out)"}


def optimize(source: Path, target: Path, level: str = "extended") -> dict[str, Any]:
    """ONNX Runtime's graph optimizations, done once offline for the CPU provider.

    Subnormal weights are flushed to zero first (:func:`flush_subnormals`).

    ``basic`` folds constants and removes redundant nodes (portable to every provider);
    ``extended`` and ``all`` also fuse into ONNX Runtime's own CPU operators, so the file is
    meant for the CPU provider only (``all`` adds a CPU memory layout).

    Raises:
        CompressError: an unknown level, or ONNX Runtime cannot optimize the model.
    """
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if level not in levels:
        raise CompressError(f"--opt-level {level!r} is not one of {', '.join(OPT_LEVELS)}")
    flushed_source = target.with_suffix(".flushed.onnx")
    flushed = flush_subnormals(source, flushed_source)
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.optimized_model_filepath = str(target)
    try:
        ort.InferenceSession(str(flushed_source), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise CompressError(f"{OPTIMIZE}: ONNX Runtime cannot optimize the model: {_one_line(exc)}") from None
    finally:
        flushed_source.unlink(missing_ok=True)
    return {"level": level, "provider": "CPUExecutionProvider", "subnormal_weights_flushed": flushed}


def flush_subnormals(source: Path, target: Path) -> int:
    """Set float weights too small for normal float32/16 (subnormals) to zero; returns how many.

    Trained weights that decayed towards zero can be subnormal, and arithmetic on subnormals
    is many times slower on x86 CPUs; their contribution to any output is below float precision.
    """
    from onnx import numpy_helper

    model = _load(source)
    flushed = 0
    for index, init in enumerate(model.graph.initializer):
        if init.data_type not in (1, 10):  # FLOAT, FLOAT16
            continue
        weights = numpy_helper.to_array(init)
        tiny = (weights != 0) & (np.abs(weights) < np.finfo(weights.dtype).smallest_normal)
        count = int(np.count_nonzero(tiny))
        if count:
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(np.where(tiny, 0, weights), init.name))
            flushed += count
    _save(model, target)
    return flushed


def load_calibration(path: Path, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Calibration inputs from a ``.npy`` (one-input models) or ``.npz`` (arrays named by input).

    An ``.npz`` may also hold the single input as ``X``, as the demo's held-out files do.
    Each array must have the declared dtype, rank and fixed dimensions, and all the same rows.

    Raises:
        CompressError: the file is missing or unreadable, or an array does not fit the model.
    """
    path = Path(path)
    names = spec.input_names
    try:
        if path.suffix == ".npy":
            if len(names) != 1:
                raise CompressError(
                    f"{path}: a .npy holds one array but the model has inputs {', '.join(names)}: "
                    "save an .npz with one array per input name (numpy.savez)"
                )
            arrays = {names[0]: np.load(path, allow_pickle=False)}
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                stored = dict(data.items())
            if len(names) == 1 and names[0] not in stored and "X" in stored:
                stored[names[0]] = stored["X"]
            missing = [n for n in names if n not in stored]
            if missing:
                raise CompressError(
                    f"{path}: has no array named {', '.join(missing)} (it has {', '.join(stored) or 'none'}): "
                    "name the arrays after the model's inputs"
                )
            arrays = {n: stored[n] for n in names}
        else:
            raise CompressError(f"--calibration {path}: give a .npy or .npz file of model inputs")
    except (OSError, ValueError) as exc:
        raise CompressError(f"--calibration {path}: cannot read it ({_one_line(exc)}): give a .npy/.npz") from None
    rows = {len(a) if a.ndim else 0 for a in arrays.values()}
    for tensor in spec.inputs:
        array = arrays[tensor.name]
        if str(array.dtype) != tensor.dtype:
            raise CompressError(
                f"--calibration {path}: {tensor.name!r} is {array.dtype} but the model takes {tensor.dtype}: "
                f"convert it with .astype('{tensor.dtype}')"
            )
        fixed = tuple("N" if d is None else d for d in tensor.shape)
        fits = array.ndim == tensor.rank and all(
            d is None or d == a for d, a in zip(tensor.shape, array.shape, strict=True)
        )
        if not fits:
            raise CompressError(
                f"--calibration {path}: {tensor.name!r} has shape {tuple(array.shape)} but the model takes "
                f"{fixed} (N rows): reshape it to match"
            )
    if len(rows) != 1 or 0 in rows:
        raise CompressError(f"--calibration {path}: arrays need the same number of rows, at least one")
    return arrays


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
