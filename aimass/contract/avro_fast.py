"""Hand-written Avro binary for the two records on the hot path: reading requests, writing results.

Same bytes as fastavro, several times faster (fastavro's generic ``schemaless_reader`` and
``schemaless_writer`` walk the schema for every record; these know it). They are fast paths,
not second rules: :class:`aimass.contract.codec.Codec` calls them first and falls back to fastavro,
which keeps the last word on everything else.

* :func:`read_request` returns exactly the dict fastavro would return, or None whenever the
  body is anything but a plain, complete request (a negative block count, a union branch out of
  range, bad UTF-8, trailing bytes, a varint past 10 bytes ...): fastavro then reads it and
  names the error. So the accepted set and the result are fastavro's (tests/unit/contract/test_avro_fast.py
  holds both to it on valid, damaged and random bodies).
* :func:`write_result` writes the body of an ``InferenceResult`` as fastavro does (blocks of
  one count, then 0; doubles little-endian; zig-zag varints).

The schemas are ``schemas/request.avsc``, ``result.avsc`` and ``tensor.avsc``; a test fails if
their fields change without these.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from aimass.contract.messages import GraphOutcome, InferenceResult, Status, Tensor

_DOUBLE = struct.Struct("<d")
_STATUS_INDEX = {status: i for i, status in enumerate(Status)}


class _Defer(Exception):
    """Not a plain request body: let fastavro read it."""


def _long(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    value = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if shift > 63:
            raise _Defer
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    if value >> 64:
        raise _Defer
    return (value >> 1) ^ -(value & 1), pos


def _bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _long(data, pos)
    end = pos + n
    if n < 0 or end > len(data):
        raise _Defer
    return data[pos:end], end


def _string(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _bytes(data, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise _Defer from exc


def _count(data: bytes, pos: int) -> tuple[int, int]:
    n, pos = _long(data, pos)
    if n < 0:  # a block with its byte size: fastavro's business
        raise _Defer
    return n, pos


def _optional(data: bytes, pos: int) -> tuple[int, int]:
    branch, pos = _long(data, pos)
    if branch not in (0, 1):
        raise _Defer
    return branch, pos


def read_request(data: bytes, start: int) -> dict[str, Any] | None:
    """The request body at ``data[start:]`` as fastavro reads it, or None (see the module doc)."""
    try:
        request_id, pos = _string(data, start)
        model, pos = _string(data, pos)
        branch, pos = _optional(data, pos)
        version = None
        if branch:
            version, pos = _string(data, pos)
        inputs = []
        n, pos = _count(data, pos)
        while n:
            for _ in range(n):
                name, pos = _string(data, pos)
                dtype, pos = _string(data, pos)
                shape = []
                m, pos = _count(data, pos)
                while m:
                    for _ in range(m):
                        dim, pos = _long(data, pos)
                        shape.append(dim)
                    m, pos = _count(data, pos)
                raw, pos = _bytes(data, pos)
                inputs.append({"name": name, "dtype": dtype, "shape": shape, "data": raw})
            n, pos = _count(data, pos)
        branch, pos = _optional(data, pos)
        deadline = None
        if branch:
            deadline, pos = _long(data, pos)
        priority, pos = _long(data, pos)
        created, pos = _long(data, pos)
    except (_Defer, IndexError):
        return None
    if pos != len(data):
        return None
    return {"request_id": request_id, "model": model, "version": version, "inputs": inputs,
            "deadline_ms": deadline, "priority": priority, "created_at_ms": created}


def _put_long(out: bytearray, value: int) -> None:
    if type(value) is not int:
        raise TypeError(value)
    if -64 <= value < 64:  # one byte: most lengths, dimensions and counts
        out.append((value << 1) ^ (value >> 63))
        return
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{value} does not fit an Avro long")
    n = (value << 1) ^ (value >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _put_bytes(out: bytearray, raw: bytes) -> None:
    _put_long(out, len(raw))
    out += raw


def _put_string(out: bytearray, text: str) -> None:
    if type(text) is not str:
        raise TypeError(text)
    _put_bytes(out, text.encode("utf-8"))


@functools.lru_cache(maxsize=4096)
def _name(text: str) -> bytes:
    """A short string that recurs in every result (model, version, tensor name, dtype), encoded once."""
    out = bytearray()
    _put_string(out, text)
    return bytes(out)


def _put_optional_string(out: bytearray, text: str | None) -> None:
    if text is None:
        out.append(0)
    else:
        out.append(2)
        _put_string(out, text)


def _put_tensor(out: bytearray, t: Tensor) -> None:
    out += _name(t.name)
    out += _name(t.dtype)
    if t.shape:
        _put_long(out, len(t.shape))
        for d in t.shape:
            _put_long(out, d)
    out.append(0)
    _put_bytes(out, bytes(t.data))


def write_result(header: bytes, res: InferenceResult) -> bytes | None:
    """``header`` + the Avro body of ``res``; None when a field is not of its plain type (the
    caller's fastavro writer then encodes it, or says why it cannot)."""
    try:
        return _write_result(header, res)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError, struct.error):
        return None


def _write_result(header: bytes, res: InferenceResult) -> bytes:
    out = bytearray(header)
    _put_optional_string(out, res.request_id)
    out += _name(res.model)
    if res.version is None:
        out.append(0)
    else:
        out.append(2)
        out += _name(res.version)
    _put_long(out, _STATUS_INDEX[Status(res.status)])
    if res.outputs:
        _put_long(out, len(res.outputs))
        for t in res.outputs:
            _put_tensor(out, t)
    out.append(0)
    _put_optional_string(out, res.error)
    timings = res.timings
    for value in (timings.queued_ms, timings.inference_ms, timings.end_to_end_ms):
        if type(value) is not float and type(value) is not int:
            raise TypeError(value)
    out += _DOUBLE.pack(timings.queued_ms)
    _put_long(out, timings.batch_size)
    out += _DOUBLE.pack(timings.inference_ms)
    out += _DOUBLE.pack(timings.end_to_end_ms)
    _put_long(out, res.completed_at_ms)
    route = res.route
    if route is None:
        out.append(0)
    else:
        out.append(2)
        out += _name(route.rule)
        _put_optional_string(out, route.alias)
        _put_long(out, route.bucket)
        _put_optional_string(out, route.primary_version)
        if route.agrees is None:
            out.append(0)
        else:
            out += b"\x02\x01" if route.agrees else b"\x02\x00"
    graph = res.graph
    if graph is None:
        out.append(0)
    else:
        out.append(2)
        _put_graph(out, graph)
    return bytes(out)


def _put_graph(out: bytearray, graph: GraphOutcome) -> None:
    if type(graph.partial) is not bool:
        raise TypeError(graph.partial)
    out.append(1 if graph.partial else 0)
    if graph.missing:
        _put_long(out, len(graph.missing))
        for path in graph.missing:
            out += _name(path)
    out.append(0)
    if graph.steps:
        _put_long(out, len(graph.steps))
        for step in graph.steps:
            out += _name(step.step)
            out += _name(step.model)
            if step.version is None:
                out.append(0)
            else:
                out.append(2)
                out += _name(step.version)
            out += _name(step.status)
            if not -(2**31) <= step.batch_size < 2**31:
                raise ValueError(step.batch_size)
            _put_long(out, step.batch_size)
            for value in (step.inference_ms, step.finished_ms):
                if type(value) is not float and type(value) is not int:
                    raise TypeError(value)
                out += _DOUBLE.pack(value)
    out.append(0)
