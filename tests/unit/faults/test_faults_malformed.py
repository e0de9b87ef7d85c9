"""Bad records of every kind get exactly the answer their maker says the job owes.

The job's answer is worked out here by the job's own Python step (:class:`aimass.serving.batches.BatchServer`,
a batch of one record) on a stand-in ``digits`` model, so a kind whose claim is wrong, or a
record that escapes as an exception or takes long to answer, fails here in milliseconds, before
a MiniCluster (tests/pipeline/test_bad_records.py) or a campaign ever sees it. (Routing is
Java's and only reads the id for a lane; tests/vectors/peek.tsv holds it to Python's reading.)
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimass.contract.codec import Codec
from aimass.contract.frames import DEAD_LETTER, DEFAULT, RESULT, BatchRecord, read_outputs, write_batch
from aimass.contract.limits import RECORD_OVERHEAD_BYTES
from aimass.contract.messages import DTYPES, InferenceRequest, Reason, Status, Tensor
from aimass.faults.malformed import DESCRIPTIONS, KINDS, BadRecords
from aimass.serving.batches import BatchServer
from aimass.serving.engine import InferenceEngine
from aimass.serving.models import ModelRepository
from aimass.serving.rejects import Source, reject
from aimass.serving.sessions import SessionCache
from aimass.settings import EngineSettings, JobSettings
from tests.onnx_models import DIGITS_META, digits_like_onnx, write_model

CODEC = Codec()
SETTINGS = JobSettings()
CPU = EngineSettings(use_gpu=False)
OLD_KINDS = ("garbage", "truncated", "wrong_schema", "wrong_shape", "wrong_dtype", "unknown_model",
             "path_traversal", "oversized", "expired_deadline")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> InferenceEngine:
    root = tmp_path_factory.mktemp("models")
    for version in ("1", "2"):
        write_model(root, "digits", version, digits_like_onnx(int(version)), DIGITS_META)
    return InferenceEngine(ModelRepository(Path(root)), SessionCache(CPU), SETTINGS)


def answer(engine: InferenceEngine, value: bytes, max_bytes: int) -> tuple[Reason | None, str | None, Status | None]:
    """(dead-letter reason or None, id of the result, its status) as the job's operators give them.

    Also builds the records the job would write (error result, dead letter, result) and
    checks that each fits the output topics.
    """
    got = _answer(engine, value, max_bytes)
    reason, request_id, status = got
    limit = SETTINGS.output_record_limit
    if reason is not None:
        rejection = reject(CODEC, value, Source("t", 0, 0), reason, "why", 0, request_id, limit=limit)
        assert len(rejection.dead_letter) + RECORD_OVERHEAD_BYTES <= limit
        if rejection.result is not None:
            assert len(rejection.result) + len((request_id or "").encode()) + RECORD_OVERHEAD_BYTES <= limit
    return got


def _answer(engine: InferenceEngine, value: bytes, max_bytes: int) -> tuple[Reason | None, str | None, Status | None]:
    """What the job's Python step answers for ``value``: (dead-letter reason, result id, status)."""
    from dataclasses import replace

    server = BatchServer(CODEC, engine, replace(SETTINGS, max_payload_bytes=max_bytes))
    outputs = read_outputs(server.serve(write_batch([BatchRecord(value, "t", 0, 0, int(time.time() * 1000), DEFAULT)])))
    results = [(kind, key, CODEC.decode_result(v)) for kind, key, v in outputs if kind != DEAD_LETTER]
    dead = [CODEC.decode_dead_letter(v) for kind, _, v in outputs if kind == DEAD_LETTER]
    assert len(results) <= 1 and len(dead) <= 1, outputs
    reason = dead[0].reason if dead else None
    if not results:
        return reason, None, None
    ((kind, key, result),) = results
    assert key == result.request_id
    # A dead letter exactly when the answer is not OK; an OK answer is an accepted request's.
    assert (reason is None) == (result.status is Status.OK), (reason, result.status)
    assert kind == RESULT or reason is not None
    return reason, result.request_id, result.status


def test_every_kind_is_described_and_the_old_kinds_keep_their_order() -> None:
    assert list(DESCRIPTIONS) == list(KINDS)
    assert all(text and "\n" not in text for text in DESCRIPTIONS.values())
    assert KINDS[: len(OLD_KINDS)] == OLD_KINDS  # campaigns cycle through KINDS in order
    assert len(set(KINDS)) == len(KINDS)


