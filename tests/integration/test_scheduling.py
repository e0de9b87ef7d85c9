"""Scheduling on the real stack, default policy (back-pressure): a backlog of low-priority
requests (all of it read into the scheduler's queue, all served), then high-priority ones
(served ahead of the backlog) and
requests with a short deadline and a priority of 1 (answered DEADLINE_EXCEEDED at their
deadline, not when the backlog has drained).

The model is made here to take about 2 ms a call whatever its input (a chain of small matrix
products, one request per batch), so a burst of a few thousand small requests builds a
backlog of seconds on this machine.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from aimass.contract.codec import Codec
from aimass.contract.messages import InferenceRequest, InferenceResult, Reason, Status
from aimass.control.admin import ControlAdmin
from aimass.settings import Settings
from aimass.tools.traffic import collect, consumer, make_request, producer, send_requests
from bench.slow_model import WIDTH, slow_model

pytestmark = pytest.mark.integration

def _request(model: str, priority: int = 0, deadline_ms: int | None = None) -> InferenceRequest:
    request = make_request(model, {"x": np.ones((1, WIDTH), np.float32)}, deadline_ms=deadline_ms)
    return InferenceRequest(request.request_id, model, request.inputs, request.created_at_ms,
                            deadline_ms=deadline_ms, priority=priority)


def test_priority_overtakes_a_backlog_and_deadlines_expire_on_time(
        inference_job: str, test_settings: Settings, tmp_path: Path) -> None:
    codec = Codec(test_settings.paths.schemas_dir)
    name = f"slow-{uuid.uuid4().hex[:8]}"
    with ControlAdmin(test_settings) as admin:
        admin.deploy(slow_model(tmp_path, name), upload_bytes=False)
    time.sleep(2.0)  # past the deploy's effective time; the first request loads it
    warm = _request(name)

    results_cons = consumer(test_settings.kafka, test_settings.kafka.results_topic, from_beginning=False)
    dead_cons = consumer(test_settings.kafka, test_settings.kafka.dead_letter_topic, from_beginning=False)
    prod = producer(test_settings.kafka)
    try:
        send_requests(prod, codec, test_settings.kafka.requests_topic, [warm])
        prod.flush()
        found: dict[str, InferenceResult] = {}
        _collect(results_cons, codec, {warm.request_id}, found, 60)
        assert found[warm.request_id].status is Status.OK, found[warm.request_id].error

        low = [_request(name) for _ in range(4000)]
        send_requests(prod, codec, test_settings.kafka.requests_topic, low)
        prod.flush()
        sent_ms = int(time.time() * 1000)
        high = [_request(name, priority=10) for _ in range(20)]
        # Priority 1: ahead of the last 100 ms of the backlog, behind the rest of it (seconds).
        late = [_request(name, priority=1, deadline_ms=sent_ms + 150) for _ in range(20)]
        send_requests(prod, codec, test_settings.kafka.requests_topic, high + late)
        prod.flush()
        wanted = {r.request_id for r in low + high + late}
        _collect(results_cons, codec, wanted, found, 240)
        dead = _dead_letters(dead_cons, codec, {r.request_id for r in late}, 30)
    finally:
        prod.close()
        results_cons.close()
        dead_cons.close()

    assert wanted <= set(found), f"{len(wanted - set(found))} requests got no result"
    assert all(found[r.request_id].status is Status.OK for r in low), "back-pressure refuses nothing"
    assert all(found[r.request_id].status is Status.OK for r in high), [found[r.request_id].error for r in high]
    low_done = [found[r.request_id].completed_at_ms for r in low if found[r.request_id].status is Status.OK]
    assert max(low_done) - sent_ms > 2000, "the burst built no backlog of seconds: this test cannot judge"

    # High priority: served within about a batch window of arriving, ahead of most of the backlog
    # that was sent before them (first in, first out, every one of those would come first).
    high_done = max(found[r.request_id].completed_at_ms for r in high)
    after = sum(1 for t in low_done if t > high_done)
    assert after > len(low_done) * 0.3, (
        f"only {after} of {len(low_done)} earlier low-priority requests served came after the high ones")

    # Short deadlines behind the backlog: answered DEADLINE_EXCEEDED at the deadline, with a dead letter.
    for request in late:
        result = found[request.request_id]
        assert result.status is Status.DEADLINE_EXCEEDED, result.status
        assert request.deadline_ms is not None
        late_by = result.completed_at_ms - request.deadline_ms
        assert 0 <= late_by < 1500, f"answered {late_by} ms after its deadline (the backlog lasted longer)"
        assert result.error and result.error.startswith("DEADLINE_EXCEEDED: deadline")
    assert set(dead) == {r.request_id for r in late}
    assert {d for d in dead.values()} == {Reason.DEADLINE_EXCEEDED}


def _collect(cons: object, codec: Codec, wanted: set[str], found: dict[str, InferenceResult], timeout_s: float) -> None:
    def keep(result: InferenceResult | None) -> None:
        if result is not None and result.request_id in wanted and result.request_id not in found:
            found[result.request_id] = result

    collect(cons, codec.decode_result, lambda _: wanted <= set(found), timeout_s, keep)


def _dead_letters(cons: object, codec: Codec, wanted: set[str], timeout_s: float) -> dict[str, Reason]:
    out: dict[str, Reason] = {}

    def keep(letter: object) -> None:
        request_id = getattr(letter, "request_id", None)
        if request_id in wanted:
            out[request_id] = letter.reason  # type: ignore[attr-defined]

    collect(cons, codec.decode_dead_letter, lambda _: wanted <= set(out), timeout_s, keep)
    return out
