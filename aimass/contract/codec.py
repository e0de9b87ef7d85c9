"""Avro codec of the data contract: messages to single-object-encoded bytes and back.

The schemas are the files in ``schemas/`` (loaded by path, never pasted here). Every record on
every topic is framed with Avro single-object encoding: the two marker bytes ``C3 01``, the
8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then
the Avro binary body. The fingerprint tells a request from a result or a dead letter, and from
a record written with another version of the schema.

Decoding a request never raises anything but :class:`DecodeError`, whatever the bytes: a bad
record is data (it becomes an error result and a dead letter), not a crash of the job.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from aimass.contract.avro_fast import read_request, write_result
from aimass.contract.limits import (
    MAX_DIMS,
    MAX_GRAPH_STEPS,
    MAX_INPUTS,
    MAX_REQUEST_ID_BYTES,
    NAME_PATTERN,
    SCAN_ABOVE_BYTES,
)
from aimass.contract.messages import (
    DeadLetter,
    GraphOutcome,
    InferenceRequest,
    InferenceResult,
    Reason,
    Route,
    Status,
    StepTiming,
    Tensor,
    Timings,
)
from aimass.contract.rules import (
    Refusal,
    inputs_refusal,
    names_refusal,
    request_id_refusal,
    too_many_dims,
    too_many_inputs,
)
from aimass.settings import PathSettings

#: The two bytes every single-object-encoded record starts with.
MARKER = b"\xc3\x01"
#: Marker plus 8-byte fingerprint.
HEADER_SIZE = 10

_INT32 = range(-(2**31), 2**31)
_NAMED_TYPES = ("record", "error", "enum", "fixed")


class DecodeError(Exception):
    """Bytes that are not a usable record, with the dead-letter reason code.

    Attributes:
        reason: Why the record was refused.
        message: Human-readable explanation.
        request_id: The request id when it could be read, else None.
    """

    def __init__(self, reason: Reason, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class _Schema:
    """One top-level schema, parsed once, with its single-object header."""

    name: str
    parsed: dict[str, Any]
    header: bytes


class Codec:
    """Encoder and decoder of requests, results and dead letters.

    Args:
        schemas_dir: Folder holding ``tensor.avsc``, ``request.avsc``, ``result.avsc`` and
            ``dead_letter.avsc``; defaults to :attr:`aimass.settings.PathSettings.schemas_dir`.
        scan_above_bytes: Requests longer than this are first scanned, without building any
            object, for more than :data:`MAX_INPUTS` inputs or :data:`MAX_DIMS` dimensions: 4 MiB
            of 4-byte empty tensors would otherwise decode into a million dicts (seconds of CPU
            and hundreds of MB) before validation could refuse them.
    """

    def __init__(self, schemas_dir: Path | None = None, *, scan_above_bytes: int = SCAN_ABOVE_BYTES) -> None:
        self._scan_above = scan_above_bytes
        directory = Path(schemas_dir) if schemas_dir is not None else PathSettings().schemas_dir
        named: dict[str, Any] = {}
        _parse(directory / "tensor.avsc", named)
        self._request = _load(directory / "request.avsc", named)
        self._result = _load(directory / "result.avsc", named)
        self._dead_letter = _load(directory / "dead_letter.avsc", named)
        self._known = {s.header[2:]: s.name for s in (self._request, self._result, self._dead_letter)}

    @property
    def fingerprints(self) -> dict[str, bytes]:
        """Schema full name -> its 8-byte CRC-64-AVRO fingerprint, as written on the wire."""
        return {name: fp for fp, name in self._known.items()}

    @property
    def request_header(self) -> bytes:
        """The 10 bytes every request starts with: C3 01 and the request schema's fingerprint."""
        return self._request.header

    # -- requests ------------------------------------------------------------------------------

    def encode_request(self, req: InferenceRequest) -> bytes:
        """Encode a request (no semantic checks: the decoder is the gatekeeper).

        Raises:
            ValueError: A field does not fit its Avro type.
        """
        _check_int32("priority", req.priority)
        record = {
            "request_id": req.request_id,
            "model": req.model,
            "version": req.version,
            "inputs": [_tensor_record(t) for t in req.inputs],
            "deadline_ms": req.deadline_ms,
            "priority": req.priority,
            "created_at_ms": req.created_at_ms,
        }
        return _write(self._request, record)

    def decode_request(self, data: bytes, max_bytes: int | None = None) -> InferenceRequest:
        """Decode and validate a request.

        Args:
            data: The record value as read from Kafka.
            max_bytes: Refuse records longer than this (None: no limit).

        Raises:
            DecodeError: For any bytes that are not a valid request, and only that.
        """
        data = _as_bytes(data)
        if max_bytes is not None and len(data) > max_bytes:
            raise DecodeError(
                Reason.OVERSIZED,
                f"record of {len(data)} bytes exceeds the limit of {max_bytes} bytes",
                self.peek_request_id(data),
            )
        if len(data) > self._scan_above:
            flood = _flood(data)
            if flood is not None:
                raise DecodeError(flood.reason, flood.message, self.peek_request_id(data))
        # The fast reader takes plain, complete requests; fastavro reads (and names) the rest.
        record = read_request(data, HEADER_SIZE) if data[:HEADER_SIZE] == self._request.header else None
        if record is None:
            try:
                record = self._read(self._request, data)
            except DecodeError as exc:
                if exc.reason is Reason.UNDECODABLE:
                    exc.request_id = self.peek_request_id(data)
                raise
        return _request_from(record)

    def peek_request_id(self, data: bytes) -> str | None:
        """Best-effort request id of a request whose full decode failed; never raises.

        ``request_id`` is the first field of the body, so a record whose tail is truncated or
        invalid may still yield it. Returns None unless the record carries the request header
        and a complete UTF-8 id of 1 to :data:`MAX_REQUEST_ID_BYTES` bytes (a longer one is
        not an id the job answers to).
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            return None
        if bytes(data[:HEADER_SIZE]) != self._request.header:
            return None
        try:
            return _string_at(data, HEADER_SIZE, MAX_REQUEST_ID_BYTES)[0]
        except (_Malformed, UnicodeDecodeError):
            return None

    def peek_route(self, data: bytes) -> tuple[str, str] | None:
        """``(request_id, model)`` read from a request's first two fields, without decoding it.

        For routing only (the keyed operator decodes and validates in full): a fraction of a
        full decode. Returns None unless the record carries the request header, an id as
        :meth:`peek_request_id` reads it and a model name matching :data:`NAME_PATTERN`, so
        a lane key is never made of an arbitrary string (a model "name" of megabytes took
        minutes to hash); never raises.
        """
        if not isinstance(data, bytes | bytearray | memoryview) or bytes(data[:HEADER_SIZE]) != self._request.header:
            return None
        try:
            request_id, pos = _string_at(data, HEADER_SIZE, MAX_REQUEST_ID_BYTES)
            model, _ = _string_at(data, pos, 64)
        except (_Malformed, UnicodeDecodeError):
            return None
        if not NAME_PATTERN.fullmatch(model):
            return None
        return request_id, model

    # -- results -------------------------------------------------------------------------------

    def encode_result(self, res: InferenceResult) -> bytes:
        """Encode a result.

        Raises:
            ValueError: A field does not fit its Avro type.
        """
        _check_int32("timings.batch_size", res.timings.batch_size)
        fast = write_result(self._result.header, res)
        if fast is not None:
            return fast
        return _write(self._result, result_record(res))

    def decode_result(self, data: bytes, max_bytes: int | None = None) -> InferenceResult:
        """Decode a result (no semantic checks beyond the schema), under the bounds requests
        have: longer than ``max_bytes`` is refused unread, longer than the scan threshold it is
        first walked for its object counts (a forged "result" must not cost seconds and hundreds
        of MB to decode: anyone who may write the results topic can put one there).

        Raises:
            DecodeError: UNDECODABLE, WRONG_SCHEMA or OVERSIZED, and nothing else.
        """
        data = _as_bytes(data)
        if max_bytes is not None and len(data) > max_bytes:
            raise DecodeError(Reason.OVERSIZED, f"result of {len(data)} bytes exceeds the limit of {max_bytes} bytes")
        if len(data) > self._scan_above and data[:HEADER_SIZE] == self._result.header:
            flood = _result_flood(data)
            if flood is not None:
                raise DecodeError(Reason.UNDECODABLE, f"not a result the job writes: {flood.message}")
        record = self._read(self._result, data)
        timings = record["timings"]
        _require_int32(timings["batch_size"], "timings.batch_size")
        return InferenceResult(
            request_id=record["request_id"],
            model=record["model"],
            status=Status(record["status"]),
            completed_at_ms=record["completed_at_ms"],
            version=record["version"],
            outputs=tuple(_tensor_from(t) for t in record["outputs"]),
            error=record["error"],
            timings=Timings(
                queued_ms=timings["queued_ms"],
                batch_size=timings["batch_size"],
                inference_ms=timings["inference_ms"],
                end_to_end_ms=timings["end_to_end_ms"],
            ),
            route=None if record["route"] is None else Route(**record["route"]),
            graph=_graph_from(record.get("graph")),
        )

    # -- dead letters --------------------------------------------------------------------------

    def encode_dead_letter(self, dl: DeadLetter) -> bytes:
        """Encode a dead-letter record.

        Raises:
            ValueError: A field does not fit its Avro type.
        """
        _check_int32("partition", dl.partition)
        record = {
            "original": bytes(dl.original),
            "topic": dl.topic,
            "partition": dl.partition,
            "offset": dl.offset,
            "reason": Reason(dl.reason).value,
            "message": dl.message,
            "request_id": dl.request_id,
            "at_ms": dl.at_ms,
        }
        return _write(self._dead_letter, record)

    def decode_dead_letter(self, data: bytes) -> DeadLetter:
        """Decode a dead-letter record.

        Raises:
            DecodeError: UNDECODABLE or WRONG_SCHEMA, and nothing else.
        """
        record = self._read(self._dead_letter, _as_bytes(data))
        _require_int32(record["partition"], "partition")
        return DeadLetter(
            original=record["original"],
            topic=record["topic"],
            partition=record["partition"],
            offset=record["offset"],
            reason=Reason(record["reason"]),
            message=record["message"],
            at_ms=record["at_ms"],
            request_id=record["request_id"],
        )

    # -- framing -------------------------------------------------------------------------------

    def _read(self, schema: _Schema, data: bytes) -> dict[str, Any]:
        """Check the header, read the body, and insist that nothing follows it."""
        if data[:HEADER_SIZE] != schema.header:
            self._header_error(schema, data)
        stream = io.BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(stream, schema.parsed, None)
        except EOFError as exc:
            detail = f" ({exc})" if str(exc) else ""
            message = f"{_short(schema.name)} body ends early: truncated, or a corrupt length prefix{detail}"
            raise DecodeError(Reason.UNDECODABLE, message) from exc
        except UnicodeDecodeError as exc:
            raise DecodeError(Reason.UNDECODABLE, f"invalid UTF-8 in a string of the {_short(schema.name)}") from exc
        except Exception as exc:  # fastavro raises many types on garbage; all mean "not this schema"
            raise DecodeError(
                Reason.UNDECODABLE, f"body is not a valid {_short(schema.name)}: {type(exc).__name__}: {exc}"
            ) from exc
        extra = len(data) - stream.tell()
        if extra:
            raise DecodeError(Reason.UNDECODABLE, f"{extra} trailing bytes after the {_short(schema.name)} body")
        return cast(dict[str, Any], record)

    def _header_error(self, schema: _Schema, data: bytes) -> NoReturn:
        if data[:2] != MARKER:
            got = data[:2].hex(" ") or "nothing"
            raise DecodeError(
                Reason.UNDECODABLE,
                f"not Avro single-object encoding: expected marker c3 01, got {got}",
            )
        if len(data) < HEADER_SIZE:
            raise DecodeError(Reason.UNDECODABLE, f"truncated header: {len(data)} of {HEADER_SIZE} bytes")
        found = data[2:HEADER_SIZE]
        other = self._known.get(found)
        if other is not None:
            raise DecodeError(
                Reason.WRONG_SCHEMA,
                f"record is an {_short(other)} (fingerprint {found.hex()}), expected an {_short(schema.name)}",
            )
        raise DecodeError(
            Reason.WRONG_SCHEMA,
            f"unknown schema fingerprint {found.hex()}, expected {_short(schema.name)} {schema.header[2:].hex()} "
            f"(written with another version of the schema?)",
        )


# -- schema loading --------------------------------------------------------------------------


def _parse(path: Path, named: dict[str, Any]) -> dict[str, Any]:
    return cast(dict[str, Any], parse_schema(json.loads(path.read_text(encoding="utf-8")), named_schemas=named))


def _load(path: Path, named: dict[str, Any]) -> _Schema:
    parsed = _parse(path, named)
    # fastavro's canonical form keeps a reference to a type defined in another file as a bare
    # name; the spec's (Java's, avro-python's) inlines the definition at its first use.
    canonical = to_parsing_canonical_form(_standalone(parsed, named, set()))
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))  # hex of the little-endian bytes
    return _Schema(parsed["name"], parsed, MARKER + fp)


def _standalone(schema: Any, named: dict[str, Any], seen: set[str]) -> Any:
    """The schema with every named type defined at its first use and referenced after."""
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            return _standalone(named[schema], named, seen)
        return schema
    if isinstance(schema, list):
        return [_standalone(s, named, seen) for s in schema]
    kind = schema["type"]
    if not isinstance(kind, str):
        return _standalone(kind, named, seen)
    if kind in _NAMED_TYPES:
        if schema["name"] in seen:
            return schema["name"]
        seen.add(schema["name"])
    out = {k: v for k, v in schema.items() if not k.startswith("__")}
    if kind in ("record", "error"):
        out["fields"] = [{**f, "type": _standalone(f["type"], named, seen)} for f in schema["fields"]]
    elif kind == "array":
        out["items"] = _standalone(schema["items"], named, seen)
    elif kind == "map":
        out["values"] = _standalone(schema["values"], named, seen)
    return out


# -- records ---------------------------------------------------------------------------------


def _write(schema: _Schema, record: dict[str, Any]) -> bytes:
    stream = io.BytesIO()
    stream.write(schema.header)
    try:
        schemaless_writer(stream, schema.parsed, record)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"cannot encode {_short(schema.name)}: {exc}") from exc
    return stream.getvalue()


def _tensor_record(t: Tensor) -> dict[str, Any]:
    return {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "data": bytes(t.data)}


def _tensor_from(t: dict[str, Any]) -> Tensor:
    return Tensor(t["name"], t["dtype"], tuple(t["shape"]), t["data"])


def _request_from(r: dict[str, Any]) -> InferenceRequest:
    request_id: str = r["request_id"]
    id_bytes = len(request_id.encode("utf-8"))
    readable = request_id if 0 < id_bytes <= MAX_REQUEST_ID_BYTES else None
    refusal = request_id_refusal(request_id)
    if refusal is None:
        _require_int32(r["priority"], "priority", request_id)
        refusal = names_refusal(r["model"], r["version"])
    inputs: tuple[Tensor, ...] = ()
    if refusal is None:
        if len(r["inputs"]) > MAX_INPUTS:  # before building a tensor for each
            refusal = inputs_refusal(r["inputs"])
        else:
            inputs = tuple(_tensor_from(t) for t in r["inputs"])
            refusal = inputs_refusal(inputs)
    if refusal is not None:
        raise DecodeError(refusal.reason, refusal.message, readable)
    return InferenceRequest(
        request_id=request_id,
        model=r["model"],
        inputs=inputs,
        created_at_ms=r["created_at_ms"],
        version=r["version"],
        deadline_ms=r["deadline_ms"],
        priority=r["priority"],
    )


# -- helpers ---------------------------------------------------------------------------------


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise DecodeError(Reason.UNDECODABLE, f"record value is {type(data).__name__}, not bytes")


class _Malformed(Exception):
    """Bytes the pre-decode readers cannot follow (the real decoder then says why)."""


def _long_at(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Zig-zag varint at ``pos``: (value, next position)."""
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >> 64:  # a tenth byte with bits past the 64th: no Avro long
                raise _Malformed
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
    raise _Malformed


