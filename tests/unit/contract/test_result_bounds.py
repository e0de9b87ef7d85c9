"""Results are decoded under bounds, as requests are: a forged "result" on the results topic
(anyone with write access can put one there, and compaction keeps it for days) is refused in
bounded time and memory instead of being built into millions of objects."""

from __future__ import annotations

import contextlib
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimass.client.feed import ResultFeed
from aimass.client.store import ResultStore
from aimass.contract.codec import Codec, DecodeError, _result_flood
from aimass.contract.limits import MAX_GRAPH_STEPS, SCAN_ABOVE_BYTES
from aimass.contract.messages import GraphOutcome, InferenceResult, Reason, Status, StepTiming, Tensor, Timings
from tests.unit.contract.test_avro_fast import results

CODEC = Codec()
HEADER = CODEC._result.header
_MIB4 = 4 * 1024 * 1024


def _long(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _str(text: str) -> bytes:
    raw = text.encode()
    return _long(len(raw)) + raw


_HEAD = _long(1) + _str("r-1") + _str("m") + _long(0) + _long(0)  # id, model, no version, OK
_TAIL_NO_OUTPUTS = b"\0" + _long(0) + b"\0" * 8 + _long(1) + b"\0" * 16 + _long(5) + _long(0)  # ..., no route
FLOODS = {
    "a million empty output tensors": _HEAD + _long(_MIB4 // 4 - 8) + b"\0\0\0\0" * (_MIB4 // 4 - 8) + b"\0",
    "four million dimensions": _HEAD + _long(1) + b"\0\0" + _long(_MIB4 - 32) + b"\0" * (_MIB4 - 32),
    "a million missing graph members": _HEAD + _TAIL_NO_OUTPUTS + _long(1) + b"\1"
    + _long(_MIB4 - 64) + b"\0" * (_MIB4 - 64) + b"\0\0",
    "a million graph steps": _HEAD + _TAIL_NO_OUTPUTS + _long(1) + b"\1" + b"\0"
    + _long(_MIB4 // 22) + (b"\0\0\0\0" + _long(0) + b"\0" * 16) * (_MIB4 // 22) + b"\0",
}


def _refused(data: bytes, max_bytes: int | None = None) -> tuple[DecodeError, float, int]:
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(DecodeError) as caught:
        CODEC.decode_result(data, max_bytes)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return caught.value, seconds, peak


@pytest.mark.parametrize("body", FLOODS.values(), ids=list(FLOODS))
def test_a_result_flood_is_refused_before_decoding(body: bytes) -> None:
    data = HEADER + body
    assert len(data) > SCAN_ABOVE_BYTES
    error, seconds, peak = _refused(data)
    assert error.reason is Reason.UNDECODABLE and "not a result the job writes" in error.message
    assert seconds < 1.0 and peak < 1_000_000


def test_the_graph_flood_would_decode_without_the_scan() -> None:
    # The control: the same bytes below the scan threshold go to fastavro and decode (slowly).
    data = HEADER + _HEAD + _TAIL_NO_OUTPUTS + _long(1) + b"\1" + _long(MAX_GRAPH_STEPS + 1) \
        + b"\0" * (MAX_GRAPH_STEPS + 1) + b"\0\0"
    result = Codec(scan_above_bytes=len(data)).decode_result(data)
    assert result.graph is not None and len(result.graph.missing) == MAX_GRAPH_STEPS + 1
    with pytest.raises(DecodeError, match="missing graph members"):
        Codec(scan_above_bytes=0).decode_result(data)


def test_a_result_beyond_max_bytes_is_oversized_unread() -> None:
    data = CODEC.encode_result(InferenceResult(request_id="r", model="m", status=Status.OK, completed_at_ms=1))
    error, _, _ = _refused(data + b"\0" * 100, max_bytes=len(data) + 99)
    assert error.reason is Reason.OVERSIZED


def test_big_real_results_pass_the_scan() -> None:
    steps = tuple(StepTiming(f"s{n}", "m", "1", "OK", 4, 1.0, 2.0) for n in range(MAX_GRAPH_STEPS))
    res = InferenceResult(request_id="r", model="m", status=Status.OK, completed_at_ms=1, version="1",
                          outputs=tuple(Tensor.from_numpy(f"o{n}", np.zeros((64, 256), np.float32)) for n in range(8)),
                          timings=Timings(batch_size=64), graph=GraphOutcome(True, ("a/b",) * 1000, steps))
    data = CODEC.encode_result(res)
    assert len(data) > SCAN_ABOVE_BYTES
    assert Codec(scan_above_bytes=0).decode_result(data) == res


@settings(max_examples=300, deadline=None)
@given(res=results)
def test_every_result_the_codec_writes_walks_clean(res: InferenceResult) -> None:
    try:
        data = CODEC.encode_result(res)
    except ValueError:
        return
    assert _result_flood(data) is None
    assert Codec(scan_above_bytes=0).decode_result(data) == CODEC.decode_result(data)


@settings(max_examples=200, deadline=None)
@given(res=results, cut=st.integers(0, 200))
def test_a_truncated_result_only_ever_raises_decode_error(res: InferenceResult, cut: int) -> None:
    try:
        data = CODEC.encode_result(res)
    except ValueError:
        return
    with contextlib.suppress(DecodeError):
        Codec(scan_above_bytes=0).decode_result(data[: max(len(data) - cut, 0)])


def test_the_feed_skips_forged_results_and_counts_them() -> None:
    store = ResultStore()
    feed = ResultFeed("127.0.0.1:1", "t", store, CODEC, max_bytes=_MIB4 + 1024)
    started = time.perf_counter()
    for body in FLOODS.values():
        feed._take(HEADER + body, None)
    feed._take(b"\0" * (_MIB4 + 2048), None)
    good = InferenceResult(request_id="ok", model="m", status=Status.OK, completed_at_ms=1)
    feed._take(CODEC.encode_result(good), None)
    assert time.perf_counter() - started < 3.0
    assert feed.undecodable == len(FLOODS) + 1
    assert store.get("ok") == good and len(store) == 1
