"""The model-fit rules, once: do a request's inputs fit the model version that serves it?

Exactly the declared inputs (names), each with its dtype, rank and fixed dimensions, at least
one row, the same row count in every input, the bytes its shape needs, and a bound on the rows
a tensor of no data may declare. The engine applies them to every request it serves (graph
steps included) and the client before producing, when it has the model's metadata; the
structural rules every request must pass whatever its model are :mod:`aimass.contract.rules`'.
No ONNX Runtime import.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from aimass.contract.limits import MAX_EMPTY_ROWS
from aimass.contract.messages import DTYPES, Tensor, clip
from aimass.contract.rules import show, tensor_refusal
from aimass.serving.models import ModelSpec, TensorSpec


def input_problem(spec: ModelSpec, inputs: Sequence[Tensor]) -> str | None:
    """What is wrong with ``inputs`` for ``spec``, in words; None when they fit."""
    names = spec.input_names
    if len(inputs) != len(names) or any(t.name != n for t, n in zip(inputs, names, strict=True)):
        given = Counter(t.name for t in inputs)
        if given != Counter(names):
            missing = sorted(set(names) - set(given))
            extra = sorted(set(given) - set(names))
            repeated = sorted(n for n, count in given.items() if count > 1)
            parts = [f"{label} {_names(found)}" for label, found in
                     (("missing", missing), ("unexpected", extra), ("repeated", repeated)) if found]
            return f"model {spec.name!r} version {spec.version!r} takes inputs {list(names)}: {'; '.join(parts)}"
    rows = -1
    for tensor, want in zip(ordered(inputs, names), spec.inputs, strict=True):
        shape = tensor.shape
        # Fast path: right dtype, fixed row shape matching, rows present.
        if not (tensor.dtype == want.dtype and shape[1:] == want.shape[1:] and shape and shape[0] >= 1):
            problem = _shape_problem(tensor, want)
            if problem is not None:
                return problem
        if rows != shape[0]:
            if rows != -1:
                return f"inputs disagree on the row count: {want.name!r} has {shape[0]} rows, another has {rows}"
            rows = shape[0]
        expected = math.prod(shape) * DTYPES[want.dtype].itemsize
        if len(tensor.data) != expected:
            return _structural(tensor)
    return None


def _shape_problem(tensor: Tensor, want: TensorSpec) -> str | None:
    where, shape = f"input {want.name!r}", tensor.shape
    if tensor.dtype != want.dtype:
        return f"{where} must be {want.dtype}, got {tensor.dtype}"
    if len(shape) != want.rank:
        return f"{where} must have rank {want.rank} (shape {_show(want.shape)}), got shape {list(shape)}"
    for axis, (dim, fixed) in enumerate(zip(shape, want.shape, strict=True)):
        if fixed is not None and dim != fixed:
            return f"{where} dimension {axis} must be {fixed} (shape {_show(want.shape)}), got shape {list(shape)}"
        if dim < 0:
            return _structural(tensor)
    if shape[0] < 1:
        return f"{where} has no rows (shape {list(shape)})"
    if 0 in shape[1:]:
        # A tensor of no data costs nothing on the wire, but its other dimensions still size
        # the batch and what ONNX Runtime allocates (a ReduceSum over the empty axis of
        # (1, 2**31, 0) is an 8 GiB output): bound their product, not only the rows.
        cells = math.prod(d for d in shape if d)
        if cells > MAX_EMPTY_ROWS:
            return (f"{where} declares {cells} rows of no data (shape {list(shape)}: the product of its non-zero "
                    f"dimensions; at most {MAX_EMPTY_ROWS})")
    return None


def _structural(tensor: Tensor) -> str:
    """The structural rule ``tensor`` breaks (:mod:`aimass.contract.rules`): its words, not a copy."""
    refusal = tensor_refusal(tensor)
    return refusal.message if refusal is not None else f"input {show(tensor.name)} is malformed"


def ordered(inputs: Sequence[Tensor], names: tuple[str, ...]) -> Sequence[Tensor]:
    """``inputs`` in the order of ``names`` (they are the same set, already checked)."""
    if len(inputs) == 1 or all(t.name == n for t, n in zip(inputs, names, strict=True)):
        return inputs
    by_name = {t.name: t for t in inputs}
    return [by_name[n] for n in names]


def _names(names: list[str], most: int = 8) -> str:
    """Names a request sent, as a list, each and their number bounded (they may be huge)."""
    shown = [clip(n, 40) for n in names[:most]]
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return repr(shown) + more


def _show(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"