def _string_at(data: bytes | bytearray | memoryview, pos: int, max_bytes: int) -> tuple[str, int]:
    """Non-empty UTF-8 string of at most ``max_bytes`` at ``pos``: (text, next position)."""
    length, start = _long_at(data, pos)
    if not 0 < length <= max_bytes or start + length > len(data):
        raise _Malformed
    return bytes(data[start : start + length]).decode("utf-8"), start + length


def _skip(data: bytes, pos: int) -> int:
    """Position after the string or bytes value at ``pos``."""
    length, pos = _long_at(data, pos)
    if length < 0 or pos + length > len(data):
        raise _Malformed
    return pos + length


def _block(data: bytes, pos: int) -> tuple[int, int]:
    """Item count of the array block at ``pos`` and the position of its first item."""
    count, pos = _long_at(data, pos)
    if count < 0:  # a negative count is followed by the block's size in bytes
        count = -count
        _, pos = _long_at(data, pos)
    return count, pos


def _flood(data: bytes) -> Refusal | None:
    """Why a request would decode into too many objects, else None; builds none itself.

    Follows the body up to the end of ``inputs``, reading only lengths and counts, and stops
    at the first limit passed, so its cost is bounded by the limits, not by the record. A body
    it cannot follow is refused as ``UNDECODABLE`` rather than handed to the decoder: every
    canonical request can be followed, and fastavro is laxer than this reader (a union branch
    of -1 picks the last branch, varints may run past 10 bytes), so "cannot follow" would
    otherwise let a flood through to be built in full (seconds and hundreds of MB a record).
    """
    try:
        pos = _skip(data, _skip(data, HEADER_SIZE))  # request_id, model
        pos = _optional(data, pos, _skip)  # version
        return _tensors_flood(data, pos, "inputs")[0]
    except _Malformed:
        return Refusal(Reason.UNDECODABLE, ("the request body cannot be read up to the end of its inputs (a length, "
                                            "count or union branch out of range, or a varint longer than 10 bytes)"))


