"""The hand-written Avro paths give fastavro's answers: same bytes out, same records in, or defer."""

from __future__ import annotations

import io
import json
import random

import numpy as np
from fastavro import schemaless_reader
from hypothesis import given, settings
from hypothesis import strategies as st

from aimass.contract.avro_fast import read_request, write_result
from aimass.contract.codec import HEADER_SIZE, Codec
from aimass.contract.messages import (
    GraphOutcome,
    InferenceRequest,
    InferenceResult,
    Route,
    Status,
    StepTiming,
    Tensor,
    Timings,
)
from aimass.settings import PathSettings

CODEC = Codec()
SCHEMAS = PathSettings().schemas_dir

names = st.text(min_size=0, max_size=12)
tensors = st.builds(
    Tensor,
    name=names,
    dtype=st.sampled_from(["float32", "int64", "bool", "uint8", "x"]),
    shape=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4).map(tuple),
    data=st.binary(max_size=40),
)
results = st.builds(
    InferenceResult,
    request_id=st.none() | names,
    model=names,
    status=st.sampled_from(list(Status)),
    completed_at_ms=st.integers(-(2**63), 2**63 - 1),
    version=st.none() | names,
    outputs=st.lists(tensors, max_size=3).map(tuple),
    error=st.none() | names,
    timings=st.builds(Timings, queued_ms=st.floats(allow_nan=False) | st.integers(-10**6, 10**6),
                      batch_size=st.integers(-(2**31), 2**31 - 1), inference_ms=st.floats(allow_nan=False),
                      end_to_end_ms=st.floats(allow_nan=False)),
    route=st.none() | st.builds(Route, rule=names, alias=st.none() | names, bucket=st.integers(-(2**31), 2**31 - 1),
                                primary_version=st.none() | names, agrees=st.none() | st.booleans()),
    graph=st.none() | st.builds(
        GraphOutcome, partial=st.booleans(), missing=st.lists(names, max_size=3).map(tuple),
        steps=st.lists(st.builds(StepTiming, step=names, model=names, version=st.none() | names, status=names,
                                 batch_size=st.integers(-(2**31), 2**31 - 1),
                                 inference_ms=st.floats(allow_nan=False) | st.integers(-10**6, 10**6),
                                 finished_ms=st.floats(allow_nan=False)), max_size=3).map(tuple)),
)
requests = st.builds(
    InferenceRequest,
    request_id=names,
    model=names,
    inputs=st.lists(tensors, max_size=3).map(tuple),
    created_at_ms=st.integers(-(2**63), 2**63 - 1),
    version=st.none() | names,
    deadline_ms=st.none() | st.integers(-(2**63), 2**63 - 1),
    priority=st.integers(-(2**31), 2**31 - 1),
)


def _slow_result(res: InferenceResult) -> bytes:
    """The result as fastavro writes it (the codec's fallback path, called directly)."""
    from aimass.contract.codec import _write, result_record

    return _write(CODEC._result, result_record(res))


def _slow_request(data: bytes) -> dict | None:
    try:
        stream = io.BytesIO(data)
        stream.seek(HEADER_SIZE)
        record = schemaless_reader(stream, CODEC._request.parsed, None)
    except Exception:  # noqa: BLE001 - fastavro refuses it: the fast path must defer
        return None
    return record if stream.tell() == len(data) else None


@given(results)
def test_results_are_written_byte_for_byte_as_fastavro_writes_them(res: InferenceResult) -> None:
    fast = write_result(CODEC._result.header, res)
    assert fast == _slow_result(res)


def test_a_result_field_of_another_type_is_left_to_fastavro() -> None:
    bad = InferenceResult("id", 7, Status.OK, 0)  # type: ignore[arg-type]
    assert write_result(CODEC._result.header, bad) is None


@given(requests)
def test_valid_request_bodies_read_as_fastavro_reads_them(req: InferenceRequest) -> None:
    data = CODEC.encode_request(req) if _encodable(req) else None
    if data is None:
        return
    assert read_request(data, HEADER_SIZE) == _slow_request(data)


def _encodable(req: InferenceRequest) -> bool:
    try:
        CODEC.encode_request(req)
    except ValueError:
        return False
    return True


@settings(max_examples=300)
@given(st.binary(max_size=200), st.integers(0, 2**32))
def test_damaged_and_random_bodies_read_as_fastavro_or_defer(junk: bytes, seed: int) -> None:
    pixels = Tensor.from_numpy("pixels", np.zeros((1, 3), np.float32))
    good = CODEC.encode_request(InferenceRequest("r-1", "digits", (pixels,), 5, "2", 99, 3))
    rng = random.Random(seed)
    cut = rng.randrange(HEADER_SIZE, len(good) + 1)
    flipped = bytearray(good)
    flipped[rng.randrange(HEADER_SIZE, len(good))] ^= 1 << rng.randrange(8)
    for data in (good[:cut], bytes(flipped), good + junk[:3], good[:HEADER_SIZE] + junk):
        fast = read_request(data, HEADER_SIZE)
        if fast is not None:  # accepted: exactly fastavro's record
            assert fast == _slow_request(data)


def test_the_fast_paths_know_every_field_of_the_schemas() -> None:
    request = [f["name"] for f in json.loads((SCHEMAS / "request.avsc").read_text())["fields"]]
    result = [f["name"] for f in json.loads((SCHEMAS / "result.avsc").read_text())["fields"]]
    tensor = [f["name"] for f in json.loads((SCHEMAS / "tensor.avsc").read_text())["fields"]]
    assert request == ["request_id", "model", "version", "inputs", "deadline_ms", "priority", "created_at_ms"]
    assert result == ["request_id", "model", "version", "status", "outputs", "error", "timings", "completed_at_ms",
                      "route", "graph"]
    assert tensor == ["name", "dtype", "shape", "data"]
    symbols = json.loads((SCHEMAS / "result.avsc").read_text())["fields"][3]["type"]["symbols"]
    assert [s.value for s in Status] == symbols
