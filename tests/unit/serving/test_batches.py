"""BatchServer: one batch frame in, one outputs frame out; then the id rule applied downstream.

The job's Java ``Dedup`` keeps, per request id, the first result that claims it; the
:class:`Downstream` here applies the same rule (:func:`aimass.contract.frames.dedup_verdict`, vectors
shared with Java) so the sequences that matter are checked in an order that is ours: one
result per id whatever comes after it under the same id (another model included), and a
dead letter for every bad record.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from aimass.contract.codec import Codec
from aimass.contract.frames import (
    DEAD_LETTER,
    DEFAULT,
    ERROR_RESULT,
    RESULT,
    BatchRecord,
    dedup_verdict,
    read_outputs,
    write_batch,
)
from aimass.contract.messages import DeadLetter, InferenceRequest, InferenceResult, Reason, Status, Tensor
from aimass.serving.batches import BatchServer
from aimass.settings import Settings


class Downstream:
    """The server, then the Java side's split and de-duplication, in Python."""

    def __init__(self) -> None:
        from aimass.serving.engine import InferenceEngine
        from aimass.serving.models import ModelRepository
        from aimass.serving.sessions import SessionCache
        from aimass.tools.demo import build_demo_models

        settings = Settings.load(env={}, overrides={"engine.use_gpu": "false"})
        build_demo_models(settings.paths.models_dir)
        self.codec = Codec(settings.paths.schemas_dir)
        models = ModelRepository(settings.paths.models_dir)
        engine = InferenceEngine(models, SessionCache(settings.engine), settings.job)
        self.server = BatchServer(self.codec, engine, settings.job)
        self.claimed: set[str] = set()
        self.offset = 0

    def send(self, *values: bytes) -> list[InferenceResult | DeadLetter]:
        """One batch of ``values``; what reaches the two topics, in order."""
        records = []
        for value in values:
            self.offset += 1
            records.append(BatchRecord(value, "requests", 0, self.offset, int(time.time() * 1000), DEFAULT))
        out: list[Any] = []
        for kind, key, value in read_outputs(self.server.serve(write_batch(records))):
            if kind == DEAD_LETTER:
                out.append(self.codec.decode_dead_letter(value))
                continue
            emit, claim = dedup_verdict(key in self.claimed, kind == RESULT)
            if claim:
                self.claimed.add(key)
            if emit:
                out.append(self.codec.decode_result(value))
        return out


@pytest.fixture(scope="module")
def downstream() -> Downstream:
    return Downstream()


def _digits(rid: str, cols: int = 64, model: str = "digits", **fields: Any) -> InferenceRequest:
    pixels = np.zeros((1, cols), dtype=np.float32)
    return InferenceRequest(rid, model, (Tensor.from_numpy("pixels", pixels),), int(time.time() * 1000), **fields)


def _kinds(out: list[InferenceResult | DeadLetter]) -> list[tuple[str, object]]:
    return [(type(o).__name__, o.status if isinstance(o, InferenceResult) else o.reason) for o in out]


def test_records_under_an_accepted_id_get_a_dead_letter_if_bad_and_never_a_second_result(
    downstream: Downstream,
) -> None:
    codec = downstream.codec
    first = downstream.send(codec.encode_request(_digits("dup-1", deadline_ms=int(time.time() * 1000) + 60_000)))
    assert _kinds(first) == [("InferenceResult", Status.OK)]
    # The same bytes again: a resubmission, silently de-duplicated.
    assert downstream.send(codec.encode_request(_digits("dup-1"))) == []
    # The same id, now invalid (wrong shape), expired, cut short, or for an unknown model:
    # a dead letter, no result.
    for value, reason in (
        (codec.encode_request(_digits("dup-1", cols=63)), Reason.INVALID_INPUT),
        (codec.encode_request(_digits("dup-1", deadline_ms=1)), Reason.DEADLINE_EXCEEDED),
        (codec.encode_request(_digits("dup-1"))[:-9], Reason.UNDECODABLE),
        (codec.encode_request(_digits("dup-1", model="nope")), Reason.UNKNOWN_MODEL),
    ):
        out = downstream.send(value)
        assert len(out) == 1 and isinstance(out[0], DeadLetter), out
        assert (out[0].reason, out[0].request_id, out[0].original) == (reason, "dup-1", value)


def test_the_same_id_under_another_model_gets_no_second_result(downstream: Downstream) -> None:
    codec = downstream.codec
    heavy = InferenceRequest("cross-1", "heavy", (Tensor.from_numpy("x", np.zeros((1, 784), np.float32)),),
                             int(time.time() * 1000))
    assert _kinds(downstream.send(codec.encode_request(_digits("cross-1")))) == [("InferenceResult", Status.OK)]
    assert downstream.send(codec.encode_request(heavy)) == []


def test_twins_in_one_batch_run_once_and_a_bad_twin_after_them_gets_a_dead_letter(downstream: Downstream) -> None:
    codec = downstream.codec
    good = codec.encode_request(_digits("twin-1"))
    bad = codec.encode_request(_digits("twin-1", cols=3))
    out = downstream.send(good, good, bad)
    assert _kinds(out) == [("InferenceResult", Status.OK), ("DeadLetter", Reason.INVALID_INPUT)]