def _result_flood(data: bytes) -> Refusal | None:
    """Why a result would decode into too many objects, else None (the same walk as
    :func:`_flood`, over the whole result: outputs, and a graph's missing members and steps)."""
    try:
        pos = _optional(data, HEADER_SIZE, _skip)  # request_id
        pos = _optional(data, _skip(data, pos), _skip)  # model, version
        _, pos = _long_at(data, pos)  # status
        refusal, pos = _tensors_flood(data, pos, "outputs")
        if refusal is not None:
            return refusal
        pos = _optional(data, pos, _skip)  # error
        pos = _long_at(data, pos + 8)[1] + 16  # timings: double, int, double, double
        _, pos = _long_at(data, pos)  # completed_at_ms
        pos = _optional(data, pos, _route_end)
        branch, pos = _long_at(data, pos)
        if branch == 1:  # a graph: partial, then two arrays
            missing, pos = _array_walk(data, pos + 1, _skip)
            if missing > MAX_GRAPH_STEPS:
                return Refusal(Reason.UNDECODABLE, f"more than {MAX_GRAPH_STEPS} missing graph members")
            steps, pos = _array_walk(data, pos, _step_end)
            if steps > MAX_GRAPH_STEPS:
                return Refusal(Reason.UNDECODABLE, f"more than {MAX_GRAPH_STEPS} graph steps")
        elif branch != 0:
            raise _Malformed
        return None
    except _Malformed:
        return Refusal(Reason.UNDECODABLE, "the result body cannot be followed to its end (a length, count or "
                                           "union branch out of range, or a varint longer than 10 bytes)")


