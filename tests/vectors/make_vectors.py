"""Writes the vectors shared by the Java operators' JUnit tests and the Python tests.

``python -m tests.vectors.make_vectors`` rewrites the ``*.tsv`` files here from the Python side
(:mod:`aimass.keys`, :mod:`aimass.frames`, :mod:`aimass.codec`); ``tests/unit/test_vectors.py``
fails when they differ from what Python computes now, and the JUnit tests in ``java/`` fail
when Java disagrees with them. Columns are tab-separated; bytes are hex.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aimass.codec import Codec
from aimass.frames import DEAD_LETTER, ERROR_RESULT, RESULT, BatchRecord, OutputsWriter, dedup_verdict, write_batch
from aimass.keys import lane_keys, lane_of
from aimass.messages import InferenceRequest, Tensor

HERE = Path(__file__).parent


def lanes() -> str:
    rows = ["# request_id\tlanes\tmax_parallelism\tlane\tkey"]
    for lanes_, max_p in ((1, 128), (4, 128), (8, 128), (3, 128), (4, 32768), (16, 256)):
        for rid in ("req-0", "req-42", "a", "ü-ß-日本", "0c6b2a3e-1d2f-4c5b-9a8e-7f6d5c4b3a21"):
            lane = lane_of(rid, lanes_)
            rows.append(f"{rid}\t{lanes_}\t{max_p}\t{lane}\t{lane_keys(lanes_, max_p)[lane]}")
    return "\n".join(rows) + "\n"


def frames() -> str:
    records = [
        BatchRecord(b"", "aimass.requests", 0, 0, 1_700_000_000_000),
        BatchRecord(bytes(range(256)), "t", 3, 2**40 + 7, 1),
        BatchRecord(b"\xc3\x01abc", "", -1, -5, -1),
    ]
    out = OutputsWriter()
    out.add(RESULT, "req-1", b"\x01\x02")
    out.add(ERROR_RESULT, "ü-ß", b"")
    out.add(DEAD_LETTER, None, bytes(300))
    rows = ["# name\thex"]
    for i, r in enumerate(records):
        rows.append(f"record{i}\t{r.partition}\t{r.offset}\t{r.received_ms}\t{r.topic}\t{r.value.hex()}")
    rows.append(f"batch\t{write_batch(records).hex()}")
    rows.append(f"outputs\t{out.frame().hex()}")
    return "\n".join(rows) + "\n"


def peeks() -> str:
    codec = Codec()
    pixels = Tensor.from_numpy("pixels", np.zeros((1, 2), np.float32))
    good = codec.encode_request(InferenceRequest("req-7", "digits", (pixels,), 1))
    long_id = codec.encode_request(InferenceRequest("x" * 1025, "digits", (pixels,), 1))
    cases = {
        "good": good,
        "truncated-after-id": good[:10 + 1 + 5],
        "truncated-in-id": good[:13],
        "wrong-header": b"\xc3\x01" + bytes(8) + good[10:],
        "empty": b"",
        "id-too-long": long_id,
        "negative-length": codec.request_header + b"\x01",
        "varint-past-end": codec.request_header + b"\xff\xff",
        "model-too-long": codec.request_header + b"\x02a" + b"\x82\x01" + b"m" * 65,
    }
    rows = ["# case\thex\trequest_id or -\tmodel or -"]
    for name, value in cases.items():
        route = codec.peek_route(value)
        rid = codec.peek_request_id(value)
        model = route[1] if route else "-"
        rows.append(f"{name}\t{value.hex()}\t{rid if rid is not None else '-'}\t{model}")
    return "\n".join(rows) + "\n"


def dedup() -> str:
    rows = ["# claimed\tclaims\temit\tclaim"]
    for claimed in (False, True):
        for claims in (False, True):
            emit, claim = dedup_verdict(claimed, claims)
            rows.append(f"{claimed}\t{claims}\t{emit}\t{claim}".lower())
    return "\n".join(rows) + "\n"


VECTORS = {"lanes.tsv": lanes, "frames.tsv": frames, "peek.tsv": peeks, "dedup.tsv": dedup}


def main() -> None:
    for name, make in VECTORS.items():
        (HERE / name).write_text(make(), encoding="utf-8")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
