"""The structural rules of a request, once: what every request must be whatever model it names.

The codec applies them to every decoded request (a broken rule is the request's
``INVALID_INPUT`` error result and dead letter), the client before producing (a typed
``InvalidRequest``), and the gateway through the client; the model-fit rules (inputs against
a model's declared inputs) are :mod:`aimass.serving.fit`'s. Each check returns a
:class:`Refusal` naming the first rule broken, or None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from aimass.contract.limits import MAX_DIMS, MAX_INPUTS, MAX_REQUEST_ID_BYTES, NAME_PATTERN
from aimass.contract.messages import DTYPES, Reason, Tensor


class Refusal(NamedTuple):
    """Why a request (or a control command) is refused: the reason (its error result's status)
    and a message naming it. Built where the problem is found and passed whole; a named tuple,
    so ``reason, message = refusal`` reads too."""

    reason: Reason
    message: str


def show(text: str, limit: int = 80) -> str:
    """A name from the wire, quoted and bounded (it may be huge or hold anything)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control and format characters (escape sequences,
    carriage returns, bidirectional overrides) written as ``\\xNN``/``\\uNNNN``, the rest as is.
    For everything from the wire that a command prints (ids, model names, error texts)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)


def request_id_refusal(request_id: str) -> Refusal | None:
    """A request id: present, at most :data:`MAX_REQUEST_ID_BYTES` bytes of UTF-8."""
    if not request_id:
        return Refusal(Reason.INVALID_INPUT, "empty request_id")
    size = len(request_id.encode("utf-8"))
    if size > MAX_REQUEST_ID_BYTES:
        return Refusal(Reason.INVALID_INPUT, f"request_id of {size} bytes exceeds {MAX_REQUEST_ID_BYTES} bytes")
    return None


def names_refusal(model: object, version: object) -> Refusal | None:
    """A model name (and a version, when given): one safe path component each."""
    for what, value in (("model name", model), ("version", version)):
        if value is None and what == "version":
            continue
        if not (isinstance(value, str) and NAME_PATTERN.fullmatch(value)):
            shown = show(value) if isinstance(value, str) else repr(value)
            return Refusal(Reason.INVALID_INPUT, f"{what} {shown} must match {NAME_PATTERN.pattern}")
    return None


def too_many_inputs(count: int) -> Refusal | None:
    """At most :data:`MAX_INPUTS` inputs (the pre-decode scan counts them before any is read)."""
    return Refusal(Reason.INVALID_INPUT, f"more than {MAX_INPUTS} inputs") if count > MAX_INPUTS else None


def too_many_dims(count: int, name: str | None = None) -> Refusal | None:
    """At most :data:`MAX_DIMS` dimensions (``name`` unknown to the pre-decode scan: "an input")."""
    if count <= MAX_DIMS:
        return None
    return Refusal(Reason.INVALID_INPUT, f"{'an input' if name is None else f'input {show(name)}'} has more than "
                                         f"{MAX_DIMS} dimensions")


def tensor_refusal(t: Tensor) -> Refusal | None:
    """One input tensor: a name, a dtype the wire carries, at most :data:`MAX_DIMS`
    non-negative dimensions, exactly the bytes its shape needs, bools as bytes 0 or 1."""
    if not t.name:
        return Refusal(Reason.INVALID_INPUT, "an input has an empty name")
    dtype = DTYPES.get(t.dtype)
    if dtype is None:
        return Refusal(Reason.INVALID_INPUT,
                       f"input {show(t.name)}: dtype {show(t.dtype)} is not one of {', '.join(DTYPES)}")
    dims = too_many_dims(len(t.shape), t.name)
    if dims is not None:
        return dims
    if min(t.shape, default=0) < 0:
        return Refusal(Reason.INVALID_INPUT, f"input {show(t.name)}: negative dimension in shape {list(t.shape)}")
    needed = math.prod(t.shape) * dtype.itemsize
    if needed != len(t.data):
        return Refusal(Reason.INVALID_INPUT, f"input {show(t.name)}: shape {list(t.shape)} of {t.dtype} needs "
                                             f"{needed} bytes, got {len(t.data)}")
    if t.dtype == "bool" and bytes(t.data).strip(b"\x00\x01"):
        return Refusal(Reason.INVALID_INPUT, f"input {show(t.name)}: bool elements must be bytes 0 or 1")
    return None


def inputs_refusal(tensors: Sequence[Tensor]) -> Refusal | None:
    """A request's inputs: one to :data:`MAX_INPUTS`, names unique, each tensor well formed,
    the same row count (first dimension) in every one."""
    if not tensors:
        return Refusal(Reason.INVALID_INPUT, "request has no inputs")
    count = too_many_inputs(len(tensors))
    if count is not None:
        return count
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            return Refusal(Reason.INVALID_INPUT, f"duplicate input name {show(t.name)}")
        seen.add(t.name)
        found = tensor_refusal(t)
        if found is not None:
            return found
    if len({t.rows for t in tensors}) > 1:
        shown = ", ".join(f"{show(t.name)}={t.rows}" for t in tensors)
        return Refusal(Reason.INVALID_INPUT, f"inputs differ in first dimension (rows): {shown}")
    return None