def test_a_bad_record_under_a_new_id_gets_its_error_result_and_dead_letter(downstream: Downstream) -> None:
    out = downstream.send(downstream.codec.encode_request(_digits("new-1", cols=63)))
    assert sorted(_kinds(out), key=str) == [("DeadLetter", Reason.INVALID_INPUT),
                                            ("InferenceResult", Status.INVALID_INPUT)]
    # The id was never accepted: a valid request under it later is served.
    (served,) = downstream.send(downstream.codec.encode_request(_digits("new-1")))
    assert isinstance(served, InferenceResult) and served.status is Status.OK


@pytest.mark.parametrize("bad", [
    InferenceRequest("dec-1", "digits", (), 0),  # no inputs
    InferenceRequest("dec-2", "digits", (Tensor("pixels", "float32", (1, 64), b"\x00" * 255),), 0),  # bytes
    InferenceRequest("dec-3", "digits", (Tensor("pixels", "bool", (1, 2), b"\x00\x02"),), 0),  # a bool of 2
    InferenceRequest("dec-4", "digits", (Tensor("a", "float32", (1,), b"\x00" * 4),
                                         Tensor("b", "float32", (2,), b"\x00" * 8)), 0),  # rows differ
])
def test_a_request_refused_while_decoding_names_its_model_when_readable(downstream: Downstream,
                                                                        bad: InferenceRequest) -> None:
    out = downstream.send(downstream.codec.encode_request(bad))
    (result,) = [o for o in out if isinstance(o, InferenceResult)]
    assert result.status is Status.INVALID_INPUT and result.request_id == bad.request_id
    assert result.model == "digits"  # as schemas/README.md says: the model, when it could be read


def test_answers_keep_the_order_of_their_records(downstream: Downstream) -> None:
    codec = downstream.codec
    values = [codec.encode_request(_digits(f"order-{i}", cols=64 if i % 3 else 5)) for i in range(12)]
    raw = read_outputs(downstream.server.serve(write_batch(
        [BatchRecord(v, "requests", 0, i, 0, DEFAULT) for i, v in enumerate(values)])))
    ids = [key for kind, key, _ in raw if kind != DEAD_LETTER]
    assert ids == [f"order-{i}" for i in range(12)]
    assert [kind for kind, _, _ in raw if kind != DEAD_LETTER] == [ERROR_RESULT if i % 3 == 0 else RESULT
                                                                   for i in range(12)]


def test_records_without_a_readable_id_get_a_dead_letter_only(downstream: Downstream) -> None:
    out = downstream.send(b"", b"plain text", b"\xc3\x01" + bytes(20))
    assert [type(o).__name__ for o in out] == ["DeadLetter"] * 3


def test_a_codec_or_engine_bug_fails_its_records_not_the_operator(
    downstream: Downstream, monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec, server = downstream.codec, downstream.server
    value = codec.encode_request(_digits("bug-1"))

    def broken_decode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(server.codec, "decode_request", broken_decode)
    out = downstream.send(value)
    assert _kinds(out) == [("InferenceResult", Status.INTERNAL_ERROR), ("DeadLetter", Reason.INTERNAL_ERROR)]
    assert "boom" in out[0].error  # type: ignore[union-attr, operator]
    monkeypatch.undo()

    def broken_run(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bang")

    monkeypatch.setattr(server.engine, "run", broken_run)
    out = downstream.send(codec.encode_request(_digits("bug-2")))
    assert _kinds(out) == [("InferenceResult", Status.INTERNAL_ERROR), ("DeadLetter", Reason.INTERNAL_ERROR)]
    # It was accepted: its error result claims the id, so a resubmission gets nothing new.
    monkeypatch.undo()
    assert downstream.send(codec.encode_request(_digits("bug-2"))) == []


def test_the_server_tallies_what_it_wrote_for_the_jobs_metrics() -> None:
    fresh = Downstream()
    codec, stats = fresh.codec, fresh.server.stats
    fresh.send(codec.encode_request(_digits("tally-1")), codec.encode_request(_digits("tally-2")),
               codec.encode_request(_digits("tally-3", cols=63)), codec.encode_request(_digits("tally-4"))[:-9])
    by_status: dict[tuple[str, str], int] = {}
    for (model, version, status), n in stats.results.items():
        by_status[(model, status)] = by_status.get((model, status), 0) + n
        assert version or status != "OK", "an OK result names its version"
    # The wrong shape and the cut-short record: both INVALID_INPUT error results naming their model.
    assert by_status == {("digits", "OK"): 2, ("digits", Status.INVALID_INPUT.value): 2}, by_status
    assert stats.dead_letters == {Reason.INVALID_INPUT.value: 1, Reason.UNDECODABLE.value: 1}
    times = stats.take_times()
    assert len(times) == 1 and times[0] > 0 and stats.take_times() == []  # one engine call, taken once
