"""The two byte frames between the job's Java steps and its Python inference step.

One batch crosses into Python as one frame, and its answers cross back as one frame: a Python
call per batch, not per record (one Java-to-Python call costs 4-7 us here: per record, that is
most of the budget). All integers
big-endian; the Java side is ``java/src/main/java/ai/aimass/flink/Frames.java``, and both are
checked against ``tests/vectors/frames.json``::

    batch   := VERSION:u8 count:i32 record{count}                 (Java to Python)
    record  := partition:i32 offset:i64 received_ms:i64 topic:bytes value:bytes
               rule:u8 bucket:i32 version:bytes alias:bytes shadow:bytes detail:bytes
    outputs := VERSION:u8 count:i32 output{count}                 (Python to Java)
    output  := kind:u8 key:bytes value:bytes
    bytes   := length:i32 byte{length}

A record's route (``rule`` ... ``detail``) is the Java ``Route`` operator's decision
(docs/CONTROL.md): the version that serves it, by which rule, and a shadow version; rule
:data:`CONTROL` marks a route update (``value``) rather than a request. An output of kind
:data:`RESULT` claims its request id (the request was accepted: this is the id's one result),
:data:`ERROR_RESULT` is a refused record's error result (written while the id has no result,
claiming nothing), :data:`DEAD_LETTER` is written always, :data:`SHADOW` is a shadow result
(to the shadow topic).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

VERSION = 2
RESULT, ERROR_RESULT, DEAD_LETTER, SHADOW = 0, 1, 2, 3
#: Route rules (``Frames.java``; names in :data:`aimass.control.routing.RULES`).
NONE, DEFAULT, PINNED, ALIAS, SPLIT, UNKNOWN, CONTROL = range(7)

_HEAD = struct.Struct(">Bi")
_RECORD = struct.Struct(">iqqi")
_LEN = struct.Struct(">i")
_RULE = struct.Struct(">Bi")
_ROUTE_HEAD = struct.Struct(">Bii")  # rule, bucket, version length


class FrameError(ValueError):
    """A frame that does not follow the format (a bug on one side, never a user's record)."""


class BatchRecord(NamedTuple):
    """One source record of a batch, as the Java router framed it (a named tuple: built once per
    record on the hot path, several times cheaper than a frozen dataclass)."""

    value: bytes
    topic: str
    partition: int
    offset: int
    received_ms: int
    rule: int = NONE
    bucket: int = -1
    version: str = ""
    alias: str = ""
    shadow: str = ""
    detail: str = ""


def _head(view: memoryview, what: str) -> int:
    """The entry count of a frame, after checking its version."""
    version, count = _HEAD.unpack_from(view, 0)
    if version != VERSION:
        raise FrameError(f"{what} frame of version {version}, expected {VERSION}")
    return int(count)


def _end(view: memoryview, pos: int, what: str) -> None:
    if pos != len(view):
        raise FrameError(f"{len(view) - pos} bytes after the last {what}")


def read_batch(frame: bytes) -> list[BatchRecord]:
    """The records of a batch frame, in arrival order."""
    view = memoryview(frame)
    try:
        count = _head(view, "batch")
        pos, records = _HEAD.size, []
        for _ in range(count):
            partition, offset, received_ms, topic_len = _RECORD.unpack_from(view, pos)
            pos += _RECORD.size
            topic = bytes(view[pos : pos + topic_len]).decode("utf-8")
            pos += topic_len
            (value_len,) = _LEN.unpack_from(view, pos)
            pos += _LEN.size
            if topic_len < 0 or value_len < 0 or pos + value_len > len(view):
                raise FrameError("a length past the frame's end")
            value = bytes(view[pos : pos + value_len])
            pos += value_len
            rule, bucket, n = _ROUTE_HEAD.unpack_from(view, pos)
            pos += _ROUTE_HEAD.size
            version = bytes(view[pos : pos + n]).decode("utf-8") if n else ""
            pos += n
            alias_len, = _LEN.unpack_from(view, pos)
            shadow_len, = _LEN.unpack_from(view, pos + 4 + alias_len)
            detail_len, = _LEN.unpack_from(view, pos + 8 + alias_len + shadow_len)
            if min(n, alias_len, shadow_len, detail_len) < 0:
                raise FrameError("a negative length")
            if alias_len == shadow_len == detail_len == 0:  # the usual route: a version, nothing else
                pos += 12
                alias = shadow = detail = ""
            else:
                pos += 4
                alias = bytes(view[pos : pos + alias_len]).decode("utf-8")
                pos += alias_len + 4
                shadow = bytes(view[pos : pos + shadow_len]).decode("utf-8")
                pos += shadow_len + 4
                detail = bytes(view[pos : pos + detail_len]).decode("utf-8")
                pos += detail_len
            if pos > len(view):
                raise FrameError("a length past the frame's end")
            records.append(BatchRecord(value, topic, partition, offset, received_ms, rule, bucket, version, alias,
                                       shadow, detail))
    except (struct.error, UnicodeDecodeError) as exc:
        raise FrameError(f"truncated batch frame: {exc}") from exc
    _end(view, pos, "record")
    return records


def write_batch(records: list[BatchRecord]) -> bytes:
    """A batch frame (the Java router writes these; here for tests and tools)."""
    parts = [_HEAD.pack(VERSION, len(records))]
    for r in records:
        topic = r.topic.encode("utf-8")
        head = _RECORD.pack(r.partition, r.offset, r.received_ms, len(topic))
        parts += [head, topic, _LEN.pack(len(r.value)), r.value, _RULE.pack(r.rule, r.bucket)]
        for text in (r.version, r.alias, r.shadow, r.detail):
            encoded = text.encode("utf-8")
            parts += [_LEN.pack(len(encoded)), encoded]
    return b"".join(parts)


class OutputsWriter:
    """Builds one outputs frame."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._count = 0

    def add(self, kind: int, key: str | None, value: bytes) -> None:
        """Append one output (``key``: the request id; None for a dead letter without one)."""
        encoded = (key or "").encode("utf-8")
        self._parts += [struct.pack(">Bi", kind, len(encoded)), encoded, _LEN.pack(len(value)), value]
        self._count += 1

    def extend(self, other: OutputsWriter) -> None:
        """Append every output of ``other``, in order."""
        self._parts += other._parts
        self._count += other._count

    def __len__(self) -> int:
        return self._count

    def frame(self) -> bytes:
        """The frame of everything added."""
        return _HEAD.pack(VERSION, self._count) + b"".join(self._parts)


def read_outputs(frame: bytes) -> list[tuple[int, str, bytes]]:
    """``(kind, key, value)`` of each output of an outputs frame (tests and tools)."""
    view = memoryview(frame)
    try:
        count = _head(view, "outputs")
        pos, out = _HEAD.size, []
        for _ in range(count):
            kind, key_len = struct.unpack_from(">Bi", view, pos)
            pos += 5
            key = bytes(view[pos : pos + key_len]).decode("utf-8")
            pos += key_len
            (value_len,) = _LEN.unpack_from(view, pos)
            pos += _LEN.size
            if kind not in (RESULT, ERROR_RESULT, DEAD_LETTER, SHADOW) or pos + value_len > len(view):
                raise FrameError("bad output entry")
            out.append((kind, key, bytes(view[pos : pos + value_len])))
            pos += value_len
    except struct.error as exc:
        raise FrameError(f"truncated outputs frame: {exc}") from exc
    _end(view, pos, "output")
    return out


def dedup_verdict(claimed: bool, claims: bool) -> tuple[bool, bool]:
    """``(write it, remember its id)`` for a result whose id is ``claimed`` already or not.

    The rule the job's ``Dedup`` operator applies (``java/.../DedupRule.java``; vectors in
    ``tests/vectors/dedup.tsv``): an id keeps the first result that claims it, and an error
    result of a refused record is written only while the id has no result.
    """
    if claimed:
        return False, False
    return True, claims