def _optional(data: bytes, pos: int, value_end: Callable[[bytes, int], int]) -> int:
    """Position after a ``["null", X]`` union at ``pos`` (``value_end`` skips an X)."""
    branch, pos = _long_at(data, pos)
    if branch == 1:
        return value_end(data, pos)
    if branch != 0:
        raise _Malformed
    return pos


def _route_end(data: bytes, pos: int) -> int:
    pos = _optional(data, _skip(data, pos), _skip)  # rule, alias
    _, pos = _long_at(data, pos)  # bucket
    pos = _optional(data, pos, _skip)  # primary_version
    return _optional(data, pos, lambda d, p: p + 1)  # agrees


def _step_end(data: bytes, pos: int) -> int:
    pos = _optional(data, _skip(data, _skip(data, pos)), _skip)  # step, model, version
    pos = _skip(data, pos)  # status
    return _long_at(data, pos)[1] + 16  # batch_size, inference_ms, finished_ms


def _array_walk(data: bytes, pos: int, item_end: Callable[[bytes, int], int]) -> tuple[int, int]:
    """Items of the array at ``pos`` (stopping past :data:`MAX_GRAPH_STEPS`) and the position after it."""
    total = 0
    while True:
        count, pos = _block(data, pos)
        if count == 0:
            return total, pos
        total += count
        if total > MAX_GRAPH_STEPS:
            return total, pos
        for _ in range(count):
            pos = item_end(data, pos)
        if pos > len(data):
            raise _Malformed