@pytest.mark.parametrize("max_payload", [4096, 256 * 1024])
@pytest.mark.parametrize("kind", KINDS)
def test_each_record_gets_exactly_the_answer_its_kind_claims(engine: InferenceEngine, kind: str,
                                                             max_payload: int) -> None:
    maker = BadRecords(CODEC, random.Random(kind), max_payload_bytes=max_payload, id_prefix="t-",
                       near_limit_bytes=max_payload + 4096)
    for _ in range(12):
        record = maker.make(kind)
        assert record.kind == kind
        assert (record.request_id is None) == (record.status is None)
        if kind != "oversized":
            assert len(record.value) <= max_payload
        started = time.perf_counter()
        got = answer(engine, record.value, max_payload)
        assert time.perf_counter() - started < 0.5, "routing or refusing one record must be cheap"
        assert got == (record.reason, record.request_id, record.status), record.value[:80]


def test_records_are_unique_across_a_long_run() -> None:
    maker = BadRecords(CODEC, random.Random(11), max_payload_bytes=64 * 1024, id_prefix="u-")
    values = [maker.make().value for _ in range(40 * len(KINDS))]
    assert len(set(values)) == len(values)  # the oracle matches dead letters by digest


def test_make_cycles_through_every_kind() -> None:
    maker = BadRecords(CODEC, random.Random(2), max_payload_bytes=4096, id_prefix="c-")
    assert [maker.make().kind for _ in range(2 * len(KINDS))] == list(KINDS) * 2


# -- Hypothesis: requests built from hostile parts, then damaged -----------------------------------

int64 = st.integers(-(2**63), 2**63 - 1)
texts = st.one_of(st.text(max_size=12), st.sampled_from(["digits", "pixels", "1", "2", "", "..", "x" * 1100]))


@st.composite
def tensors(draw: st.DrawFn) -> Tensor:
    name = draw(st.sampled_from(["pixels", "pixels", "other", ""]) | texts)
    dtype = draw(st.sampled_from(["float32", "float32", *DTYPES, "float16", ""]))
    if draw(st.booleans()):  # plausible: rows of 64
        rows = draw(st.integers(0, 40))
        shape: tuple[int, ...] = (rows, 64)
        size = rows * 64 * DTYPES.get(dtype, DTYPES["float32"]).itemsize
        if dtype == "bool":
            data = bytes(draw(st.lists(st.integers(0, 1), min_size=rows * 64, max_size=rows * 64)))
        else:
            data = draw(st.binary(min_size=size, max_size=size))
    else:  # anything: dimensions from the whole int64 range, up to 34 of them
        shape = tuple(draw(st.lists(st.one_of(st.integers(-2, 70), int64), max_size=34)))
        data = draw(st.binary(max_size=300))
    return Tensor(name, dtype, shape, data)


@st.composite
def hostile_values(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # a valid request (NaN, infinities and extreme times included), maybe damaged
        rows = draw(st.integers(1, 40))
        pixels = draw(st.binary(min_size=rows * 256, max_size=rows * 256))
        request = InferenceRequest(
            request_id=draw(st.text(min_size=1, max_size=12)), model="digits",
            inputs=(Tensor("pixels", "float32", (rows, 64), pixels),), created_at_ms=draw(int64),
            version=draw(st.sampled_from([None, "1", "2"])), deadline_ms=draw(st.sampled_from([None, 2**63 - 1])),
        )
    else:
        request = InferenceRequest(
            request_id=draw(texts), model=draw(st.sampled_from(["digits"]) | texts),
            inputs=tuple(draw(st.lists(tensors(), max_size=3))), created_at_ms=draw(int64),
            version=draw(st.sampled_from([None, "1", "2"]) | texts), deadline_ms=draw(st.none() | int64),
        )
    value = bytearray(CODEC.encode_request(request))
    for _ in range(draw(st.integers(0, 2))):  # damage a byte or cut short
        if not value:
            break
        if draw(st.booleans()):
            value[draw(st.integers(0, len(value) - 1))] = draw(st.integers(0, 255))
        else:
            del value[draw(st.integers(0, len(value) - 1)) :]
    return bytes(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_values())
def test_any_request_made_of_hostile_parts_gets_one_consistent_answer(engine: InferenceEngine, value: bytes) -> None:
    started = time.perf_counter()
    reason, request_id, status = answer(engine, value, 64 * 1024)
    assert time.perf_counter() - started < 1.0
    if reason is None:
        assert status is Status.OK and request_id is not None
    elif request_id is not None:
        assert status is reason.status()
