"""The bench harness's arithmetic: request bytes, ids, drain rate, latency, system names, meter."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest

from aimass.contract.codec import Codec
from aimass.tools.traffic import make_request
from bench.driver import Collector, Paced, drain_rate, latencies, percentiles
from bench.meter import Meter, tree, usage
from bench.systems import SYSTEMS, expand
from bench.workload import Workload, request_id


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


def _collector(arrivals: dict[str, float]) -> Any:
    fake = Collector.__new__(Collector)  # no consumer: only the bookkeeping is under test
    fake.arrivals = arrivals
    return fake


def test_payload_is_exactly_what_the_codec_writes_for_that_id(codec: Codec) -> None:
    rows = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    workload = Workload.from_inputs(codec, "m", {"x": rows}, seed=7)
    for index in (0, 4, 6):
        rid = request_id(7, 2, index)
        payload = workload.payload(rid, index)
        decoded = codec.decode_request(payload)
        assert decoded.request_id == rid
        np.testing.assert_array_equal(decoded.inputs[0].to_numpy(), rows[index % 5 : index % 5 + 1])
        assert codec.encode_request(decoded) == payload
    fresh = make_request("m", {"x": rows[:1]}, request_id=request_id(7, 0, 0))
    assert Workload.from_inputs(codec, "m", {"x": rows}, seed=7).payload(fresh.request_id, 0)[:-8] == \
        codec.encode_request(fresh)[:-8]  # all but the created-at time (its varint ends the record)


def test_request_ids_are_uuid_shaped_unique_and_carry_their_phase() -> None:
    ids = {request_id(20240601, phase, i) for phase in (0, 1, 100) for i in range(1000)}
    assert len(ids) == 3000
    rid = request_id(20240601, 100, 42)
    assert len(rid) == 36 and [len(p) for p in rid.split("-")] == [8, 4, 4, 4, 12]
    assert int(rid[9:13], 16) == 100


def test_drain_rate_skips_warm_up_and_the_loading_time() -> None:
    ids = [f"r{i}" for i in range(1000)]
    collector = _collector({rid: 10.0 + i / 100 for i, rid in enumerate(ids)})  # 100/s from t=10
    rate, start, end = drain_rate(collector, ids, not_before=12.0, warmup_fraction=0.1)
    assert rate == pytest.approx(100, rel=0.02)
    assert start == pytest.approx(12.0, abs=0.02) and end == pytest.approx(19.99)


def test_drain_rate_of_results_visible_in_chunks_opens_at_the_loaded_time() -> None:
    ids = [f"r{i}" for i in range(300)]
    collector = _collector({rid: 5.0 for rid in ids})  # one transaction: all at once
    rate, start, end = drain_rate(collector, ids, not_before=4.0, warmup_fraction=0.1)
    assert rate == pytest.approx(300) and (start, end) == (4.0, 5.0)
    assert drain_rate(collector, ids, not_before=6.0, warmup_fraction=0.1)[0] is None


def test_latency_is_measured_from_the_scheduled_send_and_flags_growing_lag() -> None:
    ids = [f"r{i}" for i in range(200)]
    sent = Paced(ids, [i * 0.01 for i in range(200)], 0.0)
    steady = _collector({rid: t + 0.02 for rid, t in zip(ids, sent.sent_at, strict=True)})
    figures = latencies(steady, sent, warmup_s=0.5)
    assert figures["measured"] == 150
    assert figures["p50_ms"] == pytest.approx(20) and figures["kept_up"] is True
    growing = _collector({rid: t + 0.02 + 0.01 * i for i, (rid, t) in enumerate(zip(ids, sent.sent_at, strict=True))})
    assert latencies(growing, sent, warmup_s=0.5)["kept_up"] is False


def test_percentiles_of_nothing_are_none() -> None:
    assert percentiles([]) == {"p50_ms": None, "p95_ms": None, "p99_ms": None}


def test_systems_expand_groups_in_table_order() -> None:
    named_only = {"aimass-eo-p1-shadow10", "aimass-eo-p1-fifo"}  # measured when named
    assert expand("all") == [s for s in SYSTEMS if s not in named_only]
    assert expand("aimass-eo-p1-shadow10") == ["aimass-eo-p1-shadow10"]
    assert expand("aimass-eo-p1-fifo") == ["aimass-eo-p1-fifo"]
    assert expand("aimass-eo-p2,peers") == ["plain-loop", "quix", "aimass-eo-p2"]
    with pytest.raises(ValueError, match="unknown system"):
        expand("flink-ml")


def test_meter_sees_cpu_and_memory_of_a_process() -> None:
    pid = os.getpid()
    assert pid in tree([pid])
    cpu, rss = usage([pid])
    assert cpu > 0 and rss > 10 * 1024 * 1024
    with Meter(lambda: [pid], interval_s=0.05) as meter:
        begin = time.monotonic()
        end = begin + 0.3
        while time.monotonic() < end:
            sum(range(10_000))
    assert meter.peak_rss > 0
    assert 0.1 < meter.cpu_between(begin, end) < 1.0