def _tensors_flood(data: bytes, pos: int, what: str) -> tuple[Refusal | None, int]:
    """Walk the tensor array at ``pos``: the first limit passed (as a refusal), and the position after it."""
    tensors = 0
    while True:
        count, pos = _block(data, pos)
        if count == 0:
            return None, pos
        tensors += count
        if tensors > MAX_INPUTS:
            refusal = too_many_inputs(tensors)
            assert refusal is not None
            return Refusal(refusal.reason, refusal.message.replace("inputs", what)), pos
        for _ in range(count):
            pos = _skip(data, _skip(data, pos))  # name, dtype
            dims = 0
            while True:
                count_dims, pos = _block(data, pos)
                if count_dims == 0:
                    break
                dims += count_dims
                if dims > MAX_DIMS:
                    return too_many_dims(dims), pos
                for _ in range(count_dims):
                    _, pos = _long_at(data, pos)
            pos = _skip(data, pos)  # data


def _check_int32(field: str, value: int) -> None:
    # fastavro writes any Python int to an Avro int field; other readers reject > 32 bits.
    if isinstance(value, int) and value not in _INT32:
        raise ValueError(f"{field}={value} does not fit an Avro int (32 bits)")


def _require_int32(value: int, field: str, request_id: str | None = None) -> None:
    if value not in _INT32:
        raise DecodeError(Reason.UNDECODABLE, f"int field {field} holds {value}, beyond 32 bits", request_id or None)


