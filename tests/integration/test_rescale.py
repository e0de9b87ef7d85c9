"""Rescaling the running job 1 -> 2 -> 1 under traffic, exactly-once: nothing lost or doubled."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter

import pytest

from aimass.contract.codec import Codec
from aimass.operators import BATCH_INFER, MICRO_BATCH
from aimass.settings import Settings
from aimass.stack import rescale
from aimass.stack.flink import FlinkCluster
from aimass.stack.procs import StackError
from aimass.tools.traffic import consumer, make_request, producer, send_paced

pytestmark = pytest.mark.integration


def _batch_infer(settings: Settings, job_id: str) -> rescale.Vertex:
    (vertex,) = [v for v in rescale.vertices(FlinkCluster(settings), job_id) if BATCH_INFER.name in v.name]
    return vertex


def _micro_batch(settings: Settings, job_id: str) -> rescale.Vertex:
    """The lanes' vertex: its records in per subtask are requests (batch-infer's are batches, and
    a busier subtask makes fewer, larger ones: their counts say little about the spread)."""
    (vertex,) = [v for v in rescale.vertices(FlinkCluster(settings), job_id) if v.name.startswith(MICRO_BATCH.name)]
    return vertex


def test_refusals_name_the_limit(test_settings: Settings, inference_job: str) -> None:
    with pytest.raises(StackError, match="max parallelism 128"):
        rescale.rescale(test_settings, 129, say=lambda _: None)
    with pytest.raises(StackError, match=r"needs 5 task slots but the cluster has 2 .*aimass taskmanagers"):
        rescale.rescale(test_settings, 5, say=lambda _: None)


def test_rescale_1_2_1_under_traffic_keeps_every_request_and_the_state(
    test_settings: Settings, inference_job: str
) -> None:
    from aimass.tools.demo import load_holdout

    settings = test_settings
    codec = Codec(settings.paths.schemas_dir)
    images, _ = load_holdout(settings.paths.models_dir)
    rescale.rescale(settings, 1, say=print)

    sent: list[str] = []
    stop = threading.Event()

    def send() -> None:
        endless = (make_request("digits", {"pixels": images[i % len(images) : i % len(images) + 1]})
                   for i in itertools.count())
        send_paced(settings.kafka.bootstrap, codec, settings.kafka.requests_topic, endless, 150, stop, sent)

    counts: Counter[str] = Counter()
    arrivals: list[float] = []
    cons = consumer(settings.kafka.bootstrap, settings.kafka.results_topic, from_beginning=False)

    def read_for(seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            for records in cons.poll(timeout_ms=200).values():
                for record in records:
                    counts[codec.decode_result(record.value).request_id or ""] += 1
                    arrivals.append(time.monotonic())

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    reader_stop = threading.Event()
    reader = threading.Thread(target=lambda: [read_for(0.5) for _ in iter(reader_stop.is_set, True)], daemon=True)
    reader.start()
    time.sleep(5)
    steps = []
    for parallelism in (2, 1):
        before = _micro_batch(settings, inference_job)
        started = time.monotonic()
        result = rescale.rescale(settings, parallelism, say=print)
        # Traffic at the new parallelism: wait until every lane subtask shows requests, enough of
        # them for a share to mean something; the REST metrics are refreshed every 2 s, later on a
        # loaded machine.
        wait_until = time.monotonic() + 60
        after = _micro_batch(settings, inference_job)
        while time.monotonic() < wait_until and (not after.records_in or min(after.records_in) == 0
                                                 or sum(after.records_in) < 100 * parallelism):
            time.sleep(1)
            after = _micro_batch(settings, inference_job)
        assert _batch_infer(settings, inference_job).parallelism == after.parallelism == parallelism == result.after
        assert len(after.records_in) == parallelism
        if max(after.records_in) > 0:
            # Lanes are spread over key groups evenly: no subtask idles while another is saturated.
            assert min(after.records_in) >= 0.5 * max(after.records_in), after.records_in
        else:  # seen once in CI after the fault tests: REST metrics stayed 0 for a minute
            print(f"warning: no per-subtask record metrics after the rescale to {parallelism}")
        steps.append((started, before, after))
    # Requests sent before the rescales, sent again: the de-duplication state moved with its keys.
    early = sent[:50]
    stop.set()
    sender.join()
    prod = producer(settings.kafka.bootstrap)
    resent = 0
    for request_id in early:
        request = make_request("digits", {"pixels": images[:1]}, request_id=request_id)
        prod.send(settings.kafka.requests_topic, value=codec.encode_request(request))
        resent += 1
    prod.flush()
    prod.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(counts[i] == 0 for i in sent):
        time.sleep(0.5)
    time.sleep(4 * settings.job.checkpoint_interval_ms / 1000)  # a late duplicate would show by now
    reader_stop.set()
    reader.join()
    cons.close()

    missing = [i for i in sent if counts[i] == 0]
    doubled = [i for i in sent if counts[i] > 1]
    assert resent == 50 and len(sent) > 1000
    assert not missing, f"{len(missing)} of {len(sent)} requests got no result"
    assert not doubled, f"{len(doubled)} requests got more than one result (resubmitted ones included)"
    for started, before, after in steps:
        gap = max((b - a for a, b in zip(arrivals, arrivals[1:], strict=False) if a >= started - 1), default=0.0)
        print(f"rescale {before.parallelism} -> {after.parallelism}: records in per subtask before "
              f"{list(before.records_in)}, after {list(after.records_in)}; longest gap without results "
              f"{gap:.1f} s")
    rescale.rescale(settings, int(settings.job.parallelism), say=print)  # as the other tests expect
