"""Writes the vectors shared by the Java operators' JUnit tests and the Python tests.

``python -m tests.vectors.make_vectors`` rewrites the ``*.tsv`` files here from the Python side
(:mod:`aimass.contract.keys`, :mod:`aimass.contract.frames`, :mod:`aimass.contract.codec`);
``tests/unit/contract/test_vectors.py``
fails when they differ from what Python computes now, and the JUnit tests in ``java/`` fail
when Java disagrees with them. Columns are tab-separated; bytes are hex.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aimass.contract.codec import Codec
from aimass.contract.frames import (
    DEAD_LETTER,
    ERROR_RESULT,
    RESULT,
    SHADOW,
    SPLIT,
    UNKNOWN,
    BatchRecord,
    OutputsWriter,
    dedup_verdict,
    write_batch,
)
from aimass.contract.keys import lane_keys, lane_of
from aimass.contract.messages import (
    DeadLetter,
    InferenceRequest,
    InferenceResult,
    Reason,
    Status,
    Tensor,
    Timings,
    clip,
)
from aimass.control.commands import Command, Deploy, Promote, Retire, SetAlias, SetShadow, SetSplit
from aimass.control.routing import RouteTable, Routing, shadow_bucket, split_bucket

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
        BatchRecord(bytes(range(256)), "t", 3, 2**40 + 7, 1, SPLIT, 4242, "2", "", "3", ""),
        BatchRecord(b"\xc3\x01abc", "", -1, -5, -1, UNKNOWN, -1, "", "canary", "", "no model 'ü'"),
    ]
    out = OutputsWriter()
    out.add(RESULT, "req-1", b"\x01\x02")
    out.add(ERROR_RESULT, "ü-ß", b"")
    out.add(DEAD_LETTER, None, bytes(300))
    out.add(SHADOW, "req-1", b"\x03")
    rows = ["# name\thex (records: partition offset received_ms topic value rule bucket version alias shadow detail)"]
    for i, r in enumerate(records):
        rows.append(f"record{i}\t{r.partition}\t{r.offset}\t{r.received_ms}\t{r.topic}\t{r.value.hex()}\t{r.rule}"
                    f"\t{r.bucket}\t{r.version}\t{r.alias}\t{r.shadow}\t{r.detail}")
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


def buckets() -> str:
    rows = ["# request_id\tsplit_bucket\tshadow_bucket"]
    for rid in ("req-0", "req-42", "a", "ü-ß-日本", "0c6b2a3e-1d2f-4c5b-9a8e-7f6d5c4b3a21", "x" * 1024):
        rows.append(f"{rid}\t{split_bucket(rid)}\t{shadow_bucket(rid)}")
    return "\n".join(rows) + "\n"


def _deploy(model: str, version: str, **meta: object) -> Command:
    metadata = {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 2]}],
                "outputs": [{"name": "y", "dtype": "int64", "shape": [-1]}], **meta}
    return Command(Deploy(model, version, f"file:///models/{model}/{version}", "ab" * 32, 10, json.dumps(metadata)),
                   issued_at_ms=1000, command_id="c")


def routes() -> str:
    """Resolutions after command sequences (applied by :class:`Routing`, resolved by :class:`RouteTable`)."""
    at = 5000
    scenarios: dict[str, list[Command]] = {
        "one-version": [_deploy("m", "1", max_batch_size=8, max_delay_ms=3)],
        "newest-serving": [_deploy("m", "1"), _deploy("m", "10"), _deploy("m", "9"), _deploy("m", "11", serving=False)],
        "stable-alias": [_deploy("m", "1"), _deploy("m", "2"), Command(SetAlias("m", "stable", "1"), 2000, None, "c"),
                         Command(SetAlias("m", "canary", "2"), 2000, None, "c")],
        "split": [_deploy("m", "1"), _deploy("m", "2"),
                  Command(SetSplit("m", (("1", 0.9), ("2", 0.1))), 2000, None, "c")],
        "split-later": [_deploy("m", "1"), _deploy("m", "2"),
                        Command(SetSplit("m", (("1", 0.5), ("2", 0.5))), 2000, 9000, "c")],
        "shadow": [_deploy("m", "1"), _deploy("m", "2"), Command(SetShadow("m", "2", 0.5), 2000, None, "c")],
        "shadow-all-split": [_deploy("m", "1"), _deploy("m", "2"),
                             Command(SetSplit("m", (("1", 0.7), ("2", 0.3))), 2000, None, "c"),
                             Command(SetShadow("m", "2", 1.0), 2000, None, "c")],
        "retired-all": [_deploy("m", "1"), Command(Retire("m", "1"), 2000, None, "c"), _deploy("n", "1")],
        "no-serving": [_deploy("m", "1", serving=False)],
        "promoted": [_deploy("m", "1"), _deploy("m", "2"), Command(SetSplit("m", (("1", 0.9), ("2", 0.1))), 2000,
                                                                   None, "c"),
                     Command(Promote("m", "1"), 3000, None, "c")],
    }
    ids = ["req-0", "req-1", "req-42", "ü-ß-日本"]
    rows = ["# case\tupdates\tmodel\trequested or -\trequest_id\ttimestamp_ms\trule\tversion or -\talias or -"
            "\tbucket\tshadow or -\tdetail or -"]
    for name, commands in scenarios.items():
        routing, table, updates = Routing(), RouteTable(), []
        for command in commands:
            update = routing.apply(command)
            assert isinstance(update, dict), (name, update)
            updates.append(update)
            table.apply(update)
        for update in updates:  # the resolution never reads a version's metadata or location
            for entry in (update["route"] or {}).get("versions", {}).values():
                del entry["metadata"], entry["uri"], entry["sha256"], entry["size_bytes"]
        text = json.dumps(updates, separators=(",", ":"))
        asked = [("m", None), ("m", "1"), ("m", "canary"), ("m", "7")] + ([("zz", None)] if name == "split" else [])
        for model, requested in asked:
            for rid in ids:
                for ts in (0, at, 10_000):
                    r = table.resolve(model, requested, rid, ts)
                    rows.append("\t".join([name, text, model, requested or "-", rid, str(ts), r.rule, r.version or "-",
                                           r.alias or "-", str(r.bucket), r.shadow or "-", r.detail or "-"]))
    return "\n".join(rows) + "\n"


def schedules() -> str:
    """Requests and the deadline, priority and creation time ``RequestPeek.schedule`` reads."""
    codec = Codec()
    pixels = Tensor.from_numpy("pixels", np.arange(6, dtype=np.float32).reshape(2, 3))
    mask = Tensor.from_numpy("mask", np.ones((2, 1), np.bool_))
    cases = {
        "plain": InferenceRequest("req-1", "digits", (pixels,), 1_700_000_000_000),
        "deadline": InferenceRequest("req-2", "digits", (pixels, mask), 1_700_000_000_000, "2",
                                     deadline_ms=1_700_000_000_250, priority=7),
        "negative-priority": InferenceRequest("req-3", "m", (), 5, None, deadline_ms=0, priority=-3),
        "big-priority": InferenceRequest("req-4", "m", (pixels,), 2**40, "canary", priority=2**31 - 1),
    }
    rows = ["# name\thex\treadable\tdeadline_ms (empty: none)\tpriority\tcreated_at_ms"]
    for name, req in cases.items():
        data = codec.encode_request(req)
        deadline = "" if req.deadline_ms is None else str(req.deadline_ms)
        rows.append(f"{name}\t{data.hex()}\ttrue\t{deadline}\t{req.priority}\t{req.created_at_ms}")
    good = codec.encode_request(cases["deadline"])
    for name, data in (("truncated-in-inputs", good[:40]), ("truncated-tail", good[:-2]),
                       ("no-header", b"\x00" + good[1:]), ("empty", b"")):
        rows.append(f"{name}\t{data.hex()}\tfalse\t\t0\t0")
    return "\n".join(rows) + "\n"


def answers() -> str:
    """Error results and dead letters as Python encodes them: ``Answers.java`` writes the same bytes."""
    codec = Codec()
    rows = ["# kind\trequest_id\tmodel\tstatus\terror or message\tqueued_ms\tend_to_end_ms\tat_ms"
            "\t(dead letters: original hex, topic, partition, offset)\thex"]
    results = [
        ("req-1", "digits", Status.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED: deadline 5 passed 3 ms before", 12.0,
         40.0, 1_700_000_000_008),
        ("ü-ß-日本", "m.v-2", Status.OVERLOADED, "OVERLOADED: " + "x" * 1100, 0.0, 0.0, 0),
        ("r", "d", Status.OVERLOADED, "OVERLOADED: é" * 200, 0.5, 1e9, 2**50),
    ]
    for rid, model, status, error, queued, e2e, at in results:
        value = codec.encode_result(InferenceResult(rid, model, status, at, error=clip(error),
                                                    timings=Timings(queued_ms=queued, end_to_end_ms=e2e)))
        rows.append(f"result\t{rid}\t{model}\t{status.value}\t{error}\t{queued!r}\t{e2e!r}\t{at}\t\t\t\t\t"
                    f"{value.hex()}")
    letters = [
        ("req-1", "deadline 5 passed 3 ms before the request ran", bytes(range(20)), "aimass.requests", 3, 2**33, 17),
        ("ü", "y" * 1500, b"", "", 0, 0, 0),
    ]
    for rid, message, original, topic, partition, offset, at in letters:
        value = codec.encode_dead_letter(DeadLetter(original, topic, partition, offset, Reason.DEADLINE_EXCEEDED,
                                                    clip(message), at, rid))
        rows.append(f"dead_letter\t{rid}\t\tDEADLINE_EXCEEDED\t{message}\t\t\t{at}\t{original.hex()}\t{topic}"
                    f"\t{partition}\t{offset}\t{value.hex()}")
    return "\n".join(rows) + "\n"


VECTORS = {"lanes.tsv": lanes, "frames.tsv": frames, "peek.tsv": peeks, "dedup.tsv": dedup,
           "buckets.tsv": buckets, "routes.tsv": routes, "schedule.tsv": schedules, "answers.tsv": answers}


def main() -> None:
    for name, make in VECTORS.items():
        (HERE / name).write_text(make(), encoding="utf-8")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