def _short(full_name: str) -> str:
    return full_name.rsplit(".", 1)[-1]


def result_record(res: InferenceResult) -> dict[str, Any]:
    """``res`` as the record fastavro writes for ``result.avsc`` (the fast path's reference)."""
    return {
        "request_id": res.request_id,
        "model": res.model,
        "version": res.version,
        "status": Status(res.status).value,
        "outputs": [_tensor_record(t) for t in res.outputs],
        "error": res.error,
        "timings": {
            "queued_ms": res.timings.queued_ms,
            "batch_size": res.timings.batch_size,
            "inference_ms": res.timings.inference_ms,
            "end_to_end_ms": res.timings.end_to_end_ms,
        },
        "completed_at_ms": res.completed_at_ms,
        "route": None if res.route is None else {
            "rule": res.route.rule, "alias": res.route.alias, "bucket": res.route.bucket,
            "primary_version": res.route.primary_version, "agrees": res.route.agrees,
        },
        "graph": None if res.graph is None else {
            "partial": res.graph.partial, "missing": list(res.graph.missing),
            "steps": [{"step": t.step, "model": t.model, "version": t.version, "status": t.status,
                       "batch_size": t.batch_size, "inference_ms": t.inference_ms, "finished_ms": t.finished_ms}
                      for t in res.graph.steps],
        },
    }


def _graph_from(raw: Any) -> GraphOutcome | None:
    """A result's ``graph`` field as a :class:`GraphOutcome` (None stays None)."""
    if raw is None:
        return None
    return GraphOutcome(bool(raw["partial"]), tuple(raw["missing"]), tuple(StepTiming(**t) for t in raw["steps"]))
